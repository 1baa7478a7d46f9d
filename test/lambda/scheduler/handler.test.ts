import { AutoScalingClient, CreateAutoScalingGroupCommand, DescribeAutoScalingGroupsCommand, UpdateAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import { CreateLaunchTemplateCommand, EC2Client } from '@aws-sdk/client-ec2';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { groupName, jobParameterName, REQUESTERS, storeKeys, TAGS } from '../../../lib/contract';
import type * as Handler from '../../../lambda/scheduler/index';
import { jobDigest } from '../../../lambda/config-restart/restart';
import { controlDoc, statusDoc, text } from '../../results/fixtures';
import { clientConfig, MOTO_TEST_TIMEOUT_MS, useMotoForHandler } from '../moto';

/**
 * The deployed scheduler (lambda/scheduler/index.ts) against moto_server: three groups at 0/1/0 tagged as
 * the sweep's (as the sweep stack creates them), their job parameters in SSM, the store in S3, cap 2.
 */
const moto = useMotoForHandler();
const SWEEP = 'capped';
const BUCKET = 'artifacts';
const CONFIGS = ['first', 'second', 'third'];
const job = (config: string): string => JSON.stringify({ version: 1, sweep: SWEEP, config, train: { epochs: 2 } });

let handler: typeof Handler.handler;
let autoscaling: AutoScalingClient;
let s3: S3Client;

async function desired(): Promise<Record<string, number | undefined>> {
  const r = await autoscaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: CONFIGS.map((c) => groupName(SWEEP, c)) }));
  return Object.fromEntries(CONFIGS.map((c) => [c, r.AutoScalingGroups!.find((g) => g.AutoScalingGroupName === groupName(SWEEP, c))?.DesiredCapacity]));
}
const put = (config: string, file: 'status' | 'control', doc: unknown) =>
  s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: storeKeys.configFile(SWEEP, config, file), Body: text(doc) }));
/** What the instance does when its job ended: the runner's last status.json, then TerminateInstanceInAutoScalingGroup with decrement. */
async function finish(config: string, state: 'SUCCEEDED' | 'FAILED'): Promise<void> {
  await put(config, 'status', statusDoc(SWEEP, config, state, { jobDigest: jobDigest(job(config)) }));
  await autoscaling.send(new UpdateAutoScalingGroupCommand({ AutoScalingGroupName: groupName(SWEEP, config), DesiredCapacity: 0 }));
}

beforeAll(async () => {
  const config = clientConfig(moto.endpoint);
  autoscaling = new AutoScalingClient(config);
  s3 = new S3Client({ ...config, forcePathStyle: true });
  const ssm = new SSMClient(config);
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  await new EC2Client(config).send(new CreateLaunchTemplateCommand({ LaunchTemplateName: 'capped', LaunchTemplateData: { ImageId: 'ami-12c6146b', InstanceType: 'g5.xlarge' } }));
  for (const c of CONFIGS) {
    await autoscaling.send(
      new CreateAutoScalingGroupCommand({
        AutoScalingGroupName: groupName(SWEEP, c),
        MinSize: 0,
        MaxSize: 1,
        DesiredCapacity: 0,
        AvailabilityZones: ['us-east-1a'],
        LaunchTemplate: { LaunchTemplateName: 'capped', Version: '$Latest' },
        Tags: [
          { Key: TAGS.sweep, Value: SWEEP, PropagateAtLaunch: true },
          { Key: TAGS.config, Value: c, PropagateAtLaunch: true },
        ],
      }),
    );
    await ssm.send(new PutParameterCommand({ Name: jobParameterName(SWEEP, c), Type: 'String', Value: job(c) }));
  }
  process.env = moto.handlerEnv({ SWEEP, BUCKET, CONFIGS: JSON.stringify(CONFIGS), MAX_PARALLEL: '2' });
  // Required only now: the handler reads its environment and creates its clients when loaded.
  handler = (require('../../../lambda/scheduler/index') as typeof Handler).handler;
}, MOTO_TEST_TIMEOUT_MS);

test('with maxParallel 2 only the first two groups go to desired 1; the third starts when one SUCCEEDED, and a stopped one never does', async () => {
  expect(await desired()).toEqual({ first: 0, second: 0, third: 0 });
  const r1 = await handler();
  expect(r1.started).toEqual(['first', 'second']);
  expect(await desired()).toEqual({ first: 1, second: 1, third: 0 });

  // Another tick with both slots taken changes nothing.
  expect((await handler()).started).toEqual([]);
  expect(await desired()).toEqual({ first: 1, second: 1, third: 0 });

  await finish('first', 'SUCCEEDED');
  const r2 = await handler();
  expect(r2.started).toEqual(['third']);
  expect(await desired()).toEqual({ first: 0, second: 1, third: 1 });

  // The budget guard stops the sweep: stop requests, groups to 0/0/0. Nothing starts again.
  for (const c of ['second', 'third']) {
    await put(c, 'control', controlDoc('stop', REQUESTERS.budgetGuard, 'the budget is spent'));
    await autoscaling.send(new UpdateAutoScalingGroupCommand({ AutoScalingGroupName: groupName(SWEEP, c), MinSize: 0, MaxSize: 0, DesiredCapacity: 0 }));
  }
  const r3 = await handler();
  expect(r3.started).toEqual([]);
  expect(r3.done).toEqual({ first: 'started for this job.json', second: 'stop requested', third: 'stop requested' });
  expect(await desired()).toEqual({ first: 0, second: 0, third: 0 });
}, MOTO_TEST_TIMEOUT_MS * 2);
