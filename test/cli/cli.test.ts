import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EXIT, main } from '../../lib/cli/main';
import { hasAwsCredentials } from '../../lib/cli/spot-prices';

const ROOT = path.join(__dirname, '..', '..');
const fixture = (name: string): string => path.join('test', 'fixtures', name);

/** An environment without AWS credentials, so no test ever calls AWS. */
function offlineEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: mkdtempSync(path.join(os.tmpdir(), 'spot-sweep-home-')) };
  return env;
}

/** Runs the real command the way a user does (bin/spot-sweep.js through node). */
function spotSweep(...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'spot-sweep.js'), ...args], { cwd: ROOT, env: offlineEnv(), encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs main() in this process, which is much faster than spawning. */
async function run(...args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { out: (t) => (stdout += t), err: (t) => (stderr += t), env: offlineEnv() });
  return { code, stdout, stderr };
}

describe('spot-sweep CLI (spawned)', () => {
  test('plan prints every config of the seed plan with runtime, spot and on-demand cost, and the total', () => {
    const r = spotSweep('plan', 'sweeps/seed-plan.json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Sweep "seed-plan" \(sweeps\/seed-plan\.json, stack SpotSweep-seed-plan\): 5 configs, budget \$100\.00/);
    expect(r.stdout).toMatch(/no AWS credentials found, so no live spot lookup/);
    expect(r.stdout).toMatch(/^o\s+876,000\s+spot\s+p3\.2xlarge\s+1x V100\s+[\d.]+ (h|min)\s+\$[\d.]+\s+\$[\d.]+$/m);
    expect(r.stdout).toMatch(/^r\s+5,000,000\s+spot\s+p3\.8xlarge\s+4x V100/m);
    expect(r.stdout).toMatch(/^full\s+16,000,000\s+spot-then-on-demand\s+p4d\.24xlarge\s+8x A100/m);
    expect(r.stdout).toMatch(/^Total: \$[\d.]+ of the \$100\.00 budget/m);
  });

  test('fails when the spec has several mistakes: lists them all, exit 1, no stack trace', () => {
    const r = spotSweep('plan', fixture('broken-many.json'));
    expect(r.code).toBe(EXIT.specError);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/broken-many\.json: 13 problems:/);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('  - '))).toHaveLength(13);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test('--help explains the commands and exit codes', () => {
    const r = spotSweep('--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/spot-sweep plan <spec\.json>/);
    expect(r.stdout).toMatch(/3 {2}the estimate exceeds budgetUsd/);
  });
});

describe('spot-sweep CLI (in process)', () => {
  test('fails when the estimate exceeds the budget, with the numbers, exit 3', async () => {
    const r = await run('plan', fixture('over-budget.json'));
    expect(r.code).toBe(EXIT.overBudget);
    expect(r.stdout).toMatch(/Over budget: the estimate \$[\d.]+ exceeds budgetUsd \$1\.00 by \$[\d.]+\./);
  });

  test('fails when the spec file is missing', async () => {
    const r = await run('plan', 'sweeps/missing.json');
    expect(r.code).toBe(EXIT.specError);
    expect(r.stderr).toMatch(/cannot read the sweep spec \(no such file/);
  });

  test('fails when the spec is not valid JSON, naming line and column', async () => {
    const r = await run('plan', fixture('syntax-error.json'));
    expect(r.code).toBe(EXIT.specError);
    expect(r.stderr).toMatch(/syntax-error\.json:5:20/);
  });

  test('fails when the command line is wrong', async () => {
    expect((await run()).code).toBe(EXIT.usage);
    expect((await run('deploy')).stderr).toMatch(/unknown command "deploy"/);
    expect((await run('plan')).stderr).toMatch(/no spec file given/);
    expect((await run('plan', 'a.json', '--fast')).stderr).toMatch(/unknown option "--fast"/);
  });

  test('--offline skips the live spot lookup and says so', async () => {
    const r = await run('plan', 'sweeps/demo.json', '--offline');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/--offline given, so no live spot lookup/);
  });

  test('detects credentials from the environment and shared files only', () => {
    expect(hasAwsCredentials(offlineEnv())).toBe(false);
    expect(hasAwsCredentials({ ...offlineEnv(), AWS_ACCESS_KEY_ID: 'AKIA', AWS_SECRET_ACCESS_KEY: 's' })).toBe(true);
    expect(hasAwsCredentials({ ...offlineEnv(), AWS_PROFILE: 'dev' })).toBe(true);
  });
});
