import { createHash } from 'node:crypto';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { groupName, jobParameterName, storeKeys } from '../../lib/contract';
import { RESTART_RESOURCE_TYPE } from '../../lib/constructs/config-restart';
import { FoundationStack } from '../../lib/foundation-stack';
import { SweepSpec, validateSpec } from '../../lib/spec';
import { SweepStack } from '../../lib/sweep-stack';
import { onEvent } from '../../lambda/config-restart/restart';
import { fileStore } from '../../lib/store';

/** The feature flags of cdk.json, as `cdk synth` applies them. */
const CDK_CONTEXT = require('../../cdk.json').context as Record<string, unknown>;

type Resource = { Type: string; Properties: Record<string, any>; DependsOn?: string[]; UpdatePolicy?: Record<string, any> };

function synth(spec: SweepSpec): Record<string, Resource> {
  const app = new App({ context: CDK_CONTEXT });
  const foundation = new FoundationStack(app, 'SpotSweep-Foundation');
  const stack = new SweepStack(app, `SpotSweep-${spec.name}`, { spec, foundation });
  return Template.fromStack(stack).toJSON().Resources as Record<string, Resource>;
}

/** A value as CloudFormation resolves it, every reference in it (here: the artifact bucket's name or ARN, the partition, region, account) given as `ref`. */
function resolve(value: unknown, ref = '<ref>'): string {
  if (typeof value === 'string') return value;
  const join = (value as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (join) return join[1].map((v) => resolve(v, ref)).join(join[0]);
  return ref;
}

const spec = (epochs: number): SweepSpec =>
  validateSpec({ name: 'rs', budgetUsd: 5, data: 's3://data-bucket/x/', configs: [{ name: 'a', train: { epochs } }, { name: 'b' }, { name: 'c', market: 'on-demand' }] });

describe('ConfigRestart: what makes cdk deploy start a config', () => {
  const resources = synth(spec(2));
  const entries = Object.entries(resources);
  const idOf = (type: string, match: (r: Resource) => boolean): string => entries.find(([, r]) => r.Type === type && match(r))![0];
  const restarts = entries.filter(([, r]) => r.Type === RESTART_RESOURCE_TYPE);
  const restartOf = (config: string): Resource => restarts.find(([, r]) => r.Properties.Config === config)![1];
  const jobParameterOf = (config: string): string => idOf('AWS::SSM::Parameter', (r) => r.Properties.Name === jobParameterName('rs', config));

  test('one restart resource per config, whose Job is the job.json CloudFormation writes into the config parameter', () => {
    expect(restarts.map(([, r]) => r.Properties.Config).sort()).toEqual(['a', 'b', 'c']);
    for (const config of ['a', 'b', 'c']) {
      const { Properties: p } = restartOf(config);
      expect(p.GroupName).toBe(groupName('rs', config));
      // The very value CloudFormation writes into the parameter the job runner reads (ssm:/spot-sweep/rs/<config>/job).
      expect(p.Job).toEqual(resources[jobParameterOf(config)].Properties.Value);
      expect(Object.keys(p).sort()).toEqual(['Config', 'GroupName', 'Job', 'ServiceToken']);
    }
  });

  test("the digest the handler compares is the sha256 of that config's job.json bytes as synthesized", async () => {
    const synthesized = resolve(resources[jobParameterOf('b')].Properties.Value, 'artifacts-bucket');
    expect(JSON.parse(synthesized)).toMatchObject({ sweep: 'rs', config: 'b', store: `s3://artifacts-bucket/${storeKeys.config('rs', 'b')}` });
    const deps = { store: fileStore('/nonexistent-spot-sweep-store'), startGroup: async () => undefined, liveInstances: async () => [], replaceInstance: async () => undefined, log: () => undefined };
    const r = await onEvent(deps, 'rs', { RequestType: 'Create', ResourceProperties: { Config: 'b', GroupName: groupName('rs', 'b'), Job: synthesized } });
    expect(r.Data.JobDigest).toBe(`sha256:${createHash('sha256').update(Buffer.from(synthesized, 'utf8')).digest('hex')}`);
  });

  test('editing one config changes only its restart resource, so CloudFormation sends Update to that one alone', () => {
    const edited = synth(spec(4));
    const restart = (rs: Record<string, Resource>, config: string) => Object.entries(rs).find(([, r]) => r.Type === RESTART_RESOURCE_TYPE && r.Properties.Config === config)!;
    expect(restart(edited, 'a')[0]).toBe(restart(resources, 'a')[0]);
    expect(JSON.parse(resolve(restart(edited, 'a')[1].Properties.Job)).train.epochs).toBe(4);
    expect(restart(edited, 'a')[1].Properties.Job).not.toEqual(restart(resources, 'a')[1].Properties.Job);
    for (const config of ['b', 'c']) expect(restart(edited, config)).toEqual(restart(resources, config));
  });

  test('each restart waits for its job.json, its group and its association, and through the group for the instance access', () => {
    for (const config of ['a', 'b', 'c']) {
      const group = idOf('AWS::AutoScaling::AutoScalingGroup', (r) => r.Properties.AutoScalingGroupName === groupName('rs', config));
      const association = idOf('AWS::SSM::Association', (r) => r.Properties.AssociationName === groupName('rs', config));
      expect(restartOf(config).DependsOn).toEqual(expect.arrayContaining([jobParameterOf(config), group, association]));
      expect(resources[group].DependsOn).toEqual(expect.arrayContaining([jobParameterOf(config), expect.stringMatching(/^InstanceAccess/)]));
    }
  });

  test('the groups hold no desired capacity: CloudFormation creates them at 0 and, ignoring unmodified sizes, never starts them again', () => {
    for (const [, r] of entries.filter(([, r]) => r.Type === 'AWS::AutoScaling::AutoScalingGroup')) {
      expect([r.Properties.MinSize, r.Properties.MaxSize, r.Properties.DesiredCapacity]).toEqual(['0', '1', undefined]);
      expect(r.UpdatePolicy).toEqual({ AutoScalingScheduledAction: { IgnoreUnmodifiedGroupSizeProperties: true } });
    }
  });

  test("the handler may resize, and replace instances of, exactly the sweep's groups, and write only the configs' control.json", () => {
    const fn = idOf('AWS::Lambda::Function', (r) => /start a config's group/.test(r.Properties.Description ?? ''));
    const role = resources[fn].Properties.Role['Fn::GetAtt'][0];
    const policy = entries.find(([, r]) => r.Type === 'AWS::IAM::Policy' && r.Properties.Roles.some((x: any) => x.Ref === role))![1];
    const statements = policy.Properties.PolicyDocument.Statement as { Sid?: string; Action: string | string[]; Resource: unknown; Condition?: unknown }[];
    const actions = statements.flatMap((s) => [s.Action].flat()).sort();
    // No ec2:RunInstances, iam:PassRole or ec2:CreateTags: no request names a launch template.
    expect(actions).toEqual([
      'autoscaling:DescribeAutoScalingGroups',
      'autoscaling:TerminateInstanceInAutoScalingGroup',
      'autoscaling:UpdateAutoScalingGroup',
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      's3:GetObject',
      's3:ListBucket',
      's3:PutObject',
    ]);
    const resourcesOf = (sid: string) => [statements.find((s) => s.Sid === sid)!.Resource].flat().map((x) => resolve(x));
    expect(resourcesOf('StartSweepGroups').sort()).toEqual(['a', 'b', 'c'].map((c) => `arn:<ref>:autoscaling:<ref>:<ref>:autoScalingGroup:*:autoScalingGroupName/${groupName('rs', c)}`));
    expect(resourcesOf('WriteStartRequests').sort()).toEqual(['a', 'b', 'c'].map((c) => `<ref>/${storeKeys.configFile('rs', c, 'control')}`));
    // A missing status.json must read as 404, not 403: ListBucket without an s3:prefix condition.
    const list = statements.find((s) => s.Sid === 'ListArtifactBucket')!;
    expect(list.Action).toBe('s3:ListBucket');
    expect(list.Condition).toBeUndefined();
  });
});
