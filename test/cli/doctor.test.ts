import { CloudFormationClient, CreateStackCommand, DeleteStackCommand } from '@aws-sdk/client-cloudformation';
import { CreateSubnetCommand, CreateVpcCommand, DescribeImagesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { version } from '../../package.json';
import { AwsSession } from '../../lib/cli/aws';
import { runDoctor } from '../../lib/cli/doctor/run';
import { lambdaConcurrencyCheck, quotaChecks, quotaFor, quotaHeadroom, sweepQuotaNeeds } from '../../lib/cli/doctor/quotas';
import { ServiceQuota } from '../../lib/cli/doctor/identity-quotas';
import { DoctorDeps, sessionDeps } from '../../lib/cli/doctor/types';
import { EXIT } from '../../lib/cli/main';
import { FOUNDATION_STACK } from '../../lib/contract';
import { loadSpec } from '../../lib/spec/load';
import { cli, clientOptions, Moto, REGION, startMoto } from './aws-fixture';

/** doctor (and plan's share of it) against moto_server, with a stand-in Service Quotas endpoint (moto has no EC2 quotas). */
jest.setTimeout(60_000);

let moto: Moto;
let quotasServer: http.Server;
let env: NodeJS.ProcessEnv;
const BUCKET = 'spot-sweep-doctor-test';
const AMI_PARAMETER = '/spot-sweep-test/ami-id';
const seen: { target?: string; authorization?: string }[] = [];

// The names AWS documents (using-spot-limits.html, ec2-instance-quotas.html); the codes are the ones Service Quotas answers with.
const quota = (QuotaCode: string, QuotaName: string, Value: number): ServiceQuota => ({ QuotaCode, QuotaName, Value });
const GREEN: ServiceQuota[] = [
  quota('L-34B43A08', 'All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests', 5),
  quota('L-3819A6DF', 'All G and VT Spot Instance Requests', 64),
  quota('L-7212CCBC', 'All P4, P3 and P2 Spot Instance Requests', 0),
  quota('L-C4BD4855', 'All P5 Spot Instance Requests', 0),
  quota('L-DB2E81BA', 'Running On-Demand G and VT instances', 64),
  quota('L-417A185B', 'Running On-Demand P instances', 0),
];
let served: ServiceQuota[] = GREEN;
/** What the stand-in answers to ListAWSDefaultServiceQuotas (AWS's defaults). */
let defaultsServed: ServiceQuota[] = [];

function specFile(name: string, configs: object[]): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'spot-sweep-doctor-'));
  const file = path.join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify({ name, budgetUsd: 500, data: 's3://example-data/two-tower/', defaults: { maxRuntimeHours: 2, train: { folds: 2, epochs: 1 } }, configs }));
  return file;
}
const SPEC = specFile('checkup', [
  { name: 'a', examples: 10000, instanceTypes: ['g5.xlarge'], market: 'spot' },
  { name: 'b', examples: 10000, instanceTypes: ['g6e.xlarge', 'g5.2xlarge'], market: 'spot-then-on-demand' },
]);
const line = (stdout: string, name: string): string => stdout.split('\n').find((l) => new RegExp(`^\\S+\\s+${name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\s`).test(l)) ?? '';

beforeAll(async () => {
  moto = await startMoto();
  quotasServer = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      seen.push({ target: req.headers['x-amz-target'] as string, authorization: req.headers.authorization });
      const { ServiceCode } = JSON.parse(body) as { ServiceCode: string };
      res.setHeader('content-type', 'application/x-amz-json-1.1');
      const list = String(req.headers['x-amz-target']).endsWith('.ListAWSDefaultServiceQuotas') ? defaultsServed : served;
      res.end(JSON.stringify({ Quotas: ServiceCode === 'ec2' ? list.map((q) => ({ ...q, ServiceCode })) : [] }));
    });
  });
  await new Promise<void>((resolve) => quotasServer.listen(0, '127.0.0.1', resolve));
  const port = (quotasServer.address() as { port: number }).port;
  // The spot price lookup reads only AWS_ENDPOINT_URL_EC2 (lib/cli/spot-prices.ts).
  env = { ...moto.env, AWS_ENDPOINT_URL_SERVICE_QUOTAS: `http://127.0.0.1:${port}`, AWS_ENDPOINT_URL_EC2: moto.endpoint };

  const ec2 = new EC2Client(clientOptions(moto));
  const vpc = (await ec2.send(new CreateVpcCommand({ CidrBlock: '10.42.0.0/16' }))).Vpc?.VpcId as string;
  await ec2.send(new CreateSubnetCommand({ VpcId: vpc, CidrBlock: '10.42.0.0/20', AvailabilityZone: 'us-east-1a' }));
  await ec2.send(new CreateSubnetCommand({ VpcId: vpc, CidrBlock: '10.42.16.0/20', AvailabilityZone: 'us-east-1d' }));
  const image = (await ec2.send(new DescribeImagesCommand({ Owners: ['amazon'] }))).Images?.[0];
  ec2.destroy();
  const ssm = new SSMClient(clientOptions(moto));
  await ssm.send(new PutParameterCommand({ Name: AMI_PARAMETER, Type: 'String', Value: image?.ImageId as string }));
  ssm.destroy();
  await createToolkit();
  const cfn = new CloudFormationClient(clientOptions(moto));
  await cfn.send(
    new CreateStackCommand({
      StackName: FOUNDATION_STACK,
      TemplateBody: JSON.stringify({
        Resources: { Artifacts: { Type: 'AWS::S3::Bucket', Properties: { BucketName: BUCKET } } },
        Outputs: { ArtifactBucketName: { Value: { Ref: 'Artifacts' } }, VpcId: { Value: vpc }, FoundationVersion: { Value: version } },
      }),
    }),
  );
  cfn.destroy();
}, 90_000);

afterAll(async () => {
  await moto?.stop();
  await new Promise((resolve) => quotasServer?.close(resolve));
});

async function createToolkit(): Promise<void> {
  const cfn = new CloudFormationClient(clientOptions(moto));
  await cfn.send(
    new CreateStackCommand({
      StackName: 'CDKToolkit',
      TemplateBody: JSON.stringify({ Resources: { Staging: { Type: 'AWS::S3::Bucket', Properties: { BucketName: 'cdk-staging-doctor-test' } } }, Outputs: { BootstrapVersion: { Value: '28' } } }),
    }),
  );
  cfn.destroy();
}

describe('spot-sweep doctor', () => {
  test('all green: one ok line per check, with the identity, the image name and the quota codes; exit 0', async () => {
    served = GREEN;
    const r = await cli(env, ['doctor', SPEC, '--ami-parameter', AMI_PARAMETER]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(EXIT.ok);
    expect(line(r.stdout, 'credentials')).toMatch(/^ok\s+credentials\s+account \d{12} as arn:aws:/);
    expect(line(r.stdout, 'cdk bootstrap')).toMatch(/^ok\s.*stack CDKToolkit is CREATE_COMPLETE \(bootstrap version 28\)/);
    expect(line(r.stdout, 'foundation')).toMatch(new RegExp(`^ok\\s.*at version ${version.replace(/\./g, '\\.')}`));
    expect(line(r.stdout, `ami ${AMI_PARAMETER}`)).toMatch(/^ok\s.*ami-[0-9a-f]+ ".+" \(for a, b\)/);
    expect(line(r.stdout, 'offered g5.xlarge')).toMatch(/^ok\s.*offered in us-east-1a, us-east-1d/);
    // a (g5.xlarge, 4) and b (largest g5.2xlarge, 8) on spot; b alone on on-demand.
    expect(line(r.stdout, 'quota spot L-3819A6DF')).toMatch(/^ok\s.*"All G and VT Spot Instance Requests" \(L-3819A6DF\) is 64 vCPUs in us-east-1; the sweep needs 12 vCPUs at once \(a, b;/);
    expect(line(r.stdout, 'quota on-demand L-DB2E81BA')).toMatch(/^ok\s.*the sweep needs 8 vCPUs at once \(b;/);
    expect(line(r.stdout, 'prices')).toMatch(/^(ok|warn)\s+prices\s/);
    expect(line(r.stdout, 'artifact bucket')).toMatch(new RegExp(`^ok\\s.*s3://${BUCKET} is reachable`));
    expect(r.stdout).not.toMatch(/BLOCKER/);
    expect(r.stdout).toMatch(/No blockers/);
    // Service Quotas was asked with a Signature Version 4 signature for its own signing name.
    expect(seen.some((s) => s.target === 'ServiceQuotasV20190624.ListServiceQuotas' && /^AWS4-HMAC-SHA256 Credential=testing\/\d{8}\/us-east-1\/servicequotas\/aws4_request/.test(s.authorization ?? ''))).toBe(true);
  });

  test('--json prints the checks as one document', async () => {
    served = GREEN;
    const r = await cli(env, ['doctor', SPEC, '--ami-parameter', AMI_PARAMETER, '--json']);
    expect(r.code).toBe(EXIT.ok);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ sweep: 'checkup', region: REGION, blockers: 0 });
    expect(doc.checks.map((c: { name: string }) => c.name)).toEqual(expect.arrayContaining(['credentials', 'cdk bootstrap', 'foundation', 'artifact bucket', 'quota spot L-3819A6DF']));
    for (const c of doc.checks) expect(Object.keys(c).sort()).toEqual(['finding', 'fix', 'name', 'result']);
  });

  test('a quota of 0 vCPUs (a new account) is a blocker naming the quota code and the increase command; exit blocked', async () => {
    served = GREEN.map((q) => (q.QuotaCode === 'L-3819A6DF' ? { ...q, Value: 0 } : q));
    const r = await cli(env, ['doctor', SPEC, '--ami-parameter', AMI_PARAMETER]);
    expect(r.code).toBe(EXIT.blocked);
    const l = line(r.stdout, 'quota spot L-3819A6DF');
    expect(l).toMatch(/^BLOCKER\s.*is 0 vCPUs in us-east-1; the sweep needs 12 vCPUs at once.*no g5\.2xlarge can launch \(0 is the default of a new account\)/);
    expect(l).toMatch(/Fix: request 12 vCPUs: aws service-quotas request-service-quota-increase --service-code ec2 --quota-code L-3819A6DF --desired-value 12 --region us-east-1/);
    expect(r.stdout).toMatch(/1 blocker, /);
  });

  test('a quota missing from the applied values (a new account) is judged by its AWS default, 0 vCPUs: a blocker', async () => {
    served = GREEN.filter((q) => q.QuotaCode !== 'L-3819A6DF');
    defaultsServed = [quota('L-3819A6DF', 'All G and VT Spot Instance Requests', 0)];
    try {
      const r = await cli(env, ['doctor', SPEC]);
      expect(line(r.stdout, 'quota spot L-3819A6DF')).toMatch(/^BLOCKER\s.*is 0 vCPUs in us-east-1/);
      expect(r.code).toBe(7);
    } finally {
      served = GREEN;
      defaultsServed = [];
    }
  });

  test('a quota between the largest type and the sum is a warning: the configs take turns', async () => {
    served = GREEN.map((q) => (q.QuotaCode === 'L-3819A6DF' ? { ...q, Value: 8 } : q));
    const r = await cli(env, ['doctor', SPEC, '--ami-parameter', AMI_PARAMETER]);
    expect(r.code).toBe(EXIT.ok);
    expect(line(r.stdout, 'quota spot L-3819A6DF')).toMatch(/^warn\s.*not every config can run at once/);
  });

  test('the default DLAMI parameter missing in the region is a blocker naming the parameter and the fix', async () => {
    served = GREEN;
    const r = await cli(env, ['doctor', SPEC]);
    expect(r.code).toBe(EXIT.blocked);
    const l = line(r.stdout, 'ami /aws/service/deeplearning/ami/x86_64/oss-nvidia-driver-gpu-pytorch-2.11-amazon-linux-2023/latest/ami-id');
    expect(l).toMatch(/^BLOCKER\s.*does not exist in us-east-1 \(needed by a, b\)\. Fix: .*-c amiParameter=/);
  });

  test('a type offered in none of the foundation subnets\' zones is a blocker naming the zones that offer it', async () => {
    served = GREEN.map((q) => ({ ...q, Value: 512 }));
    const spec = specFile('scarce', [{ name: 'big', examples: 10000, instanceTypes: ['p4de.24xlarge'], market: 'spot' }]);
    const r = await cli(env, ['doctor', spec, '--ami-parameter', AMI_PARAMETER]);
    expect(r.code).toBe(EXIT.blocked);
    expect(line(r.stdout, 'offered p4de.24xlarge')).toMatch(
      /^BLOCKER\s.*not offered in the foundation subnets' zones \(us-east-1a, us-east-1d\); us-east-1 offers it in us-east-1b, us-east-1c: config big has no type that can launch\. Fix: .*-c availabilityZones=us-east-1a,us-east-1d,us-east-1b,us-east-1c/,
    );
    expect(line(r.stdout, 'quota spot L-7212CCBC')).toMatch(/^ok\s.*"All P4, P3 and P2 Spot Instance Requests"/);
  });

  test('an unreachable artifact bucket is a blocker', async () => {
    served = GREEN;
    const r = await cli(env, ['doctor', SPEC, '--ami-parameter', AMI_PARAMETER, '--bucket', 'no-such-bucket-doctor']);
    expect(r.code).toBe(EXIT.blocked);
    expect(line(r.stdout, 'artifact bucket')).toMatch(/^BLOCKER\s.*s3:\/\/no-such-bucket-doctor does not exist\. Fix: /);
  });

  test('no CDK bootstrap stack is a blocker with the bootstrap command for this account and region', async () => {
    served = GREEN;
    const cfn = new CloudFormationClient(clientOptions(moto));
    await cfn.send(new DeleteStackCommand({ StackName: 'CDKToolkit' }));
    cfn.destroy();
    try {
      const r = await cli(env, ['doctor', SPEC, '--ami-parameter', AMI_PARAMETER]);
      expect(r.code).toBe(EXIT.blocked);
      expect(line(r.stdout, 'cdk bootstrap')).toMatch(/^BLOCKER\s.*no stack CDKToolkit in us-east-1.*Fix: run npx cdk bootstrap aws:\/\/\d{12}\/us-east-1\./);
    } finally {
      await createToolkit();
    }
  });

  test('a region without the foundation: blockers for the bootstrap stack, the foundation and the bucket', async () => {
    served = GREEN;
    const r = await cli(env, ['doctor', SPEC, '--ami-parameter', AMI_PARAMETER, '--region', 'us-west-2']);
    expect(r.code).toBe(EXIT.blocked);
    expect(line(r.stdout, 'foundation')).toMatch(/^BLOCKER\s.*stack SpotSweep-Foundation is not deployed in us-west-2\. Fix: run npx cdk deploy SpotSweep-Foundation/);
    expect(line(r.stdout, 'artifact bucket')).toMatch(/^BLOCKER\s/);
    expect(line(r.stdout, 'instance type offerings')).toMatch(/^skipped\s/);
  });

  test('a foundation deployed by another version is a blocker', async () => {
    served = GREEN;
    const session = await AwsSession.open({}, env);
    const deps = sessionDeps(session, env);
    try {
      const checks = await runDoctor(deps, loadSpec(SPEC), { amiParameter: AMI_PARAMETER, version: '9.9.9' });
      expect(checks.find((c) => c.name === 'foundation')).toMatchObject({
        result: 'blocker',
        finding: `stack SpotSweep-Foundation was deployed at version ${version}; this checkout is 9.9.9.`,
        fix: expect.stringMatching(/npx cdk deploy SpotSweep-Foundation/),
      });
    } finally {
      session.close();
    }
  });

  test('credentials AWS refuses: one blocker line, every other check skipped', async () => {
    const session = await AwsSession.open({}, env);
    const refused = Object.assign(new Error('The security token included in the request is invalid.'), { name: 'InvalidClientTokenId' });
    const deps: DoctorDeps = { ...sessionDeps(session, env), sts: { callerIdentity: () => Promise.reject(refused) } };
    try {
      const checks = await runDoctor(deps, loadSpec(SPEC));
      expect(checks[0]).toMatchObject({ name: 'credentials', result: 'blocker', finding: expect.stringMatching(/AWS refused the credentials \(InvalidClientTokenId/) });
      expect(checks.slice(1).every((c) => c.result === 'skipped')).toBe(true);
    } finally {
      session.close();
    }
  });

  test('no credentials: one clear line, exit aws, no stack trace', async () => {
    const home = mkdtempSync(path.join(os.tmpdir(), 'spot-sweep-home-'));
    const r = await cli({ PATH: process.env.PATH, HOME: home, AWS_REGION: REGION }, ['doctor', SPEC]);
    expect(r.code).toBe(EXIT.aws);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^spot-sweep doctor: no AWS credentials: run aws configure or set AWS_PROFILE/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('plan runs the AMI and quota checks', () => {
  test('with credentials: their lines, in the text and in --json', async () => {
    served = GREEN.map((q) => (q.QuotaCode === 'L-3819A6DF' ? { ...q, Value: 0 } : q));
    const text = await cli(env, ['plan', SPEC]);
    expect(text.code).toBe(EXIT.ok);
    expect(text.stdout).toMatch(/Account checks in us-east-1 \(spot-sweep doctor .* runs these and more\):/);
    expect(text.stdout).toMatch(/BLOCKER\s+quota spot L-3819A6DF: .*is 0 vCPUs/);
    expect(text.stdout).toMatch(/ami \/aws\/service\/deeplearning\/.*does not exist in us-east-1/);
    const json = await cli(env, ['plan', SPEC, '--json']);
    const doc = JSON.parse(json.stdout);
    expect(doc.accountChecks.region).toBe(REGION);
    expect(doc.accountChecks.checks.map((c: { name: string }) => c.name)).toEqual(expect.arrayContaining(['quota spot L-3819A6DF', 'quota on-demand L-DB2E81BA']));
  });

  test('without credentials or with --offline: says it skipped them', async () => {
    const home = mkdtempSync(path.join(os.tmpdir(), 'spot-sweep-home-'));
    const none = await cli({ PATH: process.env.PATH, HOME: home }, ['plan', SPEC]);
    expect(none.stdout).toMatch(/Account checks \(AMI parameters, vCPU quotas\): skipped, no AWS credentials found; spot-sweep doctor/);
    const offline = await cli(env, ['plan', SPEC, '--offline', '--json']);
    expect(JSON.parse(offline.stdout).accountChecks).toEqual({ checks: [], skipped: '--offline given' });
  });
});

describe('quota arithmetic', () => {
  const spec = loadSpec(SPEC);

  test('each config counts its largest type; spot-then-on-demand counts on both markets', () => {
    const { needs } = sweepQuotaNeeds(spec, GREEN);
    expect(needs.map((n) => [n.market, n.quotaCode, n.neededVcpus, n.configs])).toEqual([
      ['spot', 'L-3819A6DF', 12, ['a', 'b']],
      ['on-demand', 'L-DB2E81BA', 8, ['b']],
    ]);
  });

  test('the quota naming the generation wins over the one naming only the letter; split P quotas are told apart', () => {
    const both = [...GREEN, quota('L-OLDP', 'All P Spot Instance Requests', 32)];
    expect(quotaFor('p5.48xlarge', 'spot', both)?.QuotaCode).toBe('L-C4BD4855');
    expect(quotaFor('p4d.24xlarge', 'spot', both)?.QuotaCode).toBe('L-7212CCBC');
    expect(quotaFor('g6e.xlarge', 'spot', both)?.QuotaCode).toBe('L-3819A6DF');
    expect(quotaFor('p5.48xlarge', 'on-demand', both)?.QuotaCode).toBe('L-417A185B');
    expect(quotaFor('g5.xlarge', 'spot', [quota('L-34B43A08', 'All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests', 5)])).toBeUndefined();
  });

  test('a blocker only when a config has no type or market its quotas allow; a short quota it can work around is a warning', () => {
    const spotZero = GREEN.map((q) => (q.QuotaCode === 'L-3819A6DF' ? { ...q, Value: 0 } : q));
    // Only b, which may fall back to on-demand (the budget guard moves it after two failed spot launches).
    const fallback = loadSpec(specFile('fallback', [{ name: 'b', examples: 10000, instanceTypes: ['g5.2xlarge'], market: 'spot-then-on-demand' }]));
    const [spotLine] = quotaChecks(fallback, spotZero, REGION).filter((c) => c.name === 'quota spot L-3819A6DF');
    expect(spotLine.result).toBe('warn');
    expect(spotLine.finding).toMatch(/b can still launch a smaller type or in its other market/);
    // Its on-demand quota at 0 too: nothing can launch it.
    const bothZero = spotZero.map((q) => (q.QuotaCode === 'L-DB2E81BA' ? { ...q, Value: 0 } : q));
    expect(quotaChecks(fallback, bothZero, REGION).filter((c) => c.result === 'blocker').map((c) => c.name)).toEqual(['quota spot L-3819A6DF', 'quota on-demand L-DB2E81BA']);
    // A config whose smaller type fits: 8 vCPUs hold a g5.2xlarge, not a g5.12xlarge.
    const mixed = loadSpec(specFile('mixed', [{ name: 'm', examples: 10000, instanceTypes: ['g5.2xlarge', 'g5.12xlarge'], market: 'spot' }]));
    const eight = GREEN.map((q) => (q.QuotaCode === 'L-3819A6DF' ? { ...q, Value: 8 } : q));
    const [mixedLine] = quotaChecks(mixed, eight, REGION);
    expect(mixedLine).toMatchObject({ result: 'warn' });
    expect(mixedLine.finding).toMatch(/no g5\.12xlarge can launch; m can still launch a smaller type/);
  });

  test('with maxParallel the need is the sum over the maxParallel largest configs, and a quota that holds them is ok', () => {
    const configs = [
      { name: 'small', examples: 10000, instanceTypes: ['g5.xlarge'] },
      { name: 'big', examples: 10000, instanceTypes: ['g5.12xlarge'] },
      { name: 'mid', examples: 10000, instanceTypes: ['g5.2xlarge'] },
      { name: 'tiny', examples: 10000, instanceTypes: ['g5.xlarge'] },
    ];
    const sixty = GREEN.map((q) => (q.QuotaCode === 'L-3819A6DF' ? { ...q, Value: 60 } : q));
    const all = { ...loadSpec(specFile('uncapped', configs)), maxParallel: null };
    const capped = { ...all, maxParallel: 2 };
    // 48 + 4 + 8 + 4 without a cap; big (48) and mid (8) are the two largest.
    expect(sweepQuotaNeeds(all, sixty).needs.map((n) => [n.neededVcpus, n.maxParallel])).toEqual([[64, undefined]]);
    expect(sweepQuotaNeeds(capped, sixty).needs.map((n) => [n.neededVcpus, n.maxParallel])).toEqual([[56, 2]]);
    const [uncappedLine] = quotaChecks(all, sixty, REGION);
    expect(uncappedLine.result).toBe('warn');
    expect(uncappedLine.finding).toMatch(/the sweep needs 64 vCPUs at once \(small, big, mid, tiny;.*not every config can run at once/);
    const [cappedLine] = quotaChecks(capped, sixty, REGION);
    expect(cappedLine).toMatchObject({ result: 'ok' });
    expect(cappedLine.finding).toMatch(/is 60 vCPUs in us-east-1; the sweep needs 56 vCPUs at once \(maxParallel 2\)/);
    // Short of even the capped need: a warning that names the cap.
    const fifty = GREEN.map((q) => (q.QuotaCode === 'L-3819A6DF' ? { ...q, Value: 50 } : q));
    expect(quotaChecks(capped, fifty, REGION)[0].finding).toMatch(/the 2 configs maxParallel allows cannot all run at once; the others wait for capacity/);
    // A cap at or above the number of configs caps nothing.
    expect(sweepQuotaNeeds({ ...all, maxParallel: 4 }, sixty).needs[0]).not.toHaveProperty('maxParallel');
  });

  test("with maxParallel: a blocker when the Lambda concurrency quota leaves the scheduler nothing to reserve; nothing without a cap", () => {
    const configs = [{ name: 'a', instanceTypes: ['g5.xlarge'] }, { name: 'b', instanceTypes: ['g5.xlarge'] }];
    const spec = { ...loadSpec(specFile('lambda', configs)), maxParallel: 1 };
    const lambda = (value: number) => [quota('L-B99A9384', 'Concurrent executions', value)];
    const low = lambdaConcurrencyCheck(spec, lambda(10), REGION)!;
    expect(low.result).toBe('blocker');
    expect(low.finding).toBe('"Concurrent executions" (L-B99A9384) is 10 in us-east-1; with maxParallel 1 the scheduler reserves 1 and Lambda keeps 100 unreserved, so cdk deploy would fail creating the scheduler.');
    expect(low.fix).toContain('--service-code lambda --quota-code L-B99A9384');
    expect(lambdaConcurrencyCheck(spec, lambda(100), REGION)!.result).toBe('blocker');
    expect(lambdaConcurrencyCheck(spec, lambda(101), REGION)!.result).toBe('ok');
    expect(lambdaConcurrencyCheck(spec, [], REGION)!.result).toBe('warn');
    expect(lambdaConcurrencyCheck({ ...spec, maxParallel: null }, lambda(10), REGION)).toBeUndefined();
  });

  test('quotaHeadroom: whether one instance of each type fits its quota', async () => {
    const source = { list: async () => GREEN.map((q) => (q.QuotaCode === 'L-3819A6DF' ? { ...q, Value: 4 } : q)) };
    const room = await quotaHeadroom(source, ['g4dn.xlarge', 'g5.2xlarge', 'p4d.24xlarge'], 'spot');
    expect(room.get('g4dn.xlarge')).toEqual({ family: 'g4dn', market: 'spot', quotaCode: 'L-3819A6DF', quotaName: 'All G and VT Spot Instance Requests', limitVcpus: 4, neededVcpus: 4, ok: true });
    expect(room.get('g5.2xlarge')?.ok).toBe(false);
    expect(room.get('p4d.24xlarge')).toMatchObject({ quotaCode: 'L-7212CCBC', limitVcpus: 0, neededVcpus: 96, ok: false });
  });
});
