import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { allOptions } from '../../lib/cli/args';
import { painter, wantsColour } from '../../lib/cli/io';
import { COMMANDS, EXIT, main } from '../../lib/cli/main';
import { hasAwsCredentials } from '../../lib/cli/spot-prices';

const ROOT = path.join(__dirname, '..', '..');
const fixture = (name: string): string => path.join('test', 'fixtures', name);
const VERSION = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** An environment without AWS credentials, so no test ever calls AWS. */
function offlineEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: mkdtempSync(path.join(os.tmpdir(), 'spot-sweep-home-')) };
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

const noStackTrace = (text: string): void => expect(text).not.toMatch(/\n\s+at /);

describe('spot-sweep CLI (spawned)', () => {
  test('plan prints every config of the seed plan with runtime, spot and on-demand cost, and the total', () => {
    const r = spotSweep('plan', 'sweeps/seed-plan.json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Sweep "seed-plan" \(sweeps\/seed-plan\.json, stack SpotSweep-seed-plan\): 5 configs, budget \$100\.00/);
    expect(r.stdout).toMatch(/no AWS credentials found, so no live spot lookup/);
    expect(r.stdout).toMatch(/^o\s+876,000\s+spot\s+g5\.2xlarge\s+1x A10G\s+[\d.]+ (h|min)\s+\$[\d.]+\s+\$[\d.]+$/m);
    expect(r.stdout).toMatch(/^r\s+5,000,000\s+spot\s+g6e\.12xlarge\s+4x L40S/m);
    expect(r.stdout).toMatch(/^full\s+16,000,000\s+spot-then-on-demand\s+p4d\.24xlarge\s+8x A100/m);
    expect(r.stdout).toMatch(/^Total: \$[\d.]+ of the \$100\.00 budget/m);
  });

  test('fails when the spec has several mistakes: lists them all, exit 1, no stack trace', () => {
    const r = spotSweep('plan', fixture('broken-many.json'));
    expect(r.code).toBe(EXIT.specError);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/broken-many\.json: 14 problems:/);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('  - '))).toHaveLength(14);
    noStackTrace(r.stderr);
  });

  test('--help lists the commands and the exit codes', () => {
    const r = spotSweep('--help');
    expect(r.code).toBe(0);
    for (const verb of ['plan', 'local', 'status', 'logs', 'results', 'stop']) expect(r.stdout).toMatch(new RegExp(`^  ${verb}\\s+\\S`, 'm'));
    expect(r.stdout).toMatch(/^ {3}3 {2}plan: the estimate exceeds budgetUsd$/m);
    expect(r.stdout).toMatch(/spot-sweep <command> --help/);
  });

  test("--version prints package.json's version", () => {
    const r = spotSweep('--version');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`spot-sweep ${VERSION}\n`);
  });
});

describe('per-verb --help', () => {
  test.each(COMMANDS.map((c) => [c.name, c] as const))('%s --help prints its usage, every option and its exit codes, not the global help', async (verb, command) => {
    const r = await run(verb, '--help');
    expect(r.code).toBe(EXIT.ok);
    expect(r.stderr).toBe('');
    expect(r.stdout.startsWith(`Usage: spot-sweep ${verb} `)).toBe(true);
    expect(r.stdout).not.toMatch(/^Commands:/m);
    for (const name of Object.keys(allOptions(command))) expect(r.stdout).toMatch(new RegExp(`^  (-\\w, )?--${name}\\b`, 'm'));
    const codes = r.stdout.slice(r.stdout.indexOf('Exit codes:'));
    expect(codes).toMatch(/^ {2}0 {2}\S/m);
    expect(codes).toMatch(/^ {2}2 {2}wrong command line$/m);
    // `-h` and `help <verb>` say the same.
    expect((await run(verb, '-h')).stdout).toBe(r.stdout);
    expect((await run('help', verb)).stdout).toBe(r.stdout);
  });

  test('the help shows defaults and the verb-specific exit codes', async () => {
    const stop = (await run('stop', '--help')).stdout;
    expect(stop).toMatch(/^ {2}--wait SECONDS\s+.*\(default: 150\)$/m);
    expect(stop).toMatch(/^ {2}--reason TEXT\s+.*\(default: stopped with spot-sweep stop\)$/m);
    expect(stop).toMatch(/^ {2}5 {2}AWS: .*a group left running$/m);
    const status = (await run('status', '--help')).stdout;
    expect(status).toMatch(/^Usage: spot-sweep status <spec\.json> \[--watch\] \[--interval SECONDS\] \[--json\] \[--region REGION\] \[--bucket NAME\]$/m);
    expect(status).toMatch(/^ {2}--interval SECONDS\s+.*\(default: 30\)$/m);
    expect((await run('plan', '--help')).stdout).toMatch(/^ {2}3 {2}plan: the estimate exceeds budgetUsd$/m);
    expect((await run('local', '--help')).stdout).toMatch(/^ {2}--config NAME\s+.*\(repeatable\)$/m);
  });
});

describe('spot-sweep CLI (in process)', () => {
  test('fails when the estimate exceeds the budget, with the numbers, exit 3', async () => {
    const r = await run('plan', fixture('over-budget.json'));
    expect(r.code).toBe(EXIT.overBudget);
    expect(r.stdout).toMatch(/Over budget: the estimate \$[\d.]+ exceeds budgetUsd \$1\.00 by \$[\d.]+\./);
  });

  test('plan notes the configs that retry after a failure, and plan --json carries their retries', async () => {
    const r = await run('plan', fixture('retries.json'), '--offline');
    expect(r.code).toBe(EXIT.ok);
    expect(r.stdout).toMatch(/^Retries after a failure: a up to 2x \(exit codes 1, 137\); b up to 1x \(any failing exit code\)\. Each may cost up to one more run, not in the estimate\.$/m);
    expect(r.stdout).not.toMatch(/\bc up to/);
    expect((await run('plan', 'sweeps/demo.json', '--offline')).stdout).not.toMatch(/Retries/);
    const doc = JSON.parse((await run('plan', fixture('retries.json'), '--offline', '--json')).stdout);
    expect(doc.configs.map((c: { retries: unknown }) => c.retries)).toEqual([
      { max: 2, onExitCodes: [1, 137] },
      { max: 1, onExitCodes: [] },
      { max: 0, onExitCodes: [1, 137] },
    ]);
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

  test('fails when the command line is wrong: one sentence and the usage line, exit 2, no stack trace', async () => {
    const none = await run();
    expect(none.code).toBe(EXIT.usage);
    expect(none.stderr).toMatch(/^Commands:/m);
    const deploy = await run('deploy');
    expect(deploy.code).toBe(EXIT.usage);
    expect(deploy.stderr).toBe('spot-sweep: unknown command "deploy"; the commands are plan, doctor, canary, local, status, logs, results, stop, start, data import, data push; run spot-sweep --help.\n');
    const cases: [string[], RegExp][] = [
      [['plan'], /^spot-sweep plan: no spec\.json given \(the sweep spec, e\.g\. sweeps\/demo\.json\)\.$/m],
      [['plan', 'a.json', '--fast'], /^spot-sweep plan: unknown option "--fast"; the options are --offline, --json, --help\.$/m],
      [['plan', 'a.json', 'b.json'], /^spot-sweep plan: unexpected argument "b\.json"; plan takes spec\.json\.$/m],
      [['plan', 'a.json', '--offline=yes'], /^spot-sweep plan: --offline takes no value \(got "yes"\)\.$/m],
      [['stop', 'a.json', '--wait', 'soon'], /^spot-sweep stop: --wait soon: give a number of seconds of at least 0\.$/m],
      [['stop', 'a.json', '--wait', '--reason', 'x'], /^spot-sweep stop: --wait needs a value SECONDS\.$/m],
      [['status', 'a.json', '--bucket'], /^spot-sweep status: --bucket needs a value NAME\.$/m],
      [['status', 'a.json', '--interval', '0'], /^spot-sweep status: --interval 0: give a number of seconds of at least 1\.$/m],
    ];
    for (const [args, message] of cases) {
      const r = await run(...args);
      expect([args, r.code]).toEqual([args, EXIT.usage]);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toMatch(new RegExp(`\\nUsage: spot-sweep ${args[0]} <spec\\.json>.*\\n$`));
      expect(r.stdout).toBe('');
      noStackTrace(r.stderr);
    }
  });

  test('fails when a verb or an option is misspelt, suggesting the closest one', async () => {
    const verb = await run('stauts', 'sweeps/demo.json');
    expect(verb.code).toBe(EXIT.usage);
    expect(verb.stderr).toMatch(/^spot-sweep: unknown command "stauts"; did you mean "status"\?/);
    const option = await run('status', 'sweeps/demo.json', '--wach');
    expect(option.code).toBe(EXIT.usage);
    expect(option.stderr).toMatch(/^spot-sweep status: unknown option "--wach"; did you mean "--watch"\?\nUsage: spot-sweep status /);
    expect((await run('plan', 'sweeps/demo.json', '--ofline')).stderr).toMatch(/unknown option "--ofline"; did you mean "--offline"\?/);
    expect((await run('--verison')).stderr).toMatch(/unknown option "--verison"/);
  });

  test('--offline skips the live spot lookup and says so', async () => {
    const r = await run('plan', 'sweeps/demo.json', '--offline');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/--offline given, so no live spot lookup/);
  });

  test('plan --json prints one JSON document: the estimate per config and in total, the budget and overBudget', async () => {
    const r = await run('plan', 'sweeps/seed-plan.json', '--offline', '--json');
    expect(r.code).toBe(EXIT.ok);
    expect(r.stderr).toBe('');
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ sweep: 'seed-plan', stack: 'SpotSweep-seed-plan', budgetUsd: 100, overBudget: false });
    expect(doc.configs.map((c: { config: string }) => c.config)).toEqual(['o', 'p', 'q', 'r', 'full']);
    const o = doc.configs[0];
    expect(o).toMatchObject({ config: 'o', market: 'spot', examples: 876000, gpus: 1 });
    expect(o.instances[0]).toMatchObject({ instanceType: 'g5.2xlarge', gpuModel: 'A10G', spotPriceLive: false });
    expect(o.estimateUsd).toBeGreaterThan(0);
    const sum = doc.configs.reduce((a: number, c: { estimateUsd: number | null }) => a + (c.estimateUsd ?? 0), 0);
    expect(doc.totalUsd).toBeCloseTo(sum, 6);
    expect(r.stdout).not.toMatch(/\x1b\[/);
  });

  test('plan with maxParallel: the wall time is the spec-order makespan of at most maxParallel configs at once', async () => {
    const capped = await run('plan', fixture('max-parallel.json'), '--offline', '--json');
    expect(capped.code).toBe(EXIT.ok);
    const doc = JSON.parse(capped.stdout);
    expect(doc.maxParallel).toBe(2);
    const [a, b, c, d] = doc.configs.map((x: { runtimeHours: number }) => x.runtimeHours);
    // a and b start; c takes b's slot; d takes the slot that frees first.
    const slots = [a, b + c];
    slots[slots[0] <= slots[1] ? 0 : 1] += d;
    expect(doc.wallHours).toBeCloseTo(Math.max(...slots), 9);
    expect(doc.wallHours).toBeGreaterThan(Math.max(a, b, c, d));
    const text = await run('plan', fixture('max-parallel.json'), '--offline');
    expect(text.stdout).toMatch(/^Wall time: [\d.]+ (h|min) \(maxParallel 2: at most 2 of the 4 configs at once, the next in spec order starting as one ends\)\.$/m);
    // Without the cap: the same total, the longest config.
    const seed = JSON.parse((await run('plan', 'sweeps/seed-plan.json', '--offline', '--json')).stdout);
    expect(seed.maxParallel).toBeNull();
    expect(seed.wallHours).toBeCloseTo(Math.max(...seed.configs.map((x: { runtimeHours: number }) => x.runtimeHours)), 9);
    expect((await run('plan', 'sweeps/seed-plan.json', '--offline')).stdout).toMatch(/^Wall time: [\d.]+ (h|min) \(every config at once: the longest config\)\.$/m);
  });

  test('fails when the estimate exceeds the budget: plan --json still prints the document, overBudget true, exit 3', async () => {
    const r = await run('plan', fixture('over-budget.json'), '--offline', '--json');
    expect(r.code).toBe(EXIT.overBudget);
    const doc = JSON.parse(r.stdout);
    expect(doc.overBudget).toBe(true);
    expect(doc.totalUsd).toBeGreaterThan(doc.budgetUsd);
  });

  test('detects credentials from the environment and shared files only', () => {
    expect(hasAwsCredentials(offlineEnv())).toBe(false);
    expect(hasAwsCredentials({ ...offlineEnv(), AWS_ACCESS_KEY_ID: 'AKIA', AWS_SECRET_ACCESS_KEY: 's' })).toBe(true);
    expect(hasAwsCredentials({ ...offlineEnv(), AWS_PROFILE: 'dev' })).toBe(true);
  });
});

describe('colour', () => {
  test('only on a terminal with NO_COLOR unset or empty, and never in --json', () => {
    expect(wantsColour({ isTTY: true, env: {} })).toBe(true);
    expect(wantsColour({ isTTY: true, env: { NO_COLOR: '' } })).toBe(true);
    expect(wantsColour({ isTTY: true, env: { NO_COLOR: '1' } })).toBe(false);
    expect(wantsColour({ isTTY: false, env: {} })).toBe(false);
    expect(wantsColour({ env: {} })).toBe(false);
    expect(wantsColour({ isTTY: true, env: {} }, true)).toBe(false);
    expect(painter(true)('x', 'green')).toBe('\x1b[32mx\x1b[0m');
    expect(painter(false)('x', 'green')).toBe('x');
  });
});
