import { AutoScalingClient, DescribeAutoScalingGroupsCommand, TerminateInstanceInAutoScalingGroupCommand, UpdateAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import { S3Client } from '@aws-sdk/client-s3';
import { s3Store } from '../../lib/store';
import { requireEnv } from '../shared/env';
import { onEvent, RestartDeps, RestartEvent, RestartResponse } from './restart';

/**
 * The onEvent handler of the sweep's restart custom resources (lib/constructs/config-restart.ts), behind
 * CDK's Provider framework, which answers CloudFormation. Environment: SWEEP, BUCKET, and MAX_PARALLEL only
 * when the spec sets maxParallel (then lambda/scheduler starts the groups).
 */
const sweep = requireEnv('SWEEP');
/**
 * Lifecycle states of an instance on its way out, already leaving the group.
 * @see https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_Instance.html
 */
const LEAVING = new Set(['Terminating', 'Terminating:Wait', 'Terminating:Proceed', 'Terminated']);
const autoscaling = new AutoScalingClient({});
const maxParallel = process.env.MAX_PARALLEL ? Number(process.env.MAX_PARALLEL) : undefined;
const deps: RestartDeps = {
  maxParallel,
  store: s3Store({
    client: new S3Client({}),
    bucket: requireEnv('BUCKET'),
    explain: (err, call) => new Error(`${call} failed: ${(err as Error).message}. The deploy fails rather than start a config whose files it cannot read.`),
  }),
  async startGroup(groupName) {
    // Max 1 as well as desired 1: `spot-sweep stop` and the budget stop leave the group at 0/0/0, and a desired
    // capacity above the maximum is refused. Only the sizes are sent: "Any properties that you don't specify are
    // not changed by this update request."
    // @see https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_UpdateAutoScalingGroup.html
    await autoscaling.send(new UpdateAutoScalingGroupCommand({ AutoScalingGroupName: groupName, MinSize: 0, MaxSize: 1, DesiredCapacity: 1 }));
  },
  async liveInstances(groupName) {
    const r = await autoscaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [groupName] }));
    return (r.AutoScalingGroups?.[0]?.Instances ?? []).filter((i) => i.InstanceId && !LEAVING.has(i.LifecycleState ?? '')).map((i) => i.InstanceId as string);
  },
  async replaceInstance(instanceId) {
    // "If you do not specify the option to decrement the desired capacity, Amazon EC2 Auto Scaling launches
    // instances to replace the ones that are terminated."
    // @see https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_TerminateInstanceInAutoScalingGroup.html
    await autoscaling.send(new TerminateInstanceInAutoScalingGroupCommand({ InstanceId: instanceId, ShouldDecrementDesiredCapacity: false }));
  },
  log(message, detail) {
    console.log(JSON.stringify({ level: 'INFO', message, ...detail }));
  },
};

export async function handler(event: RestartEvent): Promise<RestartResponse> {
  return onEvent(deps, sweep, event);
}
