import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FOUNDATION_STACK } from '../../lib/cli/aws';
import { EXIT, main } from '../../lib/cli/main';
import { FOUNDATION_STACK_NAME } from '../../lib/foundation-stack';
import { formatEta, progressBar } from '../../lib/cli/status';
import { cli, deployFoundation, deploySweepStack, Moto, putObjects, startMoto, writeSpec } from './aws-fixture';

/** status and results against moto_server: a sweep with configs in every state. */
// Each call loads SDK clients and talks to the emulator: slow on a busy machine, never hanging.
jest.setTimeout(30_000);

let moto: Moto;
const BUCKET = 'spot-sweep-artifacts-test';
const SWEEP = 'mix';
const spec = writeSpec(SWEEP, ['best', 'second', 'training', 'broken', 'waiting', 'fresh'], 40);

const results = (mean: number, folds: number[]) => ({
  version: 1,
  folds: folds.map((ndcg10, fold) => ({ fold, ndcg10, trainLoss: 1.2, trainExamples: 9000, testQueries: 100, seconds: 60 })),
  ndcg10: { mean, std: 0.01, ddof: 1 },
  totalSeconds: 600,
  examplesPerSecond: 15000,
  hardware: { device: 'cuda', gpuName: 'NVIDIA A10G', gpuCount: 1, precision: 'bf16' },
});

beforeAll(async () => {
  moto = await startMoto();
  await deployFoundation(moto, BUCKET);
  await deploySweepStack(moto, SWEEP);
  const p = `sweeps/${SWEEP}`;
  await putObjects(moto, BUCKET, {
    [`${p}/best/status.json`]: { state: 'SUCCEEDED', progress: 1, attempts: 2, interruptions: 1, spendUsd: 1.25, instanceType: 'g5.xlarge', market: 'spot' },
    [`${p}/best/results.json`]: results(0.45, [0.44, 0.45, 0.46]),
    [`${p}/second/status.json`]: { state: 'SUCCEEDED', progress: 1, attempts: 1, interruptions: 0, spendUsd: 0.5 },
    [`${p}/second/results.json`]: results(0.41, [0.4, 0.41, 0.42]),
    [`${p}/training/status.json`]: { state: 'TRAINING', fold: 2, folds: 3, epoch: 1, epochs: 2, progress: 0.45, examplesPerSecond: 12345.6, etaSeconds: 4000, attempts: 1, interruptions: 0, spendUsd: 0.75 },
    [`${p}/broken/status.json`]: { state: 'FAILED', attempts: 1, interruptions: 0, message: 'data directory s3://example-data/two-tower/ has no queries.parquet' },
    [`${p}/waiting/status.json`]: { state: 'PENDING', attempts: 0, interruptions: 0 },
    [`${p}/spend.json`]: { instances: {}, totalUsd: 2.5 },
    [`${p}/report.html`]: '<!doctype html><title>mix</title><p>report</p>',
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

describe('status', () => {
  test('shows every config: state, progress, examples/s, ETA, attempts, interruptions, spend; the total against the budget', async () => {
    const r = await cli(moto.env, ['status', spec]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const line = (config: string): string => r.stdout.split('\n').find((l) => l.startsWith(`${config} `)) ?? '';
    expect(r.stdout).toMatch(`Sweep "${SWEEP}" (stack SpotSweep-${SWEEP}, us-east-1, bucket ${BUCKET})`);
    expect(line('training')).toMatch(/^training\s+TRAINING\s+none\s+\[#########\.{11}\]\s+45%\s+fold 2\/3 ep 1\/2\s+12,346\s+67 min\s+1\s+0\s+\$0\.75$/);
    expect(line('best')).toMatch(/^best\s+SUCCEEDED\s+none \(last: g5\.xlarge spot\)\s+\[#{20}\] 100%.*\s2\s+1\s+\$1\.25$/);
    expect(line('broken')).toMatch(/^broken\s+FAILED\s/);
    expect(line('waiting')).toMatch(/^waiting\s+PENDING\s/);
    expect(line('fresh')).toMatch(/^fresh\s+UNKNOWN\s/);
    expect(r.stdout).toMatch(/Spend: \$2\.50 of the \$40\.00 budget \(6%\)/);
    expect(r.stdout).toMatch(/broken: data directory s3:\/\/example-data\/two-tower\/ has no queries\.parquet/);
    expect(r.stdout).toMatch(/fresh: no status\.json yet/);
  });

  test('--watch refreshes until Ctrl-C, then exits 0', async () => {
    const stop = new AbortController();
    let stdout = '';
    const out = (t: string): void => {
      stdout += t;
      if (stdout.split(`Sweep "${SWEEP}"`).length - 1 >= 2) stop.abort(); // Ctrl-C after the second refresh
    };
    const code = await main(['status', spec, '--watch', '1'], { out, err: out, env: moto.env, signal: stop.signal });
    expect(code).toBe(0);
    expect(stdout.split(`Sweep "${SWEEP}"`).length - 1).toBe(2);
    expect(stdout).not.toMatch(/\x1b\[2J/); // not a terminal: plain blocks
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
  test('prints the leaderboard, best first, with the failed config explained', async () => {
    const r = await cli(moto.env, ['results', spec]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rows = r.stdout.split('\n').filter((l) => /^(\d|-)\s/.test(l));
    expect(rows[0]).toMatch(/^1\s+best\s+SUCCEEDED\s+0\.4500 ± 0\.0100\s+15,000/);
    expect(rows[1]).toMatch(/^2\s+second\s+SUCCEEDED\s+0\.4100/);
    expect(r.stdout).toMatch(/broken\s+FAILED.*has no queries\.parquet/);
  });

  test('--open writes report.html locally and prints its path', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'spot-sweep-report-'));
    const file = path.join(dir, 'mix.html');
    const r = await cli(moto.env, ['results', spec, '--open', file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(`Report: ${file}`);
    expect(readFileSync(file, 'utf8')).toMatch(/<title>mix<\/title>/);
  });

  test('--open without a file writes ./<sweep>-report.html; --bucket skips the stack look-up', async () => {
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
    const r = await cli(moto.env, ['results', other, '--open', path.join(os.tmpdir(), 'x.html')]);
    expect(r.code).toBe(EXIT.noReport);
    expect(r.stderr).toMatch(/report\.html does not exist yet/);
  });
});
