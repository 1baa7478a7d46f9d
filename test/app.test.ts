import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { readAppContext } from '../lib/app-context';

const ROOT = path.join(__dirname, '..');
const ctx = (values: Record<string, unknown>) => readAppContext((key) => values[key]);

describe('app context (-c values)', () => {
  test('an AMI parameter name replaces the Deep Learning AMI parameters', () => {
    expect(ctx({ amiParameter: '/spot-sweep/ami-id' })).toEqual({ context: { destroyData: false, amiParameter: '/spot-sweep/ami-id' }, problems: [] });
  });

  test('defaults: no sweep, keep data, new VPC', () => {
    expect(ctx({})).toEqual({ context: { destroyData: false }, problems: [] });
  });

  test('reads destroyData and an existing VPC from strings as the CDK CLI passes them', () => {
    const { context, problems } = ctx({
      sweep: 'sweeps/demo.json',
      destroyData: 'true',
      vpcId: 'vpc-0123456789abcdef0',
      subnetIds: 'subnet-0aaaaaaaaaaaaaaaa, subnet-0bbbbbbbbbbbbbbbb',
      availabilityZones: 'us-east-1a,us-east-1b',
    });
    expect(problems).toEqual([]);
    expect(context).toEqual({
      sweep: 'sweeps/demo.json',
      destroyData: true,
      existingVpc: { vpcId: 'vpc-0123456789abcdef0', subnetIds: ['subnet-0aaaaaaaaaaaaaaaa', 'subnet-0bbbbbbbbbbbbbbbb'], availabilityZones: ['us-east-1a', 'us-east-1b'] },
    });
  });

  test('availabilityZones without a vpcId are the zones of the foundation\'s own VPC', () => {
    expect(ctx({ availabilityZones: 'us-east-1a, us-east-1b,us-east-1c' })).toEqual({
      context: { destroyData: false, availabilityZones: ['us-east-1a', 'us-east-1b', 'us-east-1c'] },
      problems: [],
    });
  });

  test('fails when the foundation\'s zones are no zone names, or repeated, listing every problem', () => {
    const { context, problems } = ctx({ availabilityZones: 'us-east-1a,us-east-1,us-east-1a' });
    expect(problems).toEqual([
      '-c availabilityZones: "us-east-1" is not an availability zone name; use names such as us-east-1a.',
      '-c availabilityZones: "us-east-1a" is listed twice; list each zone once.',
    ]);
    expect(context.availabilityZones).toBeUndefined();
    expect(ctx({ subnetIds: 'subnet-0aaaaaaaaaaaaaaaa' }).problems).toEqual(['-c subnetIds only applies with -c vpcId=vpc-...; add the VPC id or drop it.']);
  });

  test('fails when context values are wrong, listing every problem', () => {
    const { problems } = ctx({ destroyData: 'yes', vpcId: 'vpc-xyz', subnetIds: 'sub-1', amiParameter: "ami-123'" });
    expect(problems).toHaveLength(5);
    expect(problems.join('\n')).toMatch(/amiParameter=ami-123': give the name of an SSM parameter that holds an AMI id/);
    expect(problems.join('\n')).toMatch(/destroyData=yes: use true or false/);
    expect(problems.join('\n')).toMatch(/not a VPC id/);
    expect(problems.join('\n')).toMatch(/"sub-1" is not a subnet id/);
    expect(problems.join('\n')).toMatch(/availabilityZones=: give the AZ of each subnet/);
  });
});

describe('bin/app.ts', () => {
  /** Runs the CDK app as `cdk synth -c ...` does (the context values in CDK_CONTEXT_JSON). */
  const synth = (context: Record<string, string>) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'bin/app.ts'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
      env: { PATH: process.env.PATH, CDK_CONTEXT_JSON: JSON.stringify(context) },
    });

  test('fails when -c sweep points at a broken spec: every problem, exit 1, no stack trace', () => {
    const r = synth({ sweep: 'test/fixtures/broken-many.json' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/broken-many\.json: 14 problems:/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test('fails when the GitHub OIDC subject prefix is built from parts or has a wildcard: says to pass it verbatim, exit 1, no stack trace', () => {
    const parts = synth({ github: 'octo-org/spot-sweep' });
    expect(parts.status).toBe(1);
    expect(parts.stderr).toMatch(/-c github=OWNER\/REPO is replaced by -c githubSubjectPrefix=<the repository's OIDC subject prefix as GitHub reports it>/);
    const wildcard = synth({ githubSubjectPrefix: 'repo:octo-org/*' });
    expect(wildcard.status).toBe(1);
    expect(wildcard.stderr).toMatch(/-c githubSubjectPrefix=repo:octo-org\/\*: no wildcards/);
    for (const r of [parts, wildcard]) expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
