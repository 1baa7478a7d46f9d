import { App, Stack, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ResultsCollector } from '../../lib/constructs/results-collector';
import { FoundationStack } from '../../lib/foundation-stack';

/** A sweep stack using the foundation's bucket (another stack), as bin/app.ts wires it; cdk-nag registered. */
function build(configs: string[] = ['o', 'p']) {
  const app = new App();
  const foundation = new FoundationStack(app, 'SpotSweep-Foundation');
  const stack = new Stack(app, 'SpotSweep-demo');
  new ResultsCollector(stack, 'Results', { sweepName: 'demo', bucket: foundation.bucket, configs });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, template: Template.fromStack(stack) };
}

describe('ResultsCollector', () => {
  const { app, template } = build();

  test('runs on Node.js 22 or newer, arm64, with the sweep and its configs in its environment', () => {
    const fn = Object.values(template.findResources('AWS::Lambda::Function'))[0].Properties;
    expect(Number(/^nodejs(\d+)\.x$/.exec(fn.Runtime)![1])).toBeGreaterThanOrEqual(22);
    expect(fn.Architectures).toEqual(['arm64']);
    expect(fn.Environment.Variables).toMatchObject({ SWEEP: 'demo', CONFIGS: '["o","p"]', NODE_OPTIONS: '--enable-source-maps' });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
  });

  test('is triggered by Object Created events of the bucket for sweeps/demo/<config>/results.json', () => {
    const rules = Object.values(template.findResources('AWS::Events::Rule'));
    expect(rules).toHaveLength(1);
    const pattern = rules[0].Properties.EventPattern;
    expect(pattern.source).toEqual(['aws.s3']);
    expect(pattern['detail-type']).toEqual(['Object Created']);
    expect(pattern.detail.object).toEqual({ key: [{ wildcard: 'sweeps/demo/*/results.json' }] });
    expect(JSON.stringify(pattern.detail.bucket.name)).toMatch(/ArtifactsBucket/);
    expect(rules[0].Properties.Targets).toHaveLength(1);
  });

  test('IAM: no * action; reads under sweeps/demo/, writes only leaderboard.json and report.html', () => {
    const all = Object.values(template.findResources('AWS::IAM::Policy')).flatMap((p) => p.Properties.PolicyDocument.Statement);
    for (const s of all) expect([s.Action].flat().some((a: string) => a === '*' || a.endsWith(':*'))).toBe(false);
    const keyOf = (r: { 'Fn::Join': [string, unknown[]] }) => r['Fn::Join'][1].filter((x) => typeof x === 'string').join('');
    const bySid = (sid: string) => all.find((s) => s.Sid === sid);
    expect(bySid('ReadSweepObjects').Action).toBe('s3:GetObject');
    expect(keyOf(bySid('ReadSweepObjects').Resource)).toBe('/sweeps/demo/*');
    expect(bySid('WriteLeaderboardAndReport').Action).toBe('s3:PutObject');
    expect(bySid('WriteLeaderboardAndReport').Resource.map(keyOf)).toEqual(['/sweeps/demo/leaderboard.json', '/sweeps/demo/report.html']);
  });

  test('a config without results.json yet reads as absent, not denied: ListBucket on the artifact bucket, no s3:prefix condition', () => {
    const all = Object.values(template.findResources('AWS::IAM::Policy')).flatMap((p) => p.Properties.PolicyDocument.Statement);
    const list = all.filter((s: { Action: string | string[] }) => [s.Action].flat().includes('s3:ListBucket'));
    expect(list).toHaveLength(1);
    expect(JSON.stringify(list[0].Resource)).toMatch(/ArtifactsBucket.*Arn/);
    expect(list[0].Condition).toBeUndefined();
  });

  test('cdk-nag AwsSolutions reports no unacknowledged finding', () => {
    expect(new AwsSolutionsChecks().validateScope(app).violations.map((v) => `${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
  });

  test('fails when the sweep has no configs', () => {
    expect(() => build([])).toThrow(/configs is empty; pass every config name of the sweep/);
  });
});
