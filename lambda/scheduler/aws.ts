import { AutoScalingClient, paginateDescribeAutoScalingGroups, UpdateAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import { GetParameterCommand, ParameterNotFound, SSMClient } from '@aws-sdk/client-ssm';
import { jobParameterName } from '../../lib/contract';
import { SweepStore } from '../../lib/store';
import { jobDigest } from '../config-restart/restart';
import { ScheduleDeps } from './schedule';

/** Names per DescribeAutoScalingGroups call: "By default, you can only specify up to 50 names." */
const NAMES_PER_CALL = 50;

/**
 * schedule()'s dependencies on real AWS clients (the handler's, or the moto tests').
 * @see https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DescribeAutoScalingGroups.html
 */
export function awsDeps(clients: { autoscaling: AutoScalingClient; ssm: SSMClient }, store: SweepStore, sweep: string): ScheduleDeps {
  const { autoscaling, ssm } = clients;
  return {
    store,
    async desiredCapacities(names) {
      const out = new Map<string, number>();
      for (let i = 0; i < names.length; i += NAMES_PER_CALL) {
        for await (const page of paginateDescribeAutoScalingGroups({ client: autoscaling }, { AutoScalingGroupNames: names.slice(i, i + NAMES_PER_CALL) })) {
          for (const g of page.AutoScalingGroups ?? []) if (g.AutoScalingGroupName) out.set(g.AutoScalingGroupName, g.DesiredCapacity ?? 0);
        }
      }
      return out;
    },
    async jobDigest(config) {
      // The same bytes the job runner reads and digests (training/spot_runner/job.py).
      try {
        const value = (await ssm.send(new GetParameterCommand({ Name: jobParameterName(sweep, config) }))).Parameter?.Value;
        return value === undefined ? undefined : jobDigest(value);
      } catch (err) {
        if (err instanceof ParameterNotFound) return undefined;
        throw err;
      }
    },
    async startGroup(groupName) {
      // Max 1 as well: `spot-sweep stop` and the budget stop leave 0/0/0, and a desired capacity above the
      // maximum is refused. "Any properties that you don't specify are not changed by this update request."
      // @see https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_UpdateAutoScalingGroup.html
      await autoscaling.send(new UpdateAutoScalingGroupCommand({ AutoScalingGroupName: groupName, MinSize: 0, MaxSize: 1, DesiredCapacity: 1 }));
    },
    log(message, detail) {
      console.log(JSON.stringify({ level: 'INFO', message, ...detail }));
    },
  };
}
