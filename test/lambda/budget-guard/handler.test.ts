import { AutoScalingClient, CreateAutoScalingGroupCommand, DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { CloudWatchClient, ListMetricsCommand } from '@aws-sdk/client-cloudwatch';
import { CreateLaunchTemplateCommand, EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type * as Handler from '../../../lambda/budget-guard/index';
import { clientConfig, MOTO_TEST_TIMEOUT_MS, useMotoForHandler } from '../moto';

/**
 * The deployed handler (lambda/budget-guard/index.ts) end to end against moto_server: environment as
 * the construct sets it, SDK clients pointed at the emulator through AWS_ENDPOINT_URL.
 */
const moto = useMotoForHandler();

test('one run writes the ledger, the metric and status.json, and stops the sweep once it is over budget', async () => {
  const config = clientConfig(moto.endpoint);
  const s3 = new S3Client({ ...config, forcePathStyle: true });
  const ec2 = new EC2Client(config);
  const autoscaling = new AutoScalingClient(config);
  await s3.send(new CreateBucketCommand({ Bucket: 'artifacts' }));
  await s3.send(new PutObjectCommand({ Bucket: 'artifacts', Key: 'sweeps/demo/a/status.json', Body: JSON.stringify({ state: 'TRAINING', fold: 2, attempts: 1 }) }));
  await ec2.send(new CreateLaunchTemplateCommand({ LaunchTemplateName: 'demo-a', LaunchTemplateData: { ImageId: 'ami-12c6146b', InstanceType: 'g5.xlarge' } }));
  await autoscaling.send(
    new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: 'SpotSweep-demo-a',
      MinSize: 0,
      MaxSize: 1,
      DesiredCapacity: 0,
      AvailabilityZones: ['us-east-1a'],
      LaunchTemplate: { LaunchTemplateName: 'demo-a', Version: '$Latest' },
    }),
  );
  // An on-demand g5.xlarge ($1.006/h): a few seconds of it exceed a budget of a millionth of a dollar.
  await ec2.send(
    new RunInstancesCommand({
      ImageId: 'ami-12c6146b',
      InstanceType: 'g5.xlarge',
      MinCount: 1,
      MaxCount: 1,
      TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'spot-sweep:sweep', Value: 'demo' }, { Key: 'spot-sweep:config', Value: 'a' }] }],
    }),
  );
  await new Promise((r) => setTimeout(r, 1100));

  process.env = {
    ...moto.savedEnv,
    AWS_ENDPOINT_URL: moto.endpoint,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    SWEEP: 'demo',
    BUCKET: 'artifacts',
    BUDGET_USD: '0.000001',
    GROUPS: JSON.stringify([{ config: 'a', groupName: 'SpotSweep-demo-a', market: 'spot' }]),
    SPOT_FAILURES_BEFORE_ON_DEMAND: '2',
  };
  // Required only now: the handler reads its environment and creates its clients when loaded.
  const { handler } = require('../../../lambda/budget-guard/index') as typeof Handler;
  const out = await handler();
  expect(out.scaledToZero).toEqual(['SpotSweep-demo-a']);
  expect(out.totalUsd).toBeGreaterThan(0);

  const read = async (key: string) => JSON.parse(await (await s3.send(new GetObjectCommand({ Bucket: 'artifacts', Key: key }))).Body!.transformToString());
  const ledger = await read('sweeps/demo/spend.json');
  expect(Object.values(ledger.instances)).toEqual([expect.objectContaining({ config: 'a', market: 'on-demand', priceSource: 'on-demand price table' })]);
  const status = await read('sweeps/demo/a/status.json');
  expect(status).toMatchObject({ state: 'STOPPED', fold: 2, attempts: 1, stoppedBy: 'budget' });
  expect(status.message).toMatch(/^Stopped by the sweep budget: the sweep has spent \$0\.00 of its budgetUsd \$0\.00\.$/);
  const group = (await autoscaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ['SpotSweep-demo-a'] }))).AutoScalingGroups![0];
  expect(group).toMatchObject({ MinSize: 0, MaxSize: 0, DesiredCapacity: 0 });
  const metrics = await new CloudWatchClient(config).send(new ListMetricsCommand({ Namespace: 'SpotSweep', MetricName: 'SpendUsd' }));
  expect(metrics.Metrics?.[0]?.Dimensions).toEqual([{ Name: 'Sweep', Value: 'demo' }]);
}, MOTO_TEST_TIMEOUT_MS * 2);
