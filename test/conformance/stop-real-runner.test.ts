/**
 * One writer per file, end to end, against moto_server: the real Python job runner trains a config
 * whose store is in S3; `spot-sweep stop` (and, below, the budget guard) only write a request into
 * control.json; the runner obeys it, checkpoints, uploads and ends the job STOPPED with the
 * requester's own reason, and no one but the runner ever writes status.json.
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { AutoScalingClient, CreateAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import { CreateLaunchTemplateCommand, EC2Client } from '@aws-sdk/client-ec2';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { ControlJson, contractProblems, EXIT_CODES, groupName, REQUESTERS, StatusJson, storeKeys, TAGS } from '../../lib/contract';
import { runGuard } from '../../lambda/budget-guard/guard';
import { s3Store, SweepStore } from '../../lib/store';
import { FakeAws } from '../lambda/budget-guard/fake-deps';
import { cli, clientOptions, deployFoundation, deploySweepStack, getObject, Moto, putObjects, s3Client, startMoto, writeSpec } from '../cli/aws-fixture';
import { PYTHON, TRAINING } from './python';

jest.setTimeout(240_000);

const BUCKET = 'spot-sweep-artifacts-real-runner';
const SWEEP = 'real-runner';
let moto: Moto;
let data: string;

const key = (config: string, file: 'status' | 'control' | 'job'): string => storeKeys.configFile(SWEEP, config, file);
const json = async <T>(k: string): Promise<T | undefined> => {
  const t = await getObject(moto, BUCKET, k);
  return t === undefined ? undefined : (JSON.parse(t) as T);
};

/** A job.json for `config` in the bucket: a training run long enough to be stopped in the middle. */
async function putJob(config: string): Promise<string> {
  const job = {
    version: 1,
    sweep: SWEEP,
    config,
    data,
    store: `s3://${BUCKET}/${storeKeys.config(SWEEP, config)}`,
    instanceTypes: ['g5.xlarge'],
    market: 'spot',
    gpus: 1,
    maxRuntimeHours: 1,
    examples: null,
    train: {
      folds: 2, epochs: 400, batchSize: 16, learningRate: 0.01, weightDecay: 0, precision: 'auto', gradAccumulation: 1,
      seed: 7, temperature: 0.05, logQCorrection: false, evalCandidates: 'labeled', hiddenDim: 32, checkpointMinutes: 0.005, finalModel: true,
    },
    script: null,
    retries: { max: 0, onExitCodes: [] },
    encoder: null,
  };
  expect(contractProblems('job', job)).toEqual([]);
  await putObjects(moto, BUCKET, { [key(config, 'job')]: job });
  return `s3://${BUCKET}/${key(config, 'job')}`;
}

/** The real runner, as the bootstrap starts it, with the store behind moto's S3. */
function startRunner(jobUri: string, config: string): { child: ChildProcess; exit: Promise<{ code: number | null; output: string }> } {
  const work = mkdtempSync(path.join(tmpdir(), `runner-${config}-`));
  const child = spawn(PYTHON, ['-m', 'spot_runner.job', '--job', jobUri, '--workdir', work, '--sync-seconds', '0.5'], {
    cwd: TRAINING,
    env: { ...moto.env, AWS_ENDPOINT_URL: moto.endpoint, PYTHONPATH: TRAINING, OMP_NUM_THREADS: '1', SPOT_SWEEP_IMDS_ENDPOINT: 'http://127.0.0.1:9' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d) => (output += String(d)));
  child.stderr?.on('data', (d) => (output += String(d)));
  const exit = new Promise<{ code: number | null; output: string }>((resolve) => child.on('exit', (code) => resolve({ code, output })));
  return { child, exit };
}

async function waitForTraining(config: string, runner: { exit: Promise<unknown> }): Promise<void> {
  let ended = false;
  void runner.exit.then(() => (ended = true));
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline && !ended) {
    const s = await json<StatusJson>(key(config, 'status'));
    const checkpoints = await s3Client(moto).send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${storeKeys.config(SWEEP, config)}checkpoints/` }));
    if (s?.state === 'TRAINING' && typeof s.progress === 'number' && (checkpoints.KeyCount ?? 0) > 0) return;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`${config} did not start training (runner ended: ${ended})`);
}

beforeAll(async () => {
  moto = await startMoto();
  await deployFoundation(moto, BUCKET);
  await deploySweepStack(moto, SWEEP);
  const dir = mkdtempSync(path.join(tmpdir(), 'real-runner-data-'));
  const synth = spawnSync(PYTHON, ['-m', 'two_tower.synth', '--out', dir, '--queries', '60', '--docs', '120', '--dim', '8', '--latent', '4', '--candidates', '6', '--positives', '2'], {
    cwd: TRAINING,
    env: { ...process.env, PYTHONPATH: TRAINING },
    encoding: 'utf8',
  });
  if (synth.status !== 0) throw new Error(`synth failed: ${synth.stderr}`);
  data = dir;
  const ec2 = new EC2Client(clientOptions(moto));
  await ec2.send(new CreateLaunchTemplateCommand({ LaunchTemplateName: 'real-runner', LaunchTemplateData: { ImageId: 'ami-12c6146b', InstanceType: 'g5.xlarge' } }));
  ec2.destroy();
}, 120_000);

afterAll(async () => {
  await moto?.stop();
});

test('spot-sweep stop ends a running job STOPPED with its reason, through control.json alone', async () => {
  const config = 'by-cli';
  const asg = new AutoScalingClient(clientOptions(moto));
  await asg.send(
    new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: groupName(SWEEP, config),
      LaunchTemplate: { LaunchTemplateName: 'real-runner', Version: '$Latest' },
      MinSize: 0,
      MaxSize: 1,
      DesiredCapacity: 1,
      AvailabilityZones: ['us-east-1a'],
      Tags: [{ Key: TAGS.job, Value: `${SWEEP}/${config}`, PropagateAtLaunch: true }],
    }),
  );
  asg.destroy();
  const runner = startRunner(await putJob(config), config);
  await waitForTraining(config, runner);

  const r = await cli(moto.env, ['stop', writeSpec(SWEEP, [config]), config, '--wait', '90', '--reason', 'moving to a larger instance type']);
  const { code, output } = await runner.exit;

  expect(r.stderr).toBe('');
  expect(r.code).toBe(EXIT_CODES.cli.ok);
  expect(r.stdout).toMatch(new RegExp(`${config}: stopped by the job at \\S+, checkpoint saved; scaled ${groupName(SWEEP, config)} to 0`));
  expect(code).toBe(EXIT_CODES.runner.stopped);
  const control = await json<ControlJson>(key(config, 'control'));
  const status = await json<StatusJson>(key(config, 'status'));
  expect(contractProblems('status', status)).toEqual([]);
  expect(status).toMatchObject({ state: 'STOPPED', stoppedBy: REQUESTERS.cli, stopRequestId: control!.id });
  expect(status!.message).toMatch(/^moving to a larger instance type Checkpoint ckpt-\d+\.pt is kept/);
  expect(output).not.toMatch(/written by someone other than this runner/);
});

test("the budget guard's stop ends a running job STOPPED with the budget's reason, and the guard never writes status.json", async () => {
  const config = 'by-budget';
  const runner = startRunner(await putJob(config), config);
  await waitForTraining(config, runner);

  // EC2 (faked) says the sweep ran a g5.xlarge on demand for ten hours: far over a $1 budget. The store is
  // the real one, in moto's S3, where the runner reads control.json.
  const deps = new FakeAws();
  (deps as { store: SweepStore }).store = s3Store({ client: s3Client(moto), bucket: BUCKET });
  const now = new Date();
  deps.instances = [
    { instanceId: 'i-0budget', config, instanceType: 'g5.xlarge', market: 'on-demand', availabilityZone: 'us-east-1a', launchTime: new Date(now.getTime() - 10 * 3600_000).toISOString(), state: 'running' },
  ];
  const result = await runGuard(deps, { sweep: SWEEP, budgetUsd: 1, groups: [{ config, groupName: groupName(SWEEP, config), market: 'spot' }], spotFailuresBeforeOnDemand: 2, stopGraceSeconds: 180 }, now);
  expect(result.errors).toEqual([]);
  expect(result.stopRequested).toEqual([config]);
  expect(result.waitingForStop).toEqual([groupName(SWEEP, config)]);

  const { code, output } = await runner.exit;
  expect(code).toBe(EXIT_CODES.runner.stopped);
  const control = await json<ControlJson>(key(config, 'control'));
  expect(control).toMatchObject({ action: 'stop', by: REQUESTERS.budgetGuard });
  const status = await json<StatusJson>(key(config, 'status'));
  expect(contractProblems('status', status)).toEqual([]);
  expect(status).toMatchObject({ state: 'STOPPED', stoppedBy: REQUESTERS.budgetGuard, stopRequestId: control!.id });
  expect(status!.message?.startsWith(control!.reason)).toBe(true);
  expect(control!.reason).toMatch(/budget/);
  // The runner writes status.json conditionally on its own last ETag: any other writer would show here.
  expect(output).not.toMatch(/written by someone other than this runner/);

  // The next run finds the job final and scales its group to zero at once; spend.json is the guard's file.
  const again = await runGuard(deps, { sweep: SWEEP, budgetUsd: 1, groups: [{ config, groupName: groupName(SWEEP, config), market: 'spot' }], spotFailuresBeforeOnDemand: 2, stopGraceSeconds: 180 }, new Date());
  expect(again.scaledToZero).toEqual([groupName(SWEEP, config)]);
  expect(deps.scaled).toContain(groupName(SWEEP, config));
  expect(contractProblems('spend', await json(storeKeys.sweepFile(SWEEP, 'spend')))).toEqual([]);
  expect((await json<StatusJson>(key(config, 'status')))?.updatedAt).toBe(status!.updatedAt);
});
