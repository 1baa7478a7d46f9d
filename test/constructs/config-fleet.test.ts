import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { readFileSync } from 'fs';
import { join } from 'path';
import { groupName, jobTagValue, METRICS, NAMES, storeKeys, TAGS, TERMINATION_HOOK } from '../../lib/contract';
import { agentBaseConfig, agentLogsConfigJson } from '../../lib/constructs/cloudwatch-agent-config';
import { ConfigFleet, ConfigFleetProps, TERMINATION_HEARTBEAT } from '../../lib/constructs/config-fleet';
import { DLAMI_PARAMETERS, ROOT_DEVICE_NAME } from '../../lib/constructs/config-launch-template';
import { DEADLINE_MARGIN_MINUTES } from '../../lib/constructs/instance-deadline';
import { TrainDocument } from '../../lib/constructs/train-document';
import { ResolvedConfig, validateSpec } from '../../lib/spec';

/** A bare stack with what a fleet needs (no foundation, no Lambdas: quick to synthesize). */
function fleet(config: Partial<ResolvedConfig> & { name: string }, extra: Partial<ConfigFleetProps> = {}): { fleet: ConfigFleet; template: Template } {
  const app = new App();
  const stack = new Stack(app, 'Test');
  const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0, subnetConfiguration: [{ name: 'public', subnetType: ec2.SubnetType.PUBLIC }] });
  const role = new iam.Role(stack, 'Role', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
  const bucket = new s3.Bucket(stack, 'Bucket');
  const resolved = validateSpec({ name: 'fx', budgetUsd: 5, data: 's3://data-bucket/x/', configs: [{ name: config.name }] }).configs[0];
  const construct = new ConfigFleet(stack, 'Fleet', {
    sweepName: 'fx',
    config: { ...resolved, ...config },
    vpc,
    subnets: { subnetType: ec2.SubnetType.PUBLIC },
    securityGroup: new ec2.SecurityGroup(stack, 'Sg', { vpc }),
    instanceProfile: new iam.InstanceProfile(stack, 'Profile', { role }),
    trainDocument: new TrainDocument(stack, 'Train', { bucket }),
    bucket,
    jobUri: 's3://bucket/sweeps/fx/a/job.json',
    codeUri: 's3://bucket/code.zip',
    ...extra,
  });
  return { fleet: construct, template: Template.fromStack(stack) };
}

const imageParameter = (template: Template, lt: any): string => template.toJSON().Parameters[lt.Properties.LaunchTemplateData.ImageId.Ref].Default;

describe('ConfigFleet', () => {
  test('names the group SpotSweep-<sweep>-<config>', () => {
    expect(groupName('seed-plan', 'o')).toBe('SpotSweep-seed-plan-o');
  });

  test('construct ids are API: the launch templates, group, association and alarms keep their logical ids', () => {
    const { template } = fleet({ name: 'a', instanceTypes: ['p3.2xlarge', 'g5.2xlarge'], gpus: 1, allowV100: true });
    const ids = Object.keys(template.toJSON().Resources).filter((id) => id.startsWith('Fleet')).map((id) => id.replace(/[0-9A-F]{8}$/, ''));
    expect(ids.sort()).toEqual(['FleetAssociation', 'FleetGpuIdle', 'FleetGroupASG', 'FleetGroupLifecycleHookCheckpoint', 'FleetLaunchTemplate', 'FleetLaunchTemplateVolta', 'FleetMaxRuntime', 'FleetScaleToZero']);
  });

  test('every termination waits in the contract-named lifecycle hook long enough to checkpoint, then continues', () => {
    const { template } = fleet({ name: 'a' });
    const hooks = template.findResources('AWS::AutoScaling::LifecycleHook');
    expect(Object.values(hooks)).toHaveLength(1);
    const [hook] = Object.values(hooks);
    expect(hook.Properties).toEqual({
      AutoScalingGroupName: expect.anything(),
      LifecycleHookName: TERMINATION_HOOK,
      LifecycleTransition: 'autoscaling:EC2_INSTANCE_TERMINATING',
      HeartbeatTimeout: TERMINATION_HEARTBEAT.toSeconds(),
      DefaultResult: 'CONTINUE',
    });
    // The hook belongs to this config's group; it has no notification target (the instance polls its metadata).
    const [groupId] = Object.keys(template.findResources('AWS::AutoScaling::AutoScalingGroup'));
    expect(hook.Properties.AutoScalingGroupName).toEqual({ Ref: groupId });
    // Longer than the trainer's 100 s grace period plus uploads; within PutLifecycleHook's 30 to 7200 s.
    expect(TERMINATION_HEARTBEAT.toSeconds()).toBeGreaterThanOrEqual(300);
    expect(TERMINATION_HEARTBEAT.toSeconds()).toBeLessThanOrEqual(7200);
    // The bootstrap completes the action by the names it sources from names.sh, generated from the same names.json.
    const namesSh = readFileSync(join(__dirname, '../../training/contract/names.sh'), 'utf8');
    expect(namesSh).toContain(`SPOT_SWEEP_LIFECYCLE_HOOK_TERMINATION=${TERMINATION_HOOK}\n`);
    expect(namesSh).toContain(`SPOT_SWEEP_GROUP_NAME='${NAMES.groupName}'\n`);
  });

  test('names, tags and the association output folder come from the contract', () => {
    const { template } = fleet({ name: 'a', market: 'spot-then-on-demand' });
    const [group] = Object.values(template.findResources('AWS::AutoScaling::AutoScalingGroup'));
    expect(group.Properties.AutoScalingGroupName).toBe(groupName('fx', 'a'));
    expect(group.Properties.Tags).toEqual(
      expect.arrayContaining([
        { Key: TAGS.sweep, Value: 'fx', PropagateAtLaunch: true },
        { Key: TAGS.config, Value: 'a', PropagateAtLaunch: true },
        { Key: TAGS.job, Value: jobTagValue('fx', 'a'), PropagateAtLaunch: true },
        { Key: TAGS.market, Value: 'spot-then-on-demand', PropagateAtLaunch: true },
      ]),
    );
    const [association] = Object.values(template.findResources('AWS::SSM::Association'));
    expect(association.Properties.Targets).toEqual([{ Key: `tag:${TAGS.job}`, Values: [jobTagValue('fx', 'a')] }]);
    expect(association.Properties.OutputLocation.S3Location.OutputS3KeyPrefix).toBe(storeKeys.configFile('fx', 'a', 'ssmOutput'));
  });

  test('the CloudWatch agent publishes in the contract namespace with the group dimension, and ships the job logs', () => {
    expect(agentBaseConfig()).toMatchObject({ metrics: { namespace: METRICS.agentNamespace, aggregation_dimensions: [[METRICS.dimensions.group]] } });
    expect(JSON.parse(agentLogsConfigJson('/var/log/x', 'grp'))).toEqual({
      logs: { logs_collected: { files: { collect_list: [{ file_path: '/var/log/x/*.log', log_group_name: 'grp', log_stream_name: '{instance_id}', timezone: 'UTC' }] } } },
    });
  });

  test('a config mixing V100 and newer GPUs gets one launch template per AMI, same root device', () => {
    const { fleet: f, template } = fleet({ name: 'a', instanceTypes: ['p3.2xlarge', 'g5.2xlarge', 'p3.8xlarge'], gpus: 1, allowV100: true });
    expect(f.launchTemplates.size).toBe(2);
    const lts = template.findResources('AWS::EC2::LaunchTemplate');
    const group = Object.values(template.findResources('AWS::AutoScaling::AutoScalingGroup'))[0];
    const amiOf = (type: string) =>
      imageParameter(template, lts[group.Properties.MixedInstancesPolicy.LaunchTemplate.Overrides.find((o: any) => o.InstanceType === type).LaunchTemplateSpecification.LaunchTemplateId.Ref]);
    expect(['p3.2xlarge', 'g5.2xlarge', 'p3.8xlarge'].map(amiOf)).toEqual([DLAMI_PARAMETERS.volta, DLAMI_PARAMETERS.modern, DLAMI_PARAMETERS.volta]);
    for (const lt of Object.values(lts)) expect(lt.Properties.LaunchTemplateData.BlockDeviceMappings[0].DeviceName).toBe(ROOT_DEVICE_NAME);
  });

  test('an AMI parameter override (for emulators) gives a single launch template reading it', () => {
    const { template } = fleet({ name: 'a', instanceTypes: ['p3.2xlarge', 'g5.xlarge'], gpus: 1, allowV100: true }, { amiParameterName: '/spot-sweep/ami-id' });
    const lts = Object.values(template.findResources('AWS::EC2::LaunchTemplate'));
    expect(lts).toHaveLength(1);
    expect(imageParameter(template, lts[0])).toBe('/spot-sweep/ami-id');
  });

  test('the association is not tagged (cfn-lint has no Tags on AWS::SSM::Association) and has no schedule', () => {
    const [association] = Object.values(fleet({ name: 'a' }).template.findResources('AWS::SSM::Association'));
    expect(association.Properties.Tags).toBeUndefined();
    expect(association.Properties.ScheduleExpression).toBeUndefined();
  });

  test('every launch template\'s user data arms the instance deadline first: maxRuntimeHours + the margin after boot', () => {
    const { template } = fleet({ name: 'a', instanceTypes: ['p3.2xlarge', 'g5.2xlarge'], gpus: 1, maxRuntimeHours: 3, allowV100: true });
    const templates = Object.values(template.findResources('AWS::EC2::LaunchTemplate'));
    expect(templates).toHaveLength(2);
    for (const lt of templates) {
      const userData = JSON.stringify(lt.Properties.LaunchTemplateData.UserData);
      const timer = userData.indexOf(`--on-active=${3 * 3600 + DEADLINE_MARGIN_MINUTES * 60}s`);
      expect(timer).toBeGreaterThan(0);
      expect(timer).toBeLessThan(userData.indexOf('amazon-cloudwatch-agent'));
    }
  });

  test('a config without V100 types has no V100 launch template and no parameter for its AMI', () => {
    const { fleet: f, template } = fleet({ name: 'a', instanceTypes: ['g5.2xlarge', 'g6e.2xlarge', 'p5.48xlarge'], gpus: 1 });
    expect([...f.launchTemplates.keys()]).toEqual(['modern']);
    const amis = Object.values(template.toJSON().Parameters ?? {}).filter((p: any) => p.Type === 'AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>');
    expect(amis.map((p: any) => p.Default)).toEqual([DLAMI_PARAMETERS.modern]);
  });

  test('fails when a V100 type is given without allowV100, so its AMI parameter is never created by accident', () => {
    expect(() => fleet({ name: 'a', instanceTypes: ['g5.2xlarge', 'p3.2xlarge'], gpus: 1 })).toThrow(/Fleet: a V100 \(p3\) instance type without allowV100.*set allowV100 in the config/);
  });

  test('fails when an instance type is not a GPU type of the price table', () => {
    expect(() => fleet({ name: 'a', instanceTypes: ['m5.large'] })).toThrow(/instance type "m5.large" is not a GPU type/);
  });

  test('fails when the AMI parameter override is not a parameter name', () => {
    expect(() => fleet({ name: 'a' }, { amiParameterName: 'ami-0123456789abcdef0' })).toThrow(/amiParameter "ami-0123456789abcdef0" is not an SSM parameter name/);
  });

  test('fails when maxRuntimeHours is beyond the 48 h of SSM runShellScript', () => {
    expect(() => fleet({ name: 'a', maxRuntimeHours: 49 })).toThrow(/allows 1 to 172800 s/);
  });
});
