import { AutoScalingClient, CreateAutoScalingGroupCommand, DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { CreateLaunchTemplateCommand, EC2Client } from '@aws-sdk/client-ec2';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { ListCommandsCommand, SendCommandCommand, ServiceInputTypes, ServiceOutputTypes, SSMClient, SSMClientResolvedConfig } from '@aws-sdk/client-ssm';
import { AwsStub, mockClient } from 'aws-sdk-client-mock';
import { EXIT } from '../../lib/cli/main';
import { stopScript } from '../../lib/cli/stop';
import { cli, clientOptions, deployFoundation, deploySweepStack, Moto, putObjects, s3Client, startMoto, writeSpec } from './aws-fixture';

/**
 * stop against moto_server: a launch template and one Auto Scaling group per config, as the sweep
 * stack makes them. moto's Run Command finishes every command at once, so the two cases where it does
 * not (a job slower than --wait, an instance SSM cannot reach) mock only the SSM client with
 * aws-sdk-client-mock; S3, CloudFormation and Auto Scaling stay on moto.
 */
// Each call loads SDK clients and talks to the emulator: slow on a busy machine, never hanging.
jest.setTimeout(30_000);

let moto: Moto;
const BUCKET = 'spot-sweep-artifacts-stop';
const SWEEP = 'halt';
const spec = writeSpec(SWEEP, ['running', 'done']);
/** The same sweep with more configs, for the stop cases that mock SSM. */
const wider = writeSpec(SWEEP, ['running', 'done', 'slow', 'unmanaged']);

async function createGroup(config: string): Promise<void> {
  const asg = new AutoScalingClient(clientOptions(moto));
  await asg.send(
    new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: `SpotSweep-${SWEEP}-${config}`,
      LaunchTemplate: { LaunchTemplateName: 'spot-sweep-test', Version: '$Latest' },
      MinSize: 0,
      MaxSize: 1,
      DesiredCapacity: 1,
      AvailabilityZones: ['us-east-1a'],
      Tags: [
        { Key: 'spot-sweep:sweep', Value: SWEEP, PropagateAtLaunch: true },
        { Key: 'spot-sweep:config', Value: config, PropagateAtLaunch: true },
        { Key: 'spot-sweep:job', Value: `${SWEEP}/${config}`, PropagateAtLaunch: true },
      ],
    }),
  );
  asg.destroy();
}

async function group(config: string) {
  const asg = new AutoScalingClient(clientOptions(moto));
  const r = await asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [`SpotSweep-${SWEEP}-${config}`] }));
  asg.destroy();
  return r.AutoScalingGroups?.[0];
}

async function status(config: string): Promise<Record<string, unknown>> {
  const s3 = s3Client(moto);
  const r = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: `sweeps/${SWEEP}/${config}/status.json` }));
  const text = await r.Body?.transformToString();
  s3.destroy();
  return JSON.parse(text ?? '{}');
}

beforeAll(async () => {
  moto = await startMoto();
  await deployFoundation(moto, BUCKET);
  await deploySweepStack(moto, SWEEP);
  const ec2 = new EC2Client(clientOptions(moto));
  await ec2.send(new CreateLaunchTemplateCommand({ LaunchTemplateName: 'spot-sweep-test', LaunchTemplateData: { ImageId: 'ami-12c6146b', InstanceType: 'g5.xlarge' } }));
  ec2.destroy();
  for (const config of ['running', 'done', 'slow', 'unmanaged']) await createGroup(config);
  await putObjects(moto, BUCKET, {
    [`sweeps/${SWEEP}/running/status.json`]: { state: 'TRAINING', progress: 0.3, attempts: 1, interruptions: 0, spendUsd: 0.4, jobDigest: 'sha256:abc' },
    [`sweeps/${SWEEP}/done/status.json`]: { state: 'SUCCEEDED', progress: 1, attempts: 1, interruptions: 0 },
    [`sweeps/${SWEEP}/slow/status.json`]: { state: 'TRAINING', progress: 0.5, attempts: 1, interruptions: 0 },
    [`sweeps/${SWEEP}/unmanaged/status.json`]: { state: 'BOOTSTRAPPING', attempts: 1, interruptions: 0 },
  });
}, 60_000);

afterAll(async () => {
  await moto?.stop();
});

test('status shows the instance each group launched, with its type and market', async () => {
  const r = await cli(moto.env, ['status', spec]);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^running\s+TRAINING\s+g5\.xlarge on-demand\s+\[######/m);
});

test('the stop command SIGTERMs only the job runner and waits for it to exit', () => {
  const script = stopScript(150);
  expect(script).toMatch(/pkill -TERM -f '\[t\]wo_tower\[\.\]job'/);
  expect(script).toMatch(/seq 75/);
});

test('stop asks the running job to checkpoint, scales every group to 0 and marks the unfinished config STOPPED', async () => {
  const r = await cli(moto.env, ['stop', spec, '--wait', '5']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/running: asked the job on i-\w+ to checkpoint and stop \(SIGTERM\); the job checkpointed and exited after \d+ s; scaled SpotSweep-halt-running to 0; status STOPPED/);
  expect(r.stdout).toMatch(/done: asked the job on i-\w+ .*; scaled SpotSweep-halt-done to 0; status stays SUCCEEDED/);
  for (const config of ['running', 'done']) {
    const g = await group(config);
    expect([g?.MinSize, g?.MaxSize, g?.DesiredCapacity]).toEqual([0, 0, 0]);
  }
  const running = await status('running');
  expect(running).toMatchObject({ state: 'STOPPED', progress: 0.3, spendUsd: 0.4, jobDigest: 'sha256:abc', message: 'stopped with spot-sweep stop' });
  expect((await status('done')).state).toBe('SUCCEEDED');

  const ssm = new SSMClient(clientOptions(moto));
  const commands = (await ssm.send(new ListCommandsCommand({}))).Commands ?? [];
  ssm.destroy();
  expect(commands.map((c) => [c.DocumentName, c.Comment])).toEqual(
    expect.arrayContaining([
      ['AWS-RunShellScript', `spot-sweep stop ${SWEEP}/running`],
      ['AWS-RunShellScript', `spot-sweep stop ${SWEEP}/done`],
    ]),
  );
}, 30_000);

test('fails when the config is not in the spec: lists the configs', async () => {
  const r = await cli(moto.env, ['stop', spec, 'nope']);
  expect(r.code).toBe(EXIT.usage);
  expect(r.stderr).toMatch(/the sweep "halt" has no config "nope"; its configs are running, done\./);
});

test('fails when the sweep stack is not deployed', async () => {
  const r = await cli(moto.env, ['stop', writeSpec('gone', ['a'])]);
  expect(r.code).toBe(EXIT.aws);
  expect(r.stderr).toMatch(/stack SpotSweep-gone not found in us-east-1/);
});

describe('stop when Run Command does not finish (SSM mocked)', () => {
  let ssm: AwsStub<ServiceInputTypes, ServiceOutputTypes, SSMClientResolvedConfig>;
  beforeAll(() => {
    ssm = mockClient(SSMClient);
  });
  afterEach(() => ssm.reset());
  afterAll(() => ssm.restore());

  test('waits no longer than --wait for a slow job, then scales to zero anyway', async () => {
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-slow' } });
    ssm.on(ListCommandsCommand).resolves({ Commands: [{ CommandId: 'cmd-slow', Status: 'InProgress' }] });
    const started = Date.now();
    const r = await cli(moto.env, ['stop', wider, 'slow', '--wait', '1']);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/slow: asked the job on i-\w+ to checkpoint and stop \(SIGTERM\); the job had not exited after 1 s \(--wait\); scaling to zero anyway .*; scaled SpotSweep-halt-slow to 0; status STOPPED/);
    const sent = ssm.commandCalls(SendCommandCommand)[0].args[0].input;
    expect(sent).toMatchObject({ DocumentName: 'AWS-RunShellScript', Parameters: { commands: [stopScript(1)], executionTimeout: ['61'] } });
    expect((await group('slow'))?.DesiredCapacity).toBe(0);
    expect(await status('slow')).toMatchObject({ state: 'STOPPED', progress: 0.5 });
  }, 30_000);

  test('an instance Run Command cannot reach is still scaled to zero, and the report says the job got no signal', async () => {
    ssm.on(SendCommandCommand).rejects(Object.assign(new Error('Instances [[i-0abc]] not in a valid state for account'), { name: 'InvalidInstanceId' }));
    const r = await cli(moto.env, ['stop', wider, 'unmanaged', '--wait', '1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/unmanaged: i-\w+: could not signal the job \(InvalidInstanceId: .*\); it stops without a last checkpoint.*; scaled SpotSweep-halt-unmanaged to 0; status STOPPED/);
    expect((await group('unmanaged'))?.DesiredCapacity).toBe(0);
  }, 30_000);
});
