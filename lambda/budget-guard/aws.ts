import { AutoScalingClient, DescribeScalingActivitiesCommand, UpdateAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { DescribeInstancesCommand, DescribeSpotPriceHistoryCommand, EC2Client } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { METRICS, TAGS } from '../../lib/contract';
import { s3Store } from '../../lib/store';
import { GuardDeps } from './guard';
import { ObservedInstance } from './ledger';
import { PricePoint } from './pricing';

/** The guard's calls to EC2, Auto Scaling and CloudWatch; names, tags and metrics from lib/contract. */

/** Every instance tagged with the sweep, in every state (DescribeInstances returns all states unless filtered). */
export async function listSweepInstances(ec2: EC2Client, sweep: string): Promise<ObservedInstance[]> {
  const found: ObservedInstance[] = [];
  let NextToken: string | undefined;
  do {
    // @see https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstances.html (filter `tag:<key>`)
    const page = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: `tag:${TAGS.sweep}`, Values: [sweep] }], NextToken }));
    for (const r of page.Reservations ?? []) {
      for (const i of r.Instances ?? []) {
        if (!i.InstanceId || !i.LaunchTime) continue;
        found.push({
          instanceId: i.InstanceId,
          config: i.Tags?.find((t) => t.Key === TAGS.config)?.Value ?? '(untagged)',
          instanceType: i.InstanceType ?? 'unknown',
          // InstanceLifecycle is `spot` for spot instances and absent for on-demand ones.
          // @see https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Instance.html
          market: i.InstanceLifecycle === 'spot' ? 'spot' : 'on-demand',
          availabilityZone: i.Placement?.AvailabilityZone ?? 'unknown',
          launchTime: i.LaunchTime.toISOString(),
          state: i.State?.Name ?? 'unknown',
          stateReasonCode: i.StateReason?.Code,
          stateTransitionReason: i.StateTransitionReason,
        });
      }
    }
    NextToken = page.NextToken;
  } while (NextToken);
  return found;
}

/** Spot price changes of one type in one AZ between start and end, plus the one in effect at start. */
export async function spotPriceHistory(ec2: EC2Client, instanceType: string, availabilityZone: string, start: Date, end: Date): Promise<PricePoint[]> {
  const points: PricePoint[] = [];
  let NextToken: string | undefined;
  do {
    const page = await ec2.send(
      new DescribeSpotPriceHistoryCommand({
        InstanceTypes: [instanceType as never],
        AvailabilityZone: availabilityZone,
        // The DLAMIs are Linux; `Linux/UNIX` is the VPC product description.
        ProductDescriptions: ['Linux/UNIX'],
        StartTime: start,
        EndTime: end,
        NextToken,
      }),
    );
    for (const p of page.SpotPriceHistory ?? []) {
      if (p.Timestamp && p.SpotPrice) points.push({ atMs: p.Timestamp.getTime(), usdPerHour: Number(p.SpotPrice) });
    }
    NextToken = page.NextToken || undefined;
  } while (NextToken);
  return points;
}

/**
 * Failed spot launches among the group's scaling activities (the past six weeks). A failed launch is
 * an activity with StatusCode `Failed` whose StatusMessage reads `Could not launch Spot Instances.
 * <EC2 error> - ...`, e.g. `UnfulfillableCapacity` or `InsufficientInstanceCapacity`.
 * @see https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DescribeScalingActivities.html
 * @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/ts-as-capacity.html
 * Interruptions are not read from activities: without capacity rebalancing the group only sees a
 * failed health check ("taken out of service in response to an EC2 health check indicating it has been
 * terminated or stopped"), which a manual stop also causes. The instance's StateReason
 * `Server.SpotInstanceTermination` (kept in the ledger) tells interruptions apart.
 */
export async function countSpotLaunchFailures(autoscaling: AutoScalingClient, groupName: string): Promise<number> {
  let count = 0;
  let NextToken: string | undefined;
  let pages = 0;
  do {
    const page = await autoscaling.send(new DescribeScalingActivitiesCommand({ AutoScalingGroupName: groupName, MaxRecords: 100, NextToken }));
    for (const a of page.Activities ?? []) {
      const text = `${a.StatusMessage ?? ''} ${a.Description ?? ''}`;
      if (a.StatusCode === 'Failed' && /could not launch spot instances/i.test(text)) count += 1;
    }
    NextToken = page.NextToken;
    pages += 1;
  } while (NextToken && pages < 10);
  return count;
}

/**
 * Min, max and desired capacity 0: the group terminates its instance and launches no other. The
 * job receives the spot-style shutdown (SIGTERM through systemd) and checkpoints if it still can; the
 * budget stop asks it to stop through control.json first (budget-stop.ts).
 * @see https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_UpdateAutoScalingGroup.html
 */
export async function scaleGroupToZero(autoscaling: AutoScalingClient, groupName: string): Promise<void> {
  await autoscaling.send(new UpdateAutoScalingGroupCommand({ AutoScalingGroupName: groupName, MinSize: 0, MaxSize: 0, DesiredCapacity: 0 }));
}

/**
 * All capacity above the (zero) base on-demand. Only InstancesDistribution is sent: the launch
 * template part of a mixed instances policy is required only when creating one, so the group keeps
 * its launch template and instance types.
 * @see https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_MixedInstancesPolicy.html
 */
export async function switchGroupToOnDemand(autoscaling: AutoScalingClient, groupName: string): Promise<void> {
  await autoscaling.send(
    new UpdateAutoScalingGroupCommand({
      AutoScalingGroupName: groupName,
      MixedInstancesPolicy: { InstancesDistribution: { OnDemandPercentageAboveBaseCapacity: 100 } },
    }),
  );
}

export async function putSpendMetrics(
  cloudwatch: CloudWatchClient,
  sweep: string,
  totalUsd: number,
  instanceHoursByConfig: Readonly<Record<string, number>>,
  now: Date,
): Promise<void> {
  await cloudwatch.send(
    new PutMetricDataCommand({
      Namespace: METRICS.namespace,
      MetricData: [
        // CloudWatch has no currency unit: USD with unit None.
        { MetricName: METRICS.spendUsd, Dimensions: [{ Name: METRICS.dimensions.sweep, Value: sweep }], Value: totalUsd, Unit: 'None', Timestamp: now },
        ...Object.entries(instanceHoursByConfig).map(([config, hours]) => ({
          MetricName: METRICS.instanceHours,
          Dimensions: [
            { Name: METRICS.dimensions.sweep, Value: sweep },
            { Name: METRICS.dimensions.config, Value: config },
          ],
          Value: hours,
          Unit: 'None' as const,
          Timestamp: now,
        })),
      ],
    }),
  );
}

/** The guard's heartbeat: value 1, no unit, timestamped with the run's start (lib/monitoring `guardHeartbeatMetric`). */
export async function putHeartbeatMetric(cloudwatch: CloudWatchClient, sweep: string, at: Date): Promise<void> {
  await cloudwatch.send(
    new PutMetricDataCommand({
      Namespace: METRICS.namespace,
      MetricData: [{ MetricName: METRICS.guardHeartbeat, Dimensions: [{ Name: METRICS.dimensions.sweep, Value: sweep }], Value: 1, Unit: 'None', Timestamp: at }],
    }),
  );
}

export interface AwsClients {
  readonly ec2: EC2Client;
  readonly autoscaling: AutoScalingClient;
  readonly cloudwatch: CloudWatchClient;
  readonly s3: S3Client;
}

/** The guard's dependencies on real AWS (or an emulator, through the clients' endpoints); the store is the artifact bucket. */
export function awsDeps(clients: AwsClients, bucket: string, now: () => Date = () => new Date()): GuardDeps {
  const { ec2, autoscaling, cloudwatch, s3 } = clients;
  return {
    store: s3Store({ client: s3, bucket }),
    listInstances: (sweep) => listSweepInstances(ec2, sweep),
    spotPriceHistory: (type, az, start, end) => spotPriceHistory(ec2, type, az, start, end),
    spotLaunchFailures: (group) => countSpotLaunchFailures(autoscaling, group),
    scaleToZero: (group) => scaleGroupToZero(autoscaling, group),
    switchToOnDemand: (group) => switchGroupToOnDemand(autoscaling, group),
    putMetrics: (sweep, total, hours) => putSpendMetrics(cloudwatch, sweep, total, hours, now()),
    putHeartbeat: (sweep, at) => putHeartbeatMetric(cloudwatch, sweep, at),
    log: (message, detail) => console.log(JSON.stringify({ level: 'INFO', message, ...detail })),
  };
}
