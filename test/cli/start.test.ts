import { readFileSync, writeFileSync } from 'node:fs';
import { AutoScalingClient, CreateAutoScalingGroupCommand, DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { CreateLaunchTemplateCommand, EC2Client } from '@aws-sdk/client-ec2';
import { EXIT } from '../../lib/cli/main';
import { ControlJson, contractProblems, groupName, REQUESTERS, storeKeys } from '../../lib/contract';
import { controlDoc, statusDoc } from '../results/fixtures';
import { cli, clientOptions, deployFoundation, deploySweepStack, getObject, Moto, putObjects, startMoto, writeSpec } from './aws-fixture';

/**
 * `spot-sweep start` against moto_server, from each way a config ends up not running: its instance removed
 * itself after a failure (desired decremented: 0/1/0), `spot-sweep stop` or the budget stop (0/0/0, a stop
 * request standing), never started. start must both withdraw the stop (a start request, newest in
 * control.json) and make the group launch again (desired 1, max 1).
 */
jest.setTimeout(60_000);

let moto: Moto;
const BUCKET = 'spot-sweep-artifacts-start';
const SWEEP = 'again';
const spec = writeSpec(SWEEP, ['failed', 'stopped', 'fresh', 'done', 'orphan']);
const controlKey = (config: string): string => storeKeys.configFile(SWEEP, config, 'control');

async function createGroup(config: string, [min, max, desired]: [number, number, number]): Promise<void> {
  const asg = new AutoScalingClient(clientOptions(moto));
  await asg.send(
    new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: groupName(SWEEP, config),
      LaunchTemplate: { LaunchTemplateName: 'spot-sweep-start', Version: '$Latest' },
      MinSize: min,
      MaxSize: max,
      DesiredCapacity: desired,
      AvailabilityZones: ['us-east-1a'],
    }),
  );
  asg.destroy();
}

async function sizes(config: string): Promise<[number?, number?, number?]> {
  const asg = new AutoScalingClient(clientOptions(moto));
  const g = (await asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [groupName(SWEEP, config)] }))).AutoScalingGroups![0];
  asg.destroy();
  return [g.MinSize, g.MaxSize, g.DesiredCapacity];
}

const control = async (config: string): Promise<ControlJson | undefined> => {
  const t = await getObject(moto, BUCKET, controlKey(config));
  return t === undefined ? undefined : (JSON.parse(t) as ControlJson);
};

const STOP = controlDoc('stop', REQUESTERS.budgetGuard, 'Stopped by the sweep budget: the sweep has spent $50.10 of its budgetUsd $50.00.');

beforeAll(async () => {
  moto = await startMoto();
  await deployFoundation(moto, BUCKET);
  await deploySweepStack(moto, SWEEP);
  const ec2 = new EC2Client(clientOptions(moto));
  await ec2.send(new CreateLaunchTemplateCommand({ LaunchTemplateName: 'spot-sweep-start', LaunchTemplateData: { ImageId: 'ami-12c6146b', InstanceType: 'g5.xlarge' } }));
  ec2.destroy();
  await createGroup('failed', [0, 1, 0]);
  await createGroup('stopped', [0, 0, 0]);
  await createGroup('fresh', [0, 1, 0]);
  await createGroup('done', [0, 1, 0]);
  await createGroup('queued', [0, 1, 0]);
  await putObjects(moto, BUCKET, {
    [storeKeys.configFile(SWEEP, 'failed', 'status')]: statusDoc(SWEEP, 'failed', 'FAILED', { message: 'CUDA out of memory' }),
    [storeKeys.configFile(SWEEP, 'stopped', 'status')]: statusDoc(SWEEP, 'stopped', 'STOPPED', { stoppedBy: REQUESTERS.budgetGuard, stopRequestId: STOP.id }),
    [controlKey('stopped')]: STOP,
    [storeKeys.configFile(SWEEP, 'done', 'status')]: statusDoc(SWEEP, 'done', 'SUCCEEDED'),
    [storeKeys.configFile(SWEEP, 'queued', 'status')]: statusDoc(SWEEP, 'queued', 'FAILED', { message: 'spot capacity' }),
  });
}, 60_000);

afterAll(async () => {
  await moto?.stop();
});

test('start raises every unfinished group to 0/1/1 and makes a start request the newest in control.json; a SUCCEEDED config is left alone', async () => {
  const r = await cli(moto.env, ['start', spec, 'failed']);
  expect(r.code).toBe(EXIT.ok);
  expect(r.stdout).toMatch(/^ {2}failed: start requested \(was FAILED\); SpotSweep-again-failed scaled to 1$/m);
  expect(await sizes('failed')).toEqual([0, 1, 1]);

  for (const config of ['stopped', 'fresh', 'done']) expect((await cli(moto.env, ['start', spec, config])).code).toBe(EXIT.ok);
  // After the budget stop (max 0): max 1 again, or desired 1 could not be set.
  expect(await sizes('stopped')).toEqual([0, 1, 1]);
  expect(await sizes('fresh')).toEqual([0, 1, 1]);
  for (const config of ['failed', 'stopped', 'fresh']) {
    const c = await control(config);
    expect(contractProblems('control', c)).toEqual([]);
    expect(c).toMatchObject({ action: 'start', by: REQUESTERS.cliStart, reason: 'started with spot-sweep start' });
  }
  expect((await control('stopped'))!.id).not.toBe(STOP.id);
  expect(await sizes('done')).toEqual([0, 1, 0]);
  expect(await control('done')).toBeUndefined();
});

test('fails when the group does not exist: exit 5, naming the group; the start request is still recorded', async () => {
  const r = await cli(moto.env, ['start', spec, 'orphan']);
  expect(r.code).toBe(EXIT.aws);
  expect(r.stdout).toMatch(/^ {2}orphan: start requested, but SpotSweep-again-orphan was not scaled to 1: /m);
  expect((await control('orphan'))?.action).toBe('start');
});

test('with maxParallel in the spec, start only writes the start request and leaves scaling to the scheduler, so the cap holds', async () => {
  const capped = spec.replace(/\.json$/, '-capped.json');
  const doc = JSON.parse(readFileSync(spec, 'utf8'));
  writeFileSync(capped, JSON.stringify({ ...doc, maxParallel: 1, configs: [...doc.configs, { name: 'queued', examples: 10000 }] }));
  const r = await cli(moto.env, ['start', capped, 'queued']);
  expect(r.code).toBe(EXIT.ok);
  expect(r.stdout).toMatch(/^ {2}queued: start requested \(was FAILED\); the scheduler scales SpotSweep-again-queued to 1 once fewer than 1 configs hold an instance \(maxParallel\)$/m);
  expect(await sizes('queued')).toEqual([0, 1, 0]);
  expect(await control('queued')).toMatchObject({ action: 'start', by: REQUESTERS.cliStart });
});
