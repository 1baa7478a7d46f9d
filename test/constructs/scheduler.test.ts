import { App, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { groupName, storeKeys } from '../../lib/contract';
import { RESTART_RESOURCE_TYPE } from '../../lib/constructs/config-restart';
import { FoundationStack } from '../../lib/foundation-stack';
import { SweepSpec, validateSpec } from '../../lib/spec';
import { SweepStack } from '../../lib/sweep-stack';

/** The feature flags of cdk.json, as `cdk synth` applies them. */
const CDK_CONTEXT = require('../../cdk.json').context as Record<string, unknown>;
type Resource = { Type: string; Properties: Record<string, any> };

function build(spec: SweepSpec): { app: App; stack: SweepStack; resources: Record<string, Resource> } {
  const app = new App({ context: CDK_CONTEXT });
  const foundation = new FoundationStack(app, 'SpotSweep-Foundation');
  const stack = new SweepStack(app, `SpotSweep-${spec.name}`, { spec, foundation });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack, resources: Template.fromStack(stack).toJSON().Resources as Record<string, Resource> };
}
const raw = (extra: object) => ({ name: 'par', budgetUsd: 5, data: 's3://data-bucket/x/', configs: [{ name: 'a' }, { name: 'b' }, { name: 'c' }], ...extra });
/** Flattens Fn::Join into a string; any other intrinsic becomes `<ref>`. */
function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  const join = (value as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  return join ? join[1].map(flatten).join(join[0]) : '<ref>';
}

describe('Scheduler: the maxParallel cap', () => {
  const { app, stack, resources } = build(validateSpec(raw({ maxParallel: 2 })));
  const all = Object.entries(resources);
  const fn = all.find(([, r]) => r.Type === 'AWS::Lambda::Function' && r.Properties.Environment?.Variables?.MAX_PARALLEL && r.Properties.Environment.Variables.CONFIGS)!;
  const rules = all.filter(([, r]) => r.Type === 'AWS::Events::Rule' && r.Properties.Targets?.some((t: any) => t.Arn?.['Fn::GetAtt']?.[0] === fn[0]));

  test('one function with reserved concurrency 1 (runs queue, they never overlap), the configs in spec order and the cap', () => {
    expect(fn[1].Properties.ReservedConcurrentExecutions).toBe(1);
    expect(fn[1].Properties.Environment.Variables).toMatchObject({ SWEEP: 'par', CONFIGS: '["a","b","c"]', MAX_PARALLEL: '2' });
  });

  test('runs every minute, and on Auto Scaling instance-terminated events of exactly the sweep groups', () => {
    expect(rules).toHaveLength(2);
    expect(rules.map(([, r]) => r.Properties.ScheduleExpression).filter(Boolean)).toEqual(['rate(1 minute)']);
    const pattern = rules.map(([, r]) => r.Properties.EventPattern).find(Boolean);
    expect(pattern).toEqual({
      source: ['aws.autoscaling'],
      'detail-type': ['EC2 Instance Terminate Successful'],
      detail: { AutoScalingGroupName: ['a', 'b', 'c'].map((c) => groupName('par', c)) },
    });
    for (const [, r] of rules) expect(r.Properties.Targets[0].RetryPolicy).toEqual({ MaximumRetryAttempts: 0 });
  });

  test("its rules come after every restart resource (so after every group's association and job parameter)", () => {
    const restartIds = all.filter(([, r]) => r.Type === RESTART_RESOURCE_TYPE).map(([id]) => id).sort();
    expect(restartIds).toHaveLength(3);
    for (const [, r] of rules) expect([...((r as any).DependsOn ?? [])].filter((d: string) => restartIds.includes(d)).sort()).toEqual(restartIds);
  });

  test("its role may resize only the sweep's groups, read only their job parameters, status.json, control.json and scheduled.json, and write only scheduled.json", () => {
    const roleId = fn[1].Properties.Role['Fn::GetAtt'][0];
    const policy = all.find(([, r]) => r.Type === 'AWS::IAM::Policy' && r.Properties.Roles.some((x: any) => x.Ref === roleId))![1];
    const statements = Object.fromEntries((policy.Properties.PolicyDocument.Statement as any[]).filter((s) => s.Sid).map((s) => [s.Sid, s]));
    expect(statements.StartSweepGroups.Action).toBe('autoscaling:UpdateAutoScalingGroup');
    expect(statements.StartSweepGroups.Resource.map(flatten)).toEqual(['a', 'b', 'c'].map((c) => `arn:<ref>:autoscaling:<ref>:<ref>:autoScalingGroup:*:autoScalingGroupName/${groupName('par', c)}`));
    expect(statements.DescribeGroups).toMatchObject({ Action: 'autoscaling:DescribeAutoScalingGroups', Resource: '*' });
    expect(statements.ReadJobParameters.Action).toBe('ssm:GetParameter');
    expect(statements.ReadJobParameters.Resource).toHaveLength(3);
    expect(statements.ReadJobState.Action).toBe('s3:GetObject');
    expect(statements.ReadJobState.Resource.map(flatten).sort()).toEqual(
      ['a', 'b', 'c'].flatMap((c) => (['status', 'control', 'scheduled'] as const).map((f) => `<ref>/${storeKeys.configFile('par', c, f)}`)).sort(),
    );
    // It writes one file, its own record of each start, and nothing else.
    expect(statements.RecordStarts.Action).toBe('s3:PutObject');
    expect(statements.RecordStarts.Resource.map(flatten).sort()).toEqual(['a', 'b', 'c'].map((c) => `<ref>/${storeKeys.configFile('par', c, 'scheduled')}`).sort());
    const puts = (policy.Properties.PolicyDocument.Statement as any[]).filter((s) => [s.Action].flat().some((a: string) => a.startsWith('s3:Put')));
    expect(puts.map((s) => s.Sid)).toEqual(['RecordStarts']);
    const actions = (policy.Properties.PolicyDocument.Statement as any[]).flatMap((s) => [s.Action].flat());
    expect(actions.filter((a) => a.includes('*'))).toEqual([]);
  });

  test('the restart resources leave starting to it: their handler gets MAX_PARALLEL', () => {
    const restartFn = stack.restart.function.node.defaultChild as any;
    expect(stack.resolve(restartFn.environment).variables.MAX_PARALLEL).toBe('2');
    expect(all.filter(([, r]) => r.Type === RESTART_RESOURCE_TYPE)).toHaveLength(3);
  });

  test('cdk-nag AwsSolutions reports no unacknowledged finding', () => {
    const findings = new AwsSolutionsChecks().validateScope(app).violations.map((v) => `${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(', ')}`);
    expect(findings).toEqual([]);
  });
});

test('without maxParallel there is no scheduler and the restart handler starts the groups itself (no MAX_PARALLEL)', () => {
  const { stack, resources } = build(validateSpec(raw({})));
  expect(stack.scheduler).toBeUndefined();
  const vars = Object.values(resources).filter((r) => r.Type === 'AWS::Lambda::Function').map((r) => r.Properties.Environment?.Variables ?? {});
  expect(vars.filter((v) => 'MAX_PARALLEL' in v)).toEqual([]);
  expect(Object.values(resources).filter((r) => r.Properties?.ReservedConcurrentExecutions !== undefined)).toEqual([]);
});

test('fails when the scheduler is given a cap below 1, naming the spec field', () => {
  const spec = { ...validateSpec(raw({})), maxParallel: 0 };
  expect(() => build(spec)).toThrow(/maxParallel is 0; set the spec's maxParallel to a whole number >= 1/);
});
