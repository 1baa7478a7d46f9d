import { AutoScalingClient, CreateAutoScalingGroupCommand, DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { CloudWatchClient, ListMetricsCommand } from '@aws-sdk/client-cloudwatch';
import { CreateLaunchTemplateCommand, EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { contractProblems, REQUESTERS } from '../../../lib/contract';
import type * as Handler from '../../../lambda/budget-guard/index';
import { clientConfig, MOTO_TEST_TIMEOUT_MS, useMotoForHandler } from '../moto';

/**
 * The deployed handler (lambda/budget-guard/index.ts) end to end against moto_server: environment as
 * the construct sets it, SDK clients pointed at the emulator through AWS_ENDPOINT_URL.
 */
const moto = useMotoForHandler();
const GRACE_SECONDS = 3;

test('over budget: asks the TRAINING job to stop, leaves its status.json alone, scales its group only after the grace period; a finished config at once', async () => {
  const config = clientConfig(moto.endpoint);
  const s3 = new S3Client({ ...config, forcePathStyle: true });
  const ec2 = new EC2Client(config);
  const autoscaling = new AutoScalingClient(config);
  await s3.send(new CreateBucketCommand({ Bucket: 'artifacts' }));
  await s3.send(new PutObjectCommand({ Bucket: 'artifacts', Key: 'sweeps/demo/a/status.json', Body: JSON.stringify({ state: 'TRAINING', fold: 2, attempts: 1 }) }));
  await s3.send(new PutObjectCommand({ Bucket: 'artifacts', Key: 'sweeps/demo/b/status.json', Body: JSON.stringify({ state: 'SUCCEEDED', attempts: 1 }) }));
  const etagOf = async (key: string) => (await s3.send(new HeadObjectCommand({ Bucket: 'artifacts', Key: key }))).ETag;
  const statusEtag = await etagOf('sweeps/demo/a/status.json');
  await ec2.send(new CreateLaunchTemplateCommand({ LaunchTemplateName: 'demo', LaunchTemplateData: { ImageId: 'ami-12c6146b', InstanceType: 'g5.xlarge' } }));
  for (const name of ['SpotSweep-demo-a', 'SpotSweep-demo-b']) {
    await autoscaling.send(
      new CreateAutoScalingGroupCommand({
        AutoScalingGroupName: name,
        MinSize: 0,
        MaxSize: 1,
        DesiredCapacity: 0,
        AvailabilityZones: ['us-east-1a'],
        LaunchTemplate: { LaunchTemplateName: 'demo', Version: '$Latest' },
      }),
    );
  }
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
    GROUPS: JSON.stringify([
      { config: 'a', groupName: 'SpotSweep-demo-a', market: 'spot' },
      { config: 'b', groupName: 'SpotSweep-demo-b', market: 'on-demand' },
    ]),
    SPOT_FAILURES_BEFORE_ON_DEMAND: '2',
    STOP_GRACE_SECONDS: String(GRACE_SECONDS),
  };
  // Required only now: the handler reads its environment and creates its clients when loaded.
  const { handler } = require('../../../lambda/budget-guard/index') as typeof Handler;
  const maxSize = async (name: string) => (await autoscaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [name] }))).AutoScalingGroups![0].MaxSize;
  const read = async (key: string) => JSON.parse(await (await s3.send(new GetObjectCommand({ Bucket: 'artifacts', Key: key }))).Body!.transformToString());

  const first = await handler();
  expect(first).toMatchObject({ stopRequested: ['a'], scaledToZero: ['SpotSweep-demo-b'], waitingForStop: ['SpotSweep-demo-a'] });
  expect(first.totalUsd).toBeGreaterThan(0);
  const control = await read('sweeps/demo/a/control.json');
  expect(contractProblems('control', control)).toEqual([]);
  expect(control).toMatchObject({ action: 'stop', by: REQUESTERS.budgetGuard });
  expect(control.reason).toMatch(/^Stopped by the sweep budget: the sweep has spent \$0\.00 of its budgetUsd \$0\.00\.$/);
  expect(await etagOf('sweeps/demo/a/status.json')).toBe(statusEtag);
  expect(await read('sweeps/demo/a/status.json')).toEqual({ state: 'TRAINING', fold: 2, attempts: 1 });
  expect([await maxSize('SpotSweep-demo-a'), await maxSize('SpotSweep-demo-b')]).toEqual([1, 0]);

  // Within the grace period: the job may still be checkpointing; nothing is asked again.
  const second = await handler();
  expect(second).toMatchObject({ stopRequested: [], scaledToZero: ['SpotSweep-demo-b'], waitingForStop: ['SpotSweep-demo-a'] });
  expect((await read('sweeps/demo/a/control.json')).id).toBe(control.id);
  expect(await maxSize('SpotSweep-demo-a')).toBe(1);

  await new Promise((r) => setTimeout(r, Date.parse(control.at) + GRACE_SECONDS * 1000 + 100 - Date.now()));
  const third = await handler();
  expect(third).toMatchObject({ scaledToZero: ['SpotSweep-demo-a', 'SpotSweep-demo-b'], waitingForStop: [] });
  const group = (await autoscaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ['SpotSweep-demo-a'] }))).AutoScalingGroups![0];
  expect(group).toMatchObject({ MinSize: 0, MaxSize: 0, DesiredCapacity: 0 });
  expect(await etagOf('sweeps/demo/a/status.json')).toBe(statusEtag);

  const ledger = await read('sweeps/demo/spend.json');
  expect(contractProblems('spend', ledger)).toEqual([]);
  expect(Object.values(ledger.instances)).toEqual([expect.objectContaining({ config: 'a', market: 'on-demand', priceSource: 'on-demand price table' })]);
  const metrics = await new CloudWatchClient(config).send(new ListMetricsCommand({ Namespace: 'SpotSweep', MetricName: 'SpendUsd' }));
  expect(metrics.Metrics?.[0]?.Dimensions).toEqual([{ Name: 'Sweep', Value: 'demo' }]);
}, MOTO_TEST_TIMEOUT_MS * 2);
