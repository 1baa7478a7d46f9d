import { AutoScalingClient, CreateAutoScalingGroupCommand, DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { CreateLaunchTemplateCommand, EC2Client } from '@aws-sdk/client-ec2';
import { ListCommandsCommand, SSMClient } from '@aws-sdk/client-ssm';
import { EXIT } from '../../lib/cli/main';
import { ControlJson, contractProblems, groupName, REQUESTERS, StatusJson, storeKeys, TAGS } from '../../lib/contract';
import { statusDoc } from '../results/fixtures';
import { cli, clientOptions, deployFoundation, deploySweepStack, getObject, Moto, putObjects, startMoto, writeSpec } from './aws-fixture';

/**
 * stop against moto_server: a launch template and one Auto Scaling group per config, as the sweep
 * stack makes them, and a stand-in job runner (this test) that obeys control.json the way the real
 * one does: it writes STOPPED into status.json, the file only the runner writes.
 */
// Each call loads SDK clients and talks to the emulator: slow on a busy machine, never hanging.
jest.setTimeout(60_000);

let moto: Moto;
const BUCKET = 'spot-sweep-artifacts-stop';
const SWEEP = 'halt';
/** running: obeys the stop; slow: never does; done: already SUCCEEDED; idle: its group has no instance. */
const spec = writeSpec(SWEEP, ['running', 'slow', 'done', 'idle']);
/** The same sweep with a config whose group was never created. */
const wider = writeSpec(SWEEP, ['running', 'slow', 'done', 'idle', 'orphan']);

const statusKey = (config: string): string => storeKeys.configFile(SWEEP, config, 'status');
const controlKey = (config: string): string => storeKeys.configFile(SWEEP, config, 'control');

async function createGroup(config: string, desired: number): Promise<void> {
  const asg = new AutoScalingClient(clientOptions(moto));
  await asg.send(
    new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: groupName(SWEEP, config),
      LaunchTemplate: { LaunchTemplateName: 'spot-sweep-test', Version: '$Latest' },
      MinSize: 0,
      MaxSize: 1,
      DesiredCapacity: desired,
      AvailabilityZones: ['us-east-1a'],
      Tags: [
        { Key: TAGS.sweep, Value: SWEEP, PropagateAtLaunch: true },
        { Key: TAGS.config, Value: config, PropagateAtLaunch: true },
        { Key: TAGS.job, Value: `${SWEEP}/${config}`, PropagateAtLaunch: true },
      ],
    }),
  );
  asg.destroy();
}

async function group(config: string) {
  const asg = new AutoScalingClient(clientOptions(moto));
  const r = await asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [groupName(SWEEP, config)] }));
  asg.destroy();
  return r.AutoScalingGroups?.[0];
}

const json = async <T>(key: string): Promise<T | undefined> => {
  const t = await getObject(moto, BUCKET, key);
  return t === undefined ? undefined : (JSON.parse(t) as T);
};

/**
 * Plays the job runner of `config`: reads control.json until it holds a stop, then ends the job as
 * the runner does (checkpoint elided): status STOPPED with the request's reason and requester.
 */
function standInRunner(config: string, signal: AbortSignal): Promise<ControlJson | undefined> {
  return (async () => {
    while (!signal.aborted) {
      const control = await json<ControlJson>(controlKey(config));
      if (control?.action === 'stop') {
        const before = (await json<StatusJson>(statusKey(config)))!;
        const at = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
        const stopped: StatusJson = {
          ...before,
          state: 'STOPPED',
          message: control.reason,
          stoppedBy: control.by,
          stopRequestId: control.id,
          history: [...before.history, { state: 'STOPPED', at, attempt: before.attempts }],
          updatedAt: at,
        };
        expect(contractProblems('status', stopped)).toEqual([]);
        await putObjects(moto, BUCKET, { [statusKey(config)]: stopped });
        return control;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    return undefined;
  })();
}

const INITIAL: Record<string, StatusJson> = {
  running: statusDoc(SWEEP, 'running', 'TRAINING', { progress: 0.3, jobDigest: `sha256:${'a'.repeat(64)}` }),
  slow: statusDoc(SWEEP, 'slow', 'TRAINING', { progress: 0.5 }),
  done: statusDoc(SWEEP, 'done', 'SUCCEEDED', { progress: 1 }),
  idle: statusDoc(SWEEP, 'idle', 'PENDING', { attempts: 0 }),
};

beforeAll(async () => {
  moto = await startMoto();
  await deployFoundation(moto, BUCKET);
  await deploySweepStack(moto, SWEEP);
  const ec2 = new EC2Client(clientOptions(moto));
  await ec2.send(new CreateLaunchTemplateCommand({ LaunchTemplateName: 'spot-sweep-test', LaunchTemplateData: { ImageId: 'ami-12c6146b', InstanceType: 'g5.xlarge' } }));
  ec2.destroy();
  for (const config of ['running', 'slow', 'done']) await createGroup(config, 1);
  await createGroup('idle', 0);
  await putObjects(moto, BUCKET, Object.fromEntries(Object.entries(INITIAL).map(([c, doc]) => [statusKey(c), JSON.stringify(doc)])));
}, 60_000);

afterAll(async () => {
  await moto?.stop();
});

test('status shows the instance each group launched, with its type and market', async () => {
  const r = await cli({ ...moto.env, COLUMNS: '160' }, ['status', spec]);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^running\s+TRAINING\s+g5\.xlarge on-demand\s+\[######/m);
});

test('stop writes a stop request into control.json, waits for the job to end STOPPED, then scales every group to zero', async () => {
  const runner = new AbortController();
  const obeyed = standInRunner('running', runner.signal);
  const started = Date.now();
  const r = await cli(moto.env, ['stop', spec, '--wait', '8']);
  runner.abort();
  expect(r.stderr).toBe('');
  expect(r.code).toBe(EXIT.ok);

  // The request: one per config not SUCCEEDED/FAILED, valid against control.schema.json.
  const request = await obeyed;
  expect(request).toBeDefined();
  for (const config of ['running', 'slow', 'idle']) {
    const control = await json<ControlJson>(controlKey(config));
    expect(contractProblems('control', control)).toEqual([]);
    expect(control).toMatchObject({ version: 1, action: 'stop', by: REQUESTERS.cli, reason: 'stopped with spot-sweep stop' });
  }
  expect(await getObject(moto, BUCKET, controlKey('done'))).toBeUndefined();

  // status.json is the runner's alone: stop wrote none of them; only the stand-in runner changed one.
  for (const config of ['slow', 'done', 'idle']) expect(await json(statusKey(config))).toEqual(INITIAL[config]);
  expect(await json<StatusJson>(statusKey('running'))).toMatchObject({ state: 'STOPPED', stoppedBy: 'spot-sweep stop', stopRequestId: request!.id, progress: 0.3 });

  // What happened, per config; the slow job was waited for no longer than --wait.
  expect(r.stdout).toMatch(/^ {2}running: stopped by the job at \d{4}-\d\d-\d\dT[\d:]+Z, checkpoint saved; scaled SpotSweep-halt-running to 0$/m);
  expect(r.stdout).toMatch(/^ {2}slow: stop requested; the job did not stop within --wait 8 s, scaled to zero anyway \(its last periodic checkpoint is kept\); scaled SpotSweep-halt-slow to 0$/m);
  expect(r.stdout).toMatch(/^ {2}done: already SUCCEEDED; nothing to stop; scaled SpotSweep-halt-done to 0$/m);
  expect(r.stdout).toMatch(/^ {2}idle: no instance running \(PENDING\); stop request recorded, so the job does not run until a start request; scaled SpotSweep-halt-idle to 0$/m);
  expect(Date.now() - started).toBeLessThan(20_000);

  for (const config of ['running', 'slow', 'done', 'idle']) {
    const g = await group(config);
    expect([g?.MinSize, g?.MaxSize, g?.DesiredCapacity]).toEqual([0, 0, 0]);
  }
  // No Run Command: the runner obeys control.json by itself.
  const ssm = new SSMClient(clientOptions(moto));
  expect((await ssm.send(new ListCommandsCommand({}))).Commands ?? []).toEqual([]);
  ssm.destroy();
});

test('--reason becomes the request\'s reason; status then shows the pending stop', async () => {
  const r = await cli(moto.env, ['stop', spec, 'idle', '--wait', '0', '--reason', 'moving to a larger instance type']);
  expect(r.code).toBe(EXIT.ok);
  expect(await json<ControlJson>(controlKey('idle'))).toMatchObject({ action: 'stop', by: REQUESTERS.cli, reason: 'moving to a larger instance type' });
  const s = await cli(moto.env, ['status', spec]);
  expect(s.stdout).toMatch(/^ {2}- idle: stop requested by spot-sweep stop at \S+: moving to a larger instance type$/m);
});

test('start writes a start request and scales a stopped group back to 0/1/1; a SUCCEEDED config is left alone', async () => {
  const r = await cli(moto.env, ['start', spec]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(EXIT.ok);
  expect(r.stdout).toMatch(/^ {2}running: start requested \(was STOPPED\); SpotSweep-halt-running scaled to 1$/m);
  expect(r.stdout).toMatch(/^ {2}done: already SUCCEEDED; nothing to start/m);
  const control = await json<ControlJson>(controlKey('running'));
  expect(contractProblems('control', control)).toEqual([]);
  expect(control).toMatchObject({ action: 'start', by: REQUESTERS.cliStart });
  const g = await group('running');
  expect([g?.MinSize, g?.MaxSize, g?.DesiredCapacity]).toEqual([0, 1, 1]);
  expect([(await group('done'))?.DesiredCapacity, await getObject(moto, BUCKET, controlKey('done'))]).toEqual([0, undefined]);
  // status.json stays the runner's: start wrote none.
  expect((await json<StatusJson>(statusKey('running')))?.state).toBe('STOPPED');
});

test('fails when a targeted group does not exist: exit 5, the request is still recorded', async () => {
  const r = await cli(moto.env, ['stop', wider, 'orphan', '--wait', '0']);
  expect(r.code).toBe(EXIT.aws);
  expect(r.stdout).toMatch(/orphan: no instance running \(UNKNOWN\); stop request recorded.*; no Auto Scaling group SpotSweep-halt-orphan; deploy the sweep stack/);
  expect(r.stderr).toMatch(/1 group\(s\) not scaled to zero: orphan/);
  expect((await json<ControlJson>(controlKey('orphan')))?.action).toBe('stop');
});

test('fails when the config is not in the spec: suggests the closest name and lists the configs', async () => {
  const r = await cli(moto.env, ['stop', spec, 'runing']);
  expect(r.code).toBe(EXIT.usage);
  expect(r.stderr).toMatch(/^spot-sweep stop: the sweep "halt" has no config "runing"; did you mean "running"\? Its configs are running, slow, done, idle\.\nUsage: spot-sweep stop /);
});

test('fails when the sweep stack is not deployed', async () => {
  const r = await cli(moto.env, ['stop', writeSpec('gone', ['a'])]);
  expect(r.code).toBe(EXIT.aws);
  expect(r.stderr).toMatch(/stack SpotSweep-gone not found in us-east-1/);
});
