import { AutoScalingClient, CreateAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import { CreateLaunchTemplateCommand, EC2Client } from '@aws-sdk/client-ec2';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FOUNDATION_STACK } from '../../lib/cli/aws';
import { foldCell, formatEta, formatStatus, mergeView, progressBar } from '../../lib/cli/commands/status';
import { EXIT, main } from '../../lib/cli/main';
import { groupName, REQUESTERS, SpendJson, storeKeys } from '../../lib/contract';
import { FOUNDATION_STACK_NAME } from '../../lib/foundation-stack';
import { validateSpec } from '../../lib/spec/validate';
import { controlDoc, scriptResults, statusDoc, trainResults } from '../results/fixtures';
import { cli, clientOptions, deployFoundation, deploySweepStack, Moto, putObjects, startMoto, writeSpec } from './aws-fixture';

/** status and results against moto_server: a sweep with configs in every state. */
// Each call loads SDK clients and talks to the emulator: slow on a busy machine, never hanging.
jest.setTimeout(30_000);

let moto: Moto;
const BUCKET = 'spot-sweep-artifacts-test';
const SWEEP = 'mix';
const CONFIGS = ['best', 'second', 'training', 'broken', 'waiting', 'fresh', 'halted', 'mine'];
const spec = writeSpec(SWEEP, CONFIGS, 40);
const STOP_AT = '2026-11-28T11:00:00Z';
const ESC = /\x1b\[/;

const spendEntry = (usd: number) => ({ usd, instanceHours: usd, instances: 1, interruptions: 0 });
const SPEND: SpendJson = {
  version: 1,
  sweep: SWEEP,
  budgetUsd: 40,
  updatedAt: '2026-11-28T11:05:00Z',
  totalUsd: 2.5,
  configs: { best: spendEntry(1.25), second: spendEntry(0.5), training: spendEntry(0.75) },
  instances: {},
  notes: [],
};

beforeAll(async () => {
  moto = await startMoto();
  await deployFoundation(moto, BUCKET);
  await deploySweepStack(moto, SWEEP);
  // The waiting config's group wants an instance; the emulator launches it (without the sweep's tags, so it is
  // not the config's instance yet), and its scaling activity says the launch succeeded.
  const ec2 = new EC2Client(clientOptions(moto));
  await ec2.send(new CreateLaunchTemplateCommand({ LaunchTemplateName: 'status-test', LaunchTemplateData: { ImageId: 'ami-12c6146b', InstanceType: 'g5.xlarge' } }));
  const autoscaling = new AutoScalingClient(clientOptions(moto));
  await autoscaling.send(
    new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: groupName(SWEEP, 'waiting'),
      MinSize: 0,
      MaxSize: 1,
      DesiredCapacity: 1,
      AvailabilityZones: ['us-east-1a'],
      LaunchTemplate: { LaunchTemplateName: 'status-test', Version: '$Latest' },
    }),
  );
  ec2.destroy();
  autoscaling.destroy();
  const key = (config: string, file: 'status' | 'results' | 'control') => storeKeys.configFile(SWEEP, config, file);
  await putObjects(moto, BUCKET, {
    // A finished 3-fold 2-epoch job: its last update holds the last 0-based fold and epoch.
    [key('best', 'status')]: statusDoc(SWEEP, 'best', 'SUCCEEDED', { fold: 2, folds: 3, epoch: 1, epochs: 2, progress: 1, attempts: 2, interruptions: 1, instanceType: 'g5.xlarge', market: 'spot' }),
    [key('best', 'results')]: trainResults(SWEEP, 'best', [0.44, 0.45, 0.46]),
    [key('second', 'status')]: statusDoc(SWEEP, 'second', 'SUCCEEDED', { progress: 1 }),
    [key('second', 'results')]: trainResults(SWEEP, 'second', [0.4, 0.41, 0.42]),
    [key('training', 'status')]: statusDoc(SWEEP, 'training', 'TRAINING', { fold: 1, folds: 3, epoch: 0, epochs: 2, progress: 0.45, examplesPerSecond: 12345.6, etaSeconds: 4000 }),
    [key('training', 'control')]: controlDoc('stop', REQUESTERS.budgetGuard, 'the sweep reached its budget of $40.00', STOP_AT),
    [key('broken', 'status')]: statusDoc(SWEEP, 'broken', 'FAILED', { message: 'data directory s3://example-data/two-tower/ has no queries.parquet' }),
    [key('waiting', 'status')]: statusDoc(SWEEP, 'waiting', 'PENDING', { attempts: 0 }),
    [key('halted', 'status')]: statusDoc(SWEEP, 'halted', 'STOPPED', { stoppedBy: REQUESTERS.cli, message: 'stopped with spot-sweep stop' }),
    [key('halted', 'control')]: controlDoc('stop', REQUESTERS.cli, 'stopped with spot-sweep stop'),
    [key('mine', 'status')]: statusDoc(SWEEP, 'mine', 'SUCCEEDED', { mode: 'script', progress: 1 }),
    [key('mine', 'results')]: scriptResults(SWEEP, 'mine'),
    [storeKeys.sweepFile(SWEEP, 'spend')]: SPEND,
    [storeKeys.sweepFile(SWEEP, 'report')]: '<!doctype html><title>mix</title><p>report</p>',
  });
}, 60_000);

afterAll(async () => {
  await moto?.stop();
});

test('the CLI looks for the foundation stack by its real name', () => {
  expect(FOUNDATION_STACK).toBe(FOUNDATION_STACK_NAME);
});

test('progress bar and ETA read at a glance', () => {
  expect(progressBar(0.45)).toBe('[#########...........]  45%');
  expect(progressBar(undefined)).toBe('-');
  expect(formatEta(45)).toBe('45 s');
  expect(formatEta(4000)).toBe('67 min');
  expect(formatEta(4 * 3600 + 5 * 60)).toBe('4 h 05 min');
});

test('fold and epoch count from 1 although status.json holds 0-based indexes', () => {
  // A finished 5-fold 2-epoch config reads 5/5 and 2/2, not 4/5 and 1/2.
  expect(foldCell({ fold: 4, folds: 5, epoch: 1, epochs: 2 }, 'SUCCEEDED')).toBe('fold 5/5 ep 2/2');
  expect(foldCell({ fold: null, folds: 5, epoch: null, epochs: 2 }, 'SUCCEEDED')).toBe('fold 5/5 ep 2/2');
  // fold == folds: the final model's pass (train.finalModel), after every fold.
  expect(foldCell({ fold: 5, folds: 5, epoch: 0, epochs: 2 }, 'TRAINING')).toBe('final model ep 1/2');
  expect(foldCell({ fold: 5, folds: 5, epoch: 1, epochs: 2 }, 'SUCCEEDED')).toBe('fold 5/5 ep 2/2');
  expect(foldCell({ fold: 0, folds: 5, epoch: 0, epochs: 2 }, 'TRAINING')).toBe('fold 1/5 ep 1/2');
  expect(foldCell({ fold: 4, folds: 5, epoch: 1, epochs: 2 }, 'STOPPED')).toBe('fold 5/5 ep 2/2');
  expect(foldCell({ folds: 5 }, 'PENDING')).toBe('-');
  expect(foldCell(undefined, 'UNKNOWN')).toBe('-');
});

describe('status', () => {
  const line = (stdout: string, config: string): string => stdout.split('\n').find((l) => l.startsWith(`${config} `)) ?? '';

  test('shows every config: state, progress, fold/epoch from 1, examples/s, ETA, attempts, interruptions, spend from spend.json', async () => {
    // A wide terminal: the widest layout, with the progress bar and attempts and interruptions apart.
    const r = await cli({ ...moto.env, COLUMNS: '160' }, ['status', spec]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(`Sweep "${SWEEP}" (stack SpotSweep-${SWEEP}, us-east-1, bucket ${BUCKET})`);
    expect(line(r.stdout, 'training')).toMatch(/^training\s+TRAINING\s+none\s+\[#########\.{11}\]\s+45%\s+fold 2\/3 ep 1\/2\s+12,346\s+67 min\s+1\s+0\s+\$0\.75$/);
    expect(line(r.stdout, 'best')).toMatch(/^best\s+SUCCEEDED\s+none \(last: g5\.xlarge spot\)\s+\[#{20}\] 100%\s+fold 3\/3 ep 2\/2\s+-\s+-\s+2\s+1\s+\$1\.25$/);
    expect(line(r.stdout, 'broken')).toMatch(/^broken\s+FAILED\s.*\s-$/);
    expect(line(r.stdout, 'waiting')).toMatch(/^waiting\s+PENDING\s/);
    expect(line(r.stdout, 'fresh')).toMatch(/^fresh\s+UNKNOWN\s/);
    expect(r.stdout).toMatch(/Spend: \$2\.50 of the \$40\.00 budget \(6%\)/);
    expect(r.stdout).toMatch(/broken: data directory s3:\/\/example-data\/two-tower\/ has no queries\.parquet/);
    expect(r.stdout).toMatch(/fresh: no status\.json yet/);
    expect(r.stdout).not.toMatch(/does not fit/);
  });

  test('fits an 80-column terminal: short headers, a percentage, attempts/interruptions in one column, instances folded under their rows', async () => {
    const r = await cli(moto.env, ['status', spec]);
    expect(r.code).toBe(0);
    const table = r.stdout.split('\n\n')[1].split('\n');
    for (const row of table) expect(row.length).toBeLessThanOrEqual(80);
    expect(table[0]).toMatch(/^config\s+state\s+done\s+fold\/ep\s+ex\/s\s+ETA\s+att\/int\s+spend$/);
    expect(line(r.stdout, 'training')).toMatch(/^training\s+TRAINING\s+45%\s+fold 2\/3 ep 1\/2\s+12,346\s+67 min\s+1\/0\s+\$0\.75$/);
    expect(line(r.stdout, 'best')).toMatch(/^best\s+SUCCEEDED\s+100%\s+fold 3\/3 ep 2\/2\s+-\s+-\s+2\/1\s+\$1\.25$/);
    expect(table[table.findIndex((l) => l.startsWith('best ')) + 1]).toBe('  instance: none (last: g5.xlarge spot)');
  });

  test('keeps the instance column when the short layout fits', () => {
    const spec1 = validateSpec({ name: 'fit', budgetUsd: 1, data: 's3://data-bucket/d/', configs: [{ name: 'a' }] });
    const status = JSON.stringify(statusDoc('fit', 'a', 'TRAINING', { progress: 0.5 }));
    const view = mergeView(spec1, { status: [status], control: [undefined] }, { region: 'r', bucket: 'b', instances: new Map(), groups: new Map() });
    const table = formatStatus(view, undefined, 80).split('\n\n')[1].split('\n');
    expect(table[0]).toMatch(/^config\s+state\s+instance\s+done\s+fold\/ep/);
    expect(table).toHaveLength(2);
  });

  test('a config that restarted after a failure shows the retries it used beside its state, still within 80 columns', () => {
    const spec1 = validateSpec({ name: 'fit', budgetUsd: 1, data: 's3://data-bucket/d/', configs: [{ name: 'flaky', retries: { max: 2 } }, { name: 'calm' }] });
    const flaky = JSON.stringify(statusDoc('fit', 'flaky', 'TRAINING', { progress: 0.5, attempts: 2, retries: { used: 1, max: 2 } }));
    const calm = JSON.stringify(statusDoc('fit', 'calm', 'TRAINING', { progress: 0.5, retries: { used: 0, max: 0 } }));
    const view = mergeView(spec1, { status: [flaky, calm], control: [undefined, undefined] }, { region: 'r', bucket: 'b', instances: new Map(), groups: new Map() });
    const table = formatStatus(view, undefined, 80).split('\n\n')[1].split('\n');
    for (const row of table) expect(row.length).toBeLessThanOrEqual(80);
    expect(table.find((l) => l.startsWith('flaky '))).toMatch(/^flaky\s+TRAINING retry 1\/2\s/);
    expect(table.find((l) => l.startsWith('calm '))).toMatch(/^calm\s+TRAINING\s+(?!retry)/);
  });

  test("reads the scaling activities of a group that wants an instance and has none: a launch that succeeded is no problem", async () => {
    const r = await cli(moto.env, ['status', spec, '--json']);
    expect(r.code).toBe(0);
    const waiting = JSON.parse(r.stdout).configs.find((c: { config: string }) => c.config === 'waiting');
    expect(waiting.group).toEqual({ desired: 1, min: 0, max: 1 });
    expect(waiting.launch).toBeUndefined();
    const text = await cli({ ...moto.env, COLUMNS: '160' }, ['status', spec]);
    expect(line(text.stdout, 'waiting')).toMatch(/^waiting\s+PENDING\s+launching\s/);
  });

  test('shows a stop request the job has not obeyed yet, and who stopped a STOPPED config', async () => {
    const r = await cli(moto.env, ['status', spec]);
    expect(r.stdout).toContain(`  - training: stop requested by budget-guard at ${STOP_AT}: the sweep reached its budget of $40.00\n`);
    expect(r.stdout).toContain('  - halted: stopped by spot-sweep stop: stopped with spot-sweep stop\n');
    // The request that stopped it is no longer pending.
    expect(r.stdout).not.toMatch(/halted: stop requested/);
    expect(line(r.stdout, 'halted')).toMatch(/^halted\s+STOPPED\s/);
  });

  test('--json prints the merged view and nothing else: status.json as stored, control.json, spend per config', async () => {
    const r = await cli(moto.env, ['status', spec, '--json'], { isTTY: true });
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(ESC);
    const view = JSON.parse(r.stdout);
    expect(view).toMatchObject({ sweep: SWEEP, stack: `SpotSweep-${SWEEP}`, region: 'us-east-1', bucket: BUCKET, budgetUsd: 40, spendUsd: 2.5 });
    expect(view.configs.map((c: { config: string }) => c.config)).toEqual(CONFIGS);
    const byName = Object.fromEntries(view.configs.map((c: { config: string }) => [c.config, c]));
    expect(byName.training).toMatchObject({ state: 'TRAINING', final: false, spendUsd: 0.75, status: { fold: 1, epoch: 0 } });
    expect(byName.training.pendingRequest).toEqual({ action: 'stop', by: 'budget-guard', at: STOP_AT, reason: 'the sweep reached its budget of $40.00' });
    expect(byName.halted).toMatchObject({ state: 'STOPPED', final: true, stoppedBy: 'spot-sweep stop', control: { action: 'stop' } });
    expect(byName.halted.pendingRequest).toBeUndefined();
    expect(byName.fresh).toMatchObject({ state: 'UNKNOWN', final: false });
    expect(byName.best.spendUsd).toBe(1.25);
    expect(view.notes).toContainEqual(expect.stringMatching(/^training: stop requested by budget-guard/));
  });

  test('colours the states only on a terminal with NO_COLOR unset', async () => {
    const tty = await cli(moto.env, ['status', spec], { isTTY: true });
    expect(tty.stdout).toMatch(/\x1b\[32mSUCCEEDED\s*\x1b\[0m/);
    expect(tty.stdout).toMatch(/\x1b\[31mFAILED\s*\x1b\[0m/);
    expect(tty.stdout).toMatch(/\x1b\[33mSTOPPED\s*\x1b\[0m/);
    expect((await cli({ ...moto.env, NO_COLOR: '1' }, ['status', spec], { isTTY: true })).stdout).not.toMatch(ESC);
    expect((await cli(moto.env, ['status', spec], { isTTY: false })).stdout).not.toMatch(ESC);
  });

  test('--watch refreshes until Ctrl-C, then exits 0', async () => {
    const stop = new AbortController();
    let stdout = '';
    const out = (t: string): void => {
      stdout += t;
      if (stdout.split(`Sweep "${SWEEP}"`).length - 1 >= 2) stop.abort(); // Ctrl-C after the second refresh
    };
    const code = await main(['status', spec, '--watch', '--interval', '1'], { out, err: out, env: moto.env, signal: stop.signal });
    expect(code).toBe(0);
    expect(stdout.split(`Sweep "${SWEEP}"`).length - 1).toBe(2);
    expect(stdout).not.toMatch(ESC); // not a terminal: plain blocks
  });

  test('a real Ctrl-C (SIGINT) ends --watch; a second one while it finishes says so instead of killing it', async () => {
    let stdout = '';
    let stderr = '';
    let pressed = 0;
    const out = (t: string): void => {
      stdout += t;
      // Two presses after the first refresh: the first ends the watch, the second only gets a sentence.
      if (pressed === 0 && stdout.includes(`Sweep "${SWEEP}"`)) {
        pressed = 2;
        process.emit('SIGINT');
        process.emit('SIGINT');
      }
    };
    const code = await main(['status', spec, '--watch', '--interval', '1'], { out, err: (t) => (stderr += t), env: moto.env });
    expect(code).toBe(0);
    expect(stderr).toMatch(/^spot-sweep status: still finishing what Ctrl-C asked .*press Ctrl-C once more to quit at once/);
    expect(process.listenerCount('SIGINT')).toBe(0); // the handler goes with the command
  });

  test('fails when --json and --watch are combined', async () => {
    const r = await cli(moto.env, ['status', spec, '--json', '--watch']);
    expect(r.code).toBe(EXIT.usage);
    expect(r.stderr).toMatch(/--json prints one document; it does not go with --watch/);
    expect(r.stdout).toBe('');
  });

  test('fails when the sweep stack is not deployed: names the stack, the region and the deploy command', async () => {
    const other = writeSpec('notdeployed', ['a']);
    const r = await cli(moto.env, ['status', other]);
    expect(r.code).toBe(EXIT.aws);
    expect(r.stderr).toMatch(/stack SpotSweep-notdeployed not found in us-east-1: deploy it with npx cdk deploy -c sweep=\S*notdeployed\.json/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test('fails when there are no AWS credentials', async () => {
    const { AWS_ACCESS_KEY_ID: _k, AWS_SECRET_ACCESS_KEY: _s, ...env } = moto.env;
    const r = await cli(env, ['status', spec]);
    expect(r.code).toBe(EXIT.aws);
    expect(r.stderr).toBe('spot-sweep status: no AWS credentials: run aws configure or set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).\n');
  });

  test('fails when no region is configured anywhere', async () => {
    const { AWS_REGION: _r, ...env } = moto.env;
    const keys = ['AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE', 'AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_PROFILE'];
    const saved = keys.map((k) => [k, process.env[k]] as const);
    // The SDK reads the profile's region from the real environment: point it at nothing.
    for (const k of keys) delete process.env[k];
    process.env.AWS_CONFIG_FILE = path.join(os.tmpdir(), 'no-such-aws-config');
    process.env.AWS_SHARED_CREDENTIALS_FILE = path.join(os.tmpdir(), 'no-such-aws-credentials');
    try {
      const r = await cli(env, ['status', spec]);
      expect(r.code).toBe(EXIT.aws);
      expect(r.stderr).toMatch(/no AWS region: pass --region/);
    } finally {
      for (const [k, v] of saved) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  test('fails when the spec file does not exist', async () => {
    const r = await cli(moto.env, ['status', 'sweeps/no-such.json']);
    expect(r.code).toBe(EXIT.specError);
    expect(r.stderr).toMatch(/cannot read the sweep spec/);
  });
});

describe('results', () => {
  const rowsOf = (stdout: string): string[] => stdout.split('\n').filter((l) => /^(\d|-)\s/.test(l));

  test('prints the leaderboard, best first, the script config after the scored ones, the failed config explained', async () => {
    const r = await cli(moto.env, ['results', spec]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rows = rowsOf(r.stdout);
    expect(rows[0]).toMatch(/^1\s+best\s+SUCCEEDED\s+0\.4500 ± 0\.0100\s+15,000/);
    expect(rows[1]).toMatch(/^2\s+second\s+SUCCEEDED\s+0\.4100/);
    expect(rows[2]).toMatch(/^-\s+mine\s+SUCCEEDED\s+-\s+-\s+-\s+script: 2 result file\(s\), no metric declared$/);
    expect(r.stdout).toMatch(/broken\s+FAILED.*has no queries\.parquet/);
    expect(r.stdout).toMatch(/^-\s+training\s+TRAINING\s+-\s+-\s+-\s+no results\.json yet; stop requested by budget-guard at \S+: the sweep reached its budget of \$40\.00$/m);
    expect(r.stdout).not.toContain('Problems:');
  });

  test('--json prints the leaderboard rows and problems and nothing else', async () => {
    const r = await cli(moto.env, ['results', spec, '--json'], { isTTY: true });
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(ESC);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ sweep: SWEEP, store: `s3://${BUCKET}/sweeps/${SWEEP}/`, problems: [] });
    expect(doc.rows.map((row: { config: string }) => row.config).slice(0, 3)).toEqual(['best', 'second', 'mine']);
    expect(doc.rows[0]).toMatchObject({ config: 'best', state: 'SUCCEEDED', mode: 'train', ndcgMean: 0.45, folds: [0.44, 0.45, 0.46] });
    expect(doc.rows[2]).toMatchObject({ config: 'mine', state: 'SUCCEEDED', mode: 'script', resultFiles: ['results/metrics.json', 'results/notes.txt'] });
    expect(doc.rows[2].problem).toBeUndefined();
  });

  test('colours the states on a terminal unless NO_COLOR is set', async () => {
    expect((await cli(moto.env, ['results', spec], { isTTY: true })).stdout).toMatch(/\x1b\[32mSUCCEEDED/);
    expect((await cli({ ...moto.env, NO_COLOR: 'yes' }, ['results', spec], { isTTY: true })).stdout).not.toMatch(ESC);
    expect((await cli(moto.env, ['results', spec])).stdout).not.toMatch(ESC);
  });

  test('--report-file writes report.html locally and prints its path', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'spot-sweep-report-'));
    const file = path.join(dir, 'mix.html');
    const r = await cli(moto.env, ['results', spec, '--report-file', file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(`Report: ${file}`);
    expect(readFileSync(file, 'utf8')).toMatch(/<title>mix<\/title>/);
  });

  test('--open writes ./<sweep>-report.html; --bucket skips the stack look-up', async () => {
    const cwd = process.cwd();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'spot-sweep-cwd-'));
    process.chdir(dir);
    try {
      const r = await cli(moto.env, ['results', spec, '--bucket', BUCKET, '--open']);
      expect(r.code).toBe(0);
      expect(existsSync(path.join(dir, `${SWEEP}-report.html`))).toBe(true);
    } finally {
      process.chdir(cwd);
    }
  });

  test('fails when the bucket has no report yet (--open)', async () => {
    const other = writeSpec('noreport', ['a']);
    const r = await cli(moto.env, ['results', other, '--report-file', path.join(os.tmpdir(), 'x.html')]);
    expect(r.code).toBe(EXIT.noReport);
    expect(r.stderr).toMatch(/sweeps\/noreport\/report\.html does not exist yet/);
  });
});
