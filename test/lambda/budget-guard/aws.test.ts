import {
  AutoScalingClient,
  CreateAutoScalingGroupCommand,
  DescribeAutoScalingGroupsCommand,
  DescribeScalingActivitiesCommand,
  UpdateAutoScalingGroupCommand,
} from '@aws-sdk/client-auto-scaling';
import { CloudWatchClient, GetMetricStatisticsCommand, ListMetricsCommand } from '@aws-sdk/client-cloudwatch';
import { CreateLaunchTemplateCommand, DescribeInstancesCommand, DescribeSpotPriceHistoryCommand, EC2Client, RunInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import {
  countSpotLaunchFailures,
  listSweepInstances,
  putSpendMetrics,
  scaleGroupToZero,
  spotPriceHistory,
  switchGroupToOnDemand,
} from '../../../lambda/budget-guard/aws';
import { clientConfig, Moto, MOTO_START_TIMEOUT_MS, MOTO_TEST_TIMEOUT_MS, startMoto } from '../moto';

/**
 * The guard's AWS calls against moto_server on 127.0.0.1 (EC2 DescribeInstances, Auto Scaling
 * UpdateAutoScalingGroup sizes, CloudWatch PutMetricData), and against aws-sdk-client-mock where moto
 * falls short: DescribeSpotPriceHistory (one fixed price, no history), DescribeScalingActivities
 * (always empty) and a MixedInstancesPolicy update without LaunchTemplate (moto fails with 500).
 * Its store (lib/store s3Store) is tested against moto in test/lambda/s3-store.test.ts.
 */
jest.setTimeout(MOTO_TEST_TIMEOUT_MS);
let moto: Moto;
let ec2: EC2Client;
let autoscaling: AutoScalingClient;
let cloudwatch: CloudWatchClient;

beforeAll(async () => {
  moto = await startMoto();
  const config = clientConfig(moto.endpoint);
  ec2 = new EC2Client(config);
  autoscaling = new AutoScalingClient(config);
  cloudwatch = new CloudWatchClient(config);
  // moto loads its EC2 data (AMIs, instance types) on the first call: seconds on a busy machine.
  await ec2.send(new DescribeInstancesCommand({}));
}, MOTO_START_TIMEOUT_MS);
afterAll(async () => {
  await moto?.stop();
}, MOTO_START_TIMEOUT_MS);
beforeEach(async () => {
  await moto.reset();
});

const tags = (sweep: string, config: string) => [
  {
    ResourceType: 'instance' as const,
    Tags: [
      { Key: 'spot-sweep:sweep', Value: sweep },
      { Key: 'spot-sweep:config', Value: config },
    ],
  },
];

describe('EC2 (moto)', () => {
  test('lists the sweep\'s instances in every state, with market, AZ, launch time and how they ended', async () => {
    const spot = await ec2.send(
      new RunInstancesCommand({ ImageId: 'ami-12c6146b', InstanceType: 'g5.xlarge', MinCount: 1, MaxCount: 1, TagSpecifications: tags('demo', 'a'), InstanceMarketOptions: { MarketType: 'spot' } }),
    );
    const onDemand = await ec2.send(new RunInstancesCommand({ ImageId: 'ami-12c6146b', InstanceType: 'g4dn.xlarge', MinCount: 1, MaxCount: 1, TagSpecifications: tags('demo', 'b') }));
    await ec2.send(new RunInstancesCommand({ ImageId: 'ami-12c6146b', InstanceType: 'g4dn.xlarge', MinCount: 1, MaxCount: 1, TagSpecifications: tags('other', 'a') }));
    const ended = onDemand.Instances![0].InstanceId!;
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [ended] }));

    const found = await listSweepInstances(ec2, 'demo');
    expect(found).toHaveLength(2);
    const a = found.find((i) => i.config === 'a')!;
    expect(a).toMatchObject({ instanceId: spot.Instances![0].InstanceId, market: 'spot', instanceType: 'g5.xlarge', state: 'running' });
    expect(a.availabilityZone).toMatch(/^us-east-1[a-f]$/);
    expect(Date.parse(a.launchTime)).toBeGreaterThan(Date.now() - 60_000);
    const b = found.find((i) => i.config === 'b')!;
    expect(b).toMatchObject({ instanceId: ended, market: 'on-demand', state: 'terminated' });
    expect(b.stateTransitionReason).toMatch(/^User initiated \(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} (UTC|GMT)\)$/);
  });
});

describe('spot price history (aws-sdk-client-mock: moto answers one fixed price)', () => {
  test('asks for the Linux/UNIX price of the type in the AZ over the interval and follows pages', async () => {
    const client = new EC2Client({ region: 'us-east-1' });
    const mock = mockClient(client);
    mock
      .on(DescribeSpotPriceHistoryCommand)
      .resolvesOnce({ SpotPriceHistory: [{ SpotPrice: '0.5000', Timestamp: new Date('2026-11-28T09:00:00Z') }], NextToken: 'page-2' })
      .resolvesOnce({ SpotPriceHistory: [{ SpotPrice: '0.7500', Timestamp: new Date('2026-11-28T11:00:00Z') }], NextToken: '' });
    const start = new Date('2026-11-28T10:00:00Z');
    const end = new Date('2026-11-28T12:00:00Z');
    const points = await spotPriceHistory(client, 'g5.xlarge', 'us-east-1a', start, end);
    expect(points).toEqual([
      { atMs: Date.parse('2026-11-28T09:00:00Z'), usdPerHour: 0.5 },
      { atMs: Date.parse('2026-11-28T11:00:00Z'), usdPerHour: 0.75 },
    ]);
    const first = mock.commandCalls(DescribeSpotPriceHistoryCommand)[0].args[0].input;
    expect(first).toEqual({ InstanceTypes: ['g5.xlarge'], AvailabilityZone: 'us-east-1a', ProductDescriptions: ['Linux/UNIX'], StartTime: start, EndTime: end });
    expect(mock.commandCalls(DescribeSpotPriceHistoryCommand)[1].args[0].input.NextToken).toBe('page-2');
  });
});

describe('scaling activities (aws-sdk-client-mock: moto returns none)', () => {
  test('counts failed spot launches only, by the activity status message Auto Scaling writes', async () => {
    const client = new AutoScalingClient({ region: 'us-east-1' });
    const mock = mockClient(client);
    const base = { ActivityId: 'x', AutoScalingGroupName: 'SpotSweep-demo-c', StartTime: new Date() };
    mock.on(DescribeScalingActivitiesCommand).resolves({
      Activities: [
        {
          ...base,
          StatusCode: 'Failed',
          Cause: 'At 2026-11-28T10:14:53Z an instance was started in response to a difference between desired and actual capacity, increasing the capacity from 0 to 1.',
          Description: 'Launching a new EC2 instance.  Status Reason: Could not launch Spot Instances. UnfulfillableCapacity - There is no capacity available that matches your request. Launching EC2 instance failed.',
          StatusMessage: 'Could not launch Spot Instances. UnfulfillableCapacity - There is no capacity available that matches your request. Launching EC2 instance failed.',
        },
        { ...base, StatusCode: 'Failed', Cause: 'At 2026-11-28T10:30:00Z an instance was started in response to a difference between desired and actual capacity.', Description: 'Launching a new EC2 instance.', StatusMessage: 'Could not launch Spot Instances. InsufficientInstanceCapacity - There is no Spot capacity available that matches your request.' },
        { ...base, StatusCode: 'Failed', Cause: 'At 2026-11-28T10:40:00Z an instance was started in response to a difference between desired and actual capacity.', Description: 'Launching a new EC2 instance.', StatusMessage: 'Could not launch On-Demand Instances. VcpuLimitExceeded - You have requested more vCPU capacity than your current vCPU limit.' },
        { ...base, StatusCode: 'Successful', Description: 'Launching a new EC2 instance: i-0123', Cause: 'At 2026-11-28T10:20:00Z an instance was started in response to a difference between desired and actual capacity.' },
        {
          ...base,
          StatusCode: 'Successful',
          Description: 'Terminating EC2 instance: i-0123',
          Cause: 'At 2026-11-28T11:00:00Z an instance was taken out of service in response to an EC2 health check indicating it has been terminated or stopped.',
        },
      ],
    });
    expect(await countSpotLaunchFailures(client, 'SpotSweep-demo-c')).toBe(2);
    expect(mock.commandCalls(DescribeScalingActivitiesCommand)[0].args[0].input).toMatchObject({ AutoScalingGroupName: 'SpotSweep-demo-c' });
  });
});

describe('Auto Scaling (moto)', () => {
  async function createGroup(name: string): Promise<void> {
    await ec2.send(new CreateLaunchTemplateCommand({ LaunchTemplateName: `${name}-lt`, LaunchTemplateData: { ImageId: 'ami-12c6146b', InstanceType: 'g5.xlarge' } }));
    await autoscaling.send(
      new CreateAutoScalingGroupCommand({
        AutoScalingGroupName: name,
        MinSize: 0,
        MaxSize: 1,
        DesiredCapacity: 1,
        AvailabilityZones: ['us-east-1a'],
        MixedInstancesPolicy: {
          LaunchTemplate: { LaunchTemplateSpecification: { LaunchTemplateName: `${name}-lt`, Version: '$Latest' }, Overrides: [{ InstanceType: 'g5.xlarge' }, { InstanceType: 'g5.2xlarge' }] },
          InstancesDistribution: { OnDemandPercentageAboveBaseCapacity: 0, SpotAllocationStrategy: 'price-capacity-optimized' },
        },
      }),
    );
  }
  const describe1 = async (name: string) => (await autoscaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [name] }))).AutoScalingGroups![0];

  test('scaling to zero sets min, max and desired capacity to 0', async () => {
    await createGroup('SpotSweep-demo-a');
    await scaleGroupToZero(autoscaling, 'SpotSweep-demo-a');
    expect(await describe1('SpotSweep-demo-a')).toMatchObject({ MinSize: 0, MaxSize: 0, DesiredCapacity: 0 });
  });
});

describe('switch to on-demand (aws-sdk-client-mock: moto answers 500 to a policy update without its LaunchTemplate)', () => {
  test('sends only InstancesDistribution with OnDemandPercentageAboveBaseCapacity 100, so the group keeps its template and types', async () => {
    const client = new AutoScalingClient({ region: 'us-east-1' });
    const mock = mockClient(client);
    mock.on(UpdateAutoScalingGroupCommand).resolves({});
    await switchGroupToOnDemand(client, 'SpotSweep-demo-c');
    expect(mock.commandCalls(UpdateAutoScalingGroupCommand)[0].args[0].input).toEqual({
      AutoScalingGroupName: 'SpotSweep-demo-c',
      MixedInstancesPolicy: { InstancesDistribution: { OnDemandPercentageAboveBaseCapacity: 100 } },
    });
  });
});

describe('CloudWatch (moto)', () => {
  test('publishes SpotSweep SpendUsd {Sweep} and InstanceHours {Sweep, Config}', async () => {
    const now = new Date();
    await putSpendMetrics(cloudwatch, 'demo', 12.5, { a: 3, b: 1.25 }, now);
    const listed = await cloudwatch.send(new ListMetricsCommand({ Namespace: 'SpotSweep' }));
    const names = (listed.Metrics ?? []).map((m) => `${m.MetricName} ${(m.Dimensions ?? []).map((d) => `${d.Name}=${d.Value}`).join(',')}`).sort();
    expect(names).toEqual(['InstanceHours Sweep=demo,Config=a', 'InstanceHours Sweep=demo,Config=b', 'SpendUsd Sweep=demo']);
    const stats = await cloudwatch.send(
      new GetMetricStatisticsCommand({
        Namespace: 'SpotSweep',
        MetricName: 'SpendUsd',
        Dimensions: [{ Name: 'Sweep', Value: 'demo' }],
        StartTime: new Date(now.getTime() - 600_000),
        EndTime: new Date(now.getTime() + 600_000),
        Period: 300,
        Statistics: ['Maximum'],
      }),
    );
    expect(stats.Datapoints?.map((d) => d.Maximum)).toEqual([12.5]);
  });
});
