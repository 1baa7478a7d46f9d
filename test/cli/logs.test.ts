import { EXIT, main } from '../../lib/cli/main';
import { REQUESTERS, storeKeys } from '../../lib/contract';
import { controlDoc, statusDoc } from '../results/fixtures';
import { cli, deployFoundation, Moto, putObjects, startMoto, writeSpec } from './aws-fixture';

/** logs against moto_server: the config's train.log in the bucket, printed and followed. */
// Each call loads SDK clients and talks to the emulator: slow on a busy machine, never hanging.
jest.setTimeout(30_000);

let moto: Moto;
const BUCKET = 'spot-sweep-artifacts-logs';
const SWEEP = 'tail';
const spec = writeSpec(SWEEP, ['baseline', 'wide', 'again']);
const log = storeKeys.configFile(SWEEP, 'baseline', 'log');
const status = storeKeys.configFile(SWEEP, 'baseline', 'status');
const FIRST = '=== attempt 1 on g5.xlarge (spot) at 2026-11-28T10:00:00Z ===\nfold 1/3 epoch 1/2 loss 2.31\n';
const MORE = 'fold 1/3 epoch 2/2 loss 1.87 — nDCG@10 0.44\n';
const LAST = 'done: results.json written\n';

beforeAll(async () => {
  moto = await startMoto();
  await deployFoundation(moto, BUCKET);
  await putObjects(moto, BUCKET, {
    [log]: FIRST,
    [status]: statusDoc(SWEEP, 'baseline', 'TRAINING', { progress: 0.2 }),
  });
}, 60_000);

afterAll(async () => {
  await moto?.stop();
});

test('logs prints the config\'s train.log from the bucket', async () => {
  const r = await cli(moto.env, ['logs', spec, 'baseline']);
  expect(r.code).toBe(0);
  expect(r.stdout).toBe(FIRST);
});

/** Resolves once `condition` holds (checked every 50 ms). */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((r) => setTimeout(r, 50));
}

test('logs --follow prints only the bytes added, and stops when the config has finished', async () => {
  let stdout = '';
  let stderr = '';
  const run = main(['logs', spec, 'baseline', '--follow', '--interval', '0.2'], { out: (t) => (stdout += t), err: (t) => (stderr += t), env: moto.env });
  await until(() => stdout.length > 0);
  expect(stdout).toBe(FIRST);
  await putObjects(moto, BUCKET, { [log]: FIRST + MORE });
  await until(() => stdout.length > FIRST.length);
  expect(stdout).toBe(FIRST + MORE);
  // As the runner does at the end: the full log first, then the final state.
  await putObjects(moto, BUCKET, { [log]: FIRST + MORE + LAST });
  await putObjects(moto, BUCKET, { [status]: statusDoc(SWEEP, 'baseline', 'SUCCEEDED', { progress: 1 }) });
  expect(await run).toBe(0);
  expect(stdout).toBe(FIRST + MORE + LAST);
  expect(stderr).toMatch(/baseline is SUCCEEDED; stopping --follow/);
});

test('logs --follow right after spot-sweep start does not stop at the STOPPED the new attempt has not replaced yet', async () => {
  const again = storeKeys.configFile(SWEEP, 'again', 'status');
  const stopped = statusDoc(SWEEP, 'again', 'STOPPED', { updatedAt: '2026-11-28T10:00:00Z' });
  await putObjects(moto, BUCKET, {
    [again]: stopped,
    [storeKeys.configFile(SWEEP, 'again', 'log')]: FIRST,
    [storeKeys.configFile(SWEEP, 'again', 'control')]: controlDoc('start', REQUESTERS.cliStart, 'started with spot-sweep start', '2026-11-28T11:00:00.000Z'),
  });
  let stderr = '';
  const run = main(['logs', spec, 'again', '--follow', '--interval', '0.2'], { out: () => undefined, err: (t) => (stderr += t), env: moto.env });
  await new Promise((r) => setTimeout(r, 1500));
  expect(stderr).not.toMatch(/stopping --follow/);
  // The new attempt runs and ends: now --follow stops.
  await putObjects(moto, BUCKET, { [again]: statusDoc(SWEEP, 'again', 'SUCCEEDED', { updatedAt: '2026-11-28T12:00:00Z' }) });
  expect(await run).toBe(0);
  expect(stderr).toMatch(/again is SUCCEEDED; stopping --follow/);
});

test('logs says so when the job has not uploaded a log yet', async () => {
  const r = await cli(moto.env, ['logs', spec, 'wide']);
  expect(r.code).toBe(0);
  expect(r.stdout).toBe('');
  expect(r.stderr).toMatch(/no train\.log for wide yet \(s3:\/\/spot-sweep-artifacts-logs\/sweeps\/tail\/wide\/train\.log\)/);
});

test('fails when the config is not in the spec: lists the configs', async () => {
  const r = await cli(moto.env, ['logs', spec, 'other']);
  expect(r.code).toBe(EXIT.usage);
  expect(r.stderr).toMatch(/the sweep "tail" has no config "other"; its configs are baseline, wide, again\.\nUsage: spot-sweep logs/);
});

test('fails when the config name is misspelt: suggests the closest config', async () => {
  const r = await cli(moto.env, ['logs', spec, 'baselin']);
  expect(r.code).toBe(EXIT.usage);
  expect(r.stderr).toBe(
    'spot-sweep logs: the sweep "tail" has no config "baselin"; did you mean "baseline"? Its configs are baseline, wide, again.\n' +
      'Usage: spot-sweep logs <spec.json> <config> [--follow] [--interval SECONDS] [--region REGION] [--bucket NAME]\n',
  );
});

test('fails when no config is named', async () => {
  const r = await cli(moto.env, ['logs', spec]);
  expect(r.code).toBe(EXIT.usage);
  expect(r.stderr).toMatch(/^spot-sweep logs: no config given \(the config whose log to print\)\.\nUsage:/);
});

test('fails when the foundation stack is not deployed in the region', async () => {
  const r = await cli({ ...moto.env, AWS_REGION: 'eu-west-3' }, ['logs', spec, 'baseline']);
  expect(r.code).toBe(EXIT.aws);
  expect(r.stderr).toBe('spot-sweep logs: stack SpotSweep-Foundation not found in eu-west-3: deploy it with npx cdk deploy SpotSweep-Foundation.\n');
});
