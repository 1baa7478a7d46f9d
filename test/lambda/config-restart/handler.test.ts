import { createHash } from 'node:crypto';
import { AutoScalingClient, CreateAutoScalingGroupCommand, DescribeAutoScalingGroupsCommand, UpdateAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import { CreateLaunchTemplateCommand, EC2Client } from '@aws-sdk/client-ec2';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ControlJson, contractProblems, groupName, REQUESTERS, storeKeys } from '../../../lib/contract';
import type * as Handler from '../../../lambda/config-restart/index';
import { DEPLOY_REQUESTER, RestartEvent, RestartProperties } from '../../../lambda/config-restart/restart';
import { controlDoc, statusDoc, text, trainResults } from '../../results/fixtures';
import { clientConfig, MOTO_TEST_TIMEOUT_MS, useMotoForHandler } from '../moto';

/**
 * The deployed restart handler (lambda/config-restart/index.ts) against moto_server: real Auto Scaling
 * groups (min 0, max 1, desired 0, as the sweep stack creates them) and the store in S3, called with the
 * requests CloudFormation sends (through the Provider framework) on Create, Update and Delete.
 */
const moto = useMotoForHandler();
const SWEEP = 'redeploy';
const BUCKET = 'artifacts';
const JOB_A = JSON.stringify({ version: 1, sweep: SWEEP, config: 'x', train: { epochs: 2 } });
const JOB_B = JSON.stringify({ version: 1, sweep: SWEEP, config: 'x', train: { epochs: 4 } });
const sha = (job: string): string => `sha256:${createHash('sha256').update(job).digest('hex')}`;

let handler: typeof Handler.handler;
let autoscaling: AutoScalingClient;
let s3: S3Client;

const props = (config: string, job: string): RestartProperties => ({ Config: config, GroupName: groupName(SWEEP, config), Job: job });
const create = (config: string, job: string): RestartEvent => ({ RequestType: 'Create', ResourceProperties: props(config, job) });
const update = (config: string, before: string, after: string): RestartEvent => ({
  RequestType: 'Update',
  PhysicalResourceId: groupName(SWEEP, config),
  OldResourceProperties: props(config, before),
  ResourceProperties: props(config, after),
});

async function sizes(config: string): Promise<[number?, number?, number?]> {
  const g = (await autoscaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [groupName(SWEEP, config)] }))).AutoScalingGroups![0];
  return [g.MinSize, g.MaxSize, g.DesiredCapacity];
}
const setSizes = (config: string, [MinSize, MaxSize, DesiredCapacity]: [number, number, number]) =>
  autoscaling.send(new UpdateAutoScalingGroupCommand({ AutoScalingGroupName: groupName(SWEEP, config), MinSize, MaxSize, DesiredCapacity }));
const put = (config: string, file: 'status' | 'control' | 'results', doc: unknown) =>
  s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: storeKeys.configFile(SWEEP, config, file), Body: text(doc) }));
async function control(config: string): Promise<ControlJson | undefined> {
  try {
    const r = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: storeKeys.configFile(SWEEP, config, 'control') }));
    return JSON.parse(await r.Body!.transformToString()) as ControlJson;
  } catch {
    return undefined;
  }
}

beforeAll(async () => {
  const config = clientConfig(moto.endpoint);
  autoscaling = new AutoScalingClient(config);
  s3 = new S3Client({ ...config, forcePathStyle: true });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  await new EC2Client(config).send(new CreateLaunchTemplateCommand({ LaunchTemplateName: 'restart', LaunchTemplateData: { ImageId: 'ami-12c6146b', InstanceType: 'g5.xlarge' } }));
  for (const c of ['fresh', 'done', 'edited', 'stopped', 'again', 'gone', 'busy', 'waiting']) {
    await autoscaling.send(
      new CreateAutoScalingGroupCommand({
        AutoScalingGroupName: groupName(SWEEP, c),
        MinSize: 0,
        MaxSize: 1,
        DesiredCapacity: 0,
        AvailabilityZones: ['us-east-1a'],
        LaunchTemplate: { LaunchTemplateName: 'restart', Version: '$Latest' },
      }),
    );
  }
  process.env = moto.handlerEnv({
    SWEEP,
    BUCKET,
  });
  // Required only now: the handler reads its environment and creates its clients when loaded.
  handler = (require('../../../lambda/config-restart/index') as typeof Handler).handler;
}, MOTO_TEST_TIMEOUT_MS);

test('Create (the first deploy) starts the group: 0/1/1, the digest the job runner computes, the group as physical id', async () => {
  expect(await sizes('fresh')).toEqual([0, 1, 0]);
  const r = await handler(create('fresh', JOB_A));
  expect(r).toEqual({ PhysicalResourceId: groupName(SWEEP, 'fresh'), Data: { JobDigest: sha(JOB_A), Started: 'true', Why: 'deployed for the first time' } });
  expect(await sizes('fresh')).toEqual([0, 1, 1]);
  // Nothing asked the job to stop, so nothing is written to control.json.
  expect(await control('fresh')).toBeUndefined();
}, MOTO_TEST_TIMEOUT_MS);

test('Update with the same job.json (a SUCCEEDED config redeployed unchanged) leaves the group at 0', async () => {
  await put('done', 'status', statusDoc(SWEEP, 'done', 'SUCCEEDED', { jobDigest: sha(JOB_A) }));
  await put('done', 'results', trainResults(SWEEP, 'done', [0.44, 0.45]));
  // The instance removed itself with the desired capacity decremented.
  expect(await sizes('done')).toEqual([0, 1, 0]);
  const r = await handler(update('done', JOB_A, JOB_A));
  expect(r.Data).toMatchObject({ JobDigest: sha(JOB_A), Started: 'false', Why: 'job.json unchanged' });
  expect(r.PhysicalResourceId).toBe(groupName(SWEEP, 'done'));
  expect(await sizes('done')).toEqual([0, 1, 0]);
}, MOTO_TEST_TIMEOUT_MS);

test('Update with a changed job.json starts a config that had SUCCEEDED with the old one', async () => {
  await put('edited', 'status', statusDoc(SWEEP, 'edited', 'SUCCEEDED', { jobDigest: sha(JOB_A) }));
  await put('edited', 'results', trainResults(SWEEP, 'edited', [0.44, 0.45]));
  const r = await handler(update('edited', JOB_A, JOB_B));
  expect(r.Data).toEqual({ JobDigest: sha(JOB_B), Started: 'true', Why: `job.json changed (was ${sha(JOB_A)})` });
  expect(await sizes('edited')).toEqual([0, 1, 1]);
}, MOTO_TEST_TIMEOUT_MS);

test('Update with a changed job.json after spot-sweep stop: the stop is answered with a start request and the group goes from 0/0/0 to 0/1/1', async () => {
  const stop = controlDoc('stop', REQUESTERS.cli, 'stopped with spot-sweep stop');
  await put('stopped', 'control', stop);
  await put('stopped', 'status', statusDoc(SWEEP, 'stopped', 'STOPPED', { jobDigest: sha(JOB_A), stoppedBy: REQUESTERS.cli, stopRequestId: stop.id }));
  await setSizes('stopped', [0, 0, 0]);
  const r = await handler(update('stopped', JOB_A, JOB_B));
  expect(r.Data.Started).toBe('true');
  expect(r.Data.Why).toMatch(/the standing stop request was answered with a start request$/);
  const now = await control('stopped');
  expect(contractProblems('control', now)).toEqual([]);
  expect(now).toMatchObject({ action: 'start', by: DEPLOY_REQUESTER });
  expect(now!.id).not.toBe(stop.id);
  expect(await sizes('stopped')).toEqual([0, 1, 1]);
}, MOTO_TEST_TIMEOUT_MS);

async function instances(config: string): Promise<string[]> {
  const g = (await autoscaling.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [groupName(SWEEP, config)] }))).AutoScalingGroups![0];
  return (g.Instances ?? []).filter((i) => !(i.LifecycleState ?? '').startsWith('Terminat')).map((i) => i.InstanceId!);
}

test('Update with a changed job.json while an instance runs the old job: that instance is replaced, the group stays at 1', async () => {
  await setSizes('busy', [0, 1, 1]);
  const [old] = await instances('busy');
  expect(old).toBeDefined();
  await put('busy', 'status', statusDoc(SWEEP, 'busy', 'TRAINING', { jobDigest: sha(JOB_A), progress: 0.4 }));
  const r = await handler(update('busy', JOB_A, JOB_B));
  expect(r.Data.Why).toBe(`job.json changed (was ${sha(JOB_A)}); ${old} was running the old job (TRAINING) and is replaced`);
  expect(await sizes('busy')).toEqual([0, 1, 1]);
  const now = await instances('busy');
  expect(now).not.toContain(old);
  expect(now).toHaveLength(1);
}, MOTO_TEST_TIMEOUT_MS);

test('Update with a changed job.json while the instance has not started its runner yet: it reads the new job.json, nothing is replaced', async () => {
  await setSizes('waiting', [0, 1, 1]);
  const before = await instances('waiting');
  // Interrupted on the old job; the replacement instance is booting and will read the parameter as it is now.
  await put('waiting', 'status', statusDoc(SWEEP, 'waiting', 'PENDING', { jobDigest: sha(JOB_A) }));
  const r = await handler(update('waiting', JOB_A, JOB_B));
  expect(r.Data).toMatchObject({ Started: 'true', Why: `job.json changed (was ${sha(JOB_A)})` });
  expect(await instances('waiting')).toEqual(before);
}, MOTO_TEST_TIMEOUT_MS);

test('Create when the job already SUCCEEDED with exactly this job.json (the stack destroyed and deployed again) starts nothing', async () => {
  await put('again', 'status', statusDoc(SWEEP, 'again', 'SUCCEEDED', { jobDigest: sha(JOB_B) }));
  await put('again', 'results', trainResults(SWEEP, 'again', [0.5, 0.5]));
  const r = await handler(create('again', JOB_B));
  expect(r.Data).toMatchObject({ Started: 'false', Why: 'deployed for the first time, but this job.json already SUCCEEDED (its results stand)' });
  expect(await sizes('again')).toEqual([0, 1, 0]);
  // With another job.json it runs.
  expect((await handler(create('again', JOB_A))).Data.Started).toBe('true');
  expect(await sizes('again')).toEqual([0, 1, 1]);
}, MOTO_TEST_TIMEOUT_MS);

test('Delete does nothing to the group (CloudFormation deletes it with the stack)', async () => {
  await setSizes('gone', [0, 1, 1]);
  const r = await handler({ RequestType: 'Delete', PhysicalResourceId: groupName(SWEEP, 'gone'), ResourceProperties: props('gone', JOB_A) });
  expect(r).toMatchObject({ PhysicalResourceId: groupName(SWEEP, 'gone'), Data: { Started: 'false' } });
  expect(await sizes('gone')).toEqual([0, 1, 1]);
}, MOTO_TEST_TIMEOUT_MS);

test('fails when the group does not exist: the deploy fails naming the group, rather than leave the config stopped silently', async () => {
  await expect(handler(create('missing', JOB_A))).rejects.toThrow(
    /^Could not start SpotSweep-redeploy-missing \(UpdateAutoScalingGroup to min 0, max 1, desired 1\): .+\. The deploy fails rather than leave config "missing" stopped; fix the cause and deploy again, or run spot-sweep start\.$/,
  );
}, MOTO_TEST_TIMEOUT_MS);

test('fails when a property is missing, naming it', async () => {
  const event = { RequestType: 'Create', ResourceProperties: { Config: 'fresh', GroupName: groupName(SWEEP, 'fresh') } } as unknown as RestartEvent;
  await expect(handler(event)).rejects.toThrow('The restart resource lacks Job; lib/constructs/config-restart.ts sets them, so deploy the sweep stack again.');
}, MOTO_TEST_TIMEOUT_MS);
