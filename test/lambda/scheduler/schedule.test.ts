import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { groupName, REQUESTERS, storeKeys } from '../../../lib/contract';
import { fileStore, SweepStore } from '../../../lib/store';
import { schedule, ScheduleDeps } from '../../../lambda/scheduler/schedule';
import { controlDoc, statusDoc, text } from '../../results/fixtures';

/** schedule() with its Auto Scaling and SSM sides faked and the store in a temporary directory. */
const SWEEP = 'capped';
const digest = (n: number): string => `sha256:${String(n).repeat(64).slice(0, 64)}`;

let dir: string;
let store: SweepStore;
/** Desired capacity by config; a config left out has no group yet. */
let desired: Map<string, number>;
let digests: Map<string, string>;
let startCalls: string[];

function deps(overrides: Partial<ScheduleDeps> = {}): ScheduleDeps {
  return {
    store,
    async desiredCapacities(names) {
      const out = new Map<string, number>();
      for (const [config, d] of desired) if (names.includes(groupName(SWEEP, config))) out.set(groupName(SWEEP, config), d);
      return out;
    },
    async jobDigest(config) {
      return digests.get(config);
    },
    async startGroup(name) {
      startCalls.push(name);
      const config = name.slice(groupName(SWEEP, '').length);
      desired.set(config, 1);
    },
    log: () => undefined,
    ...overrides,
  };
}
const put = (config: string, file: 'status' | 'control' | 'scheduled', doc: unknown) => store.write(storeKeys.configFile(SWEEP, config, file), text(doc));
const run = (configs: string[], maxParallel: number, d = deps()) => schedule(d, { sweep: SWEEP, configs, maxParallel });

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'schedule-'));
  store = fileStore(dir);
  desired = new Map();
  digests = new Map();
  startCalls = [];
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function fresh(...configs: string[]): string[] {
  configs.forEach((c, i) => {
    desired.set(c, 0);
    digests.set(c, digest(i + 1));
  });
  return configs;
}

test('starts only maxParallel configs, the first ones in spec order, and leaves the rest waiting', async () => {
  const configs = fresh('c', 'a', 'b', 'd');
  const r = await run(configs, 2);
  expect(r.started).toEqual(['c', 'a']);
  expect(r.waiting).toEqual(['b', 'd']);
  expect(startCalls).toEqual([groupName(SWEEP, 'c'), groupName(SWEEP, 'a')]);
});

test('a second run with every slot taken starts nothing (running configs count against the cap)', async () => {
  const configs = fresh('a', 'b', 'c');
  await run(configs, 2);
  startCalls = [];
  const r = await run(configs, 2);
  expect(r.running).toEqual(['a', 'b']);
  expect(r.started).toEqual([]);
  expect(startCalls).toEqual([]);
});

test('a SUCCEEDED config (its instance removed itself, desired 0) frees its slot for the next pending one', async () => {
  const configs = fresh('a', 'b', 'c');
  await run(configs, 2);
  await put('a', 'status', statusDoc(SWEEP, 'a', 'SUCCEEDED', { jobDigest: digests.get('a') }));
  desired.set('a', 0);
  const r = await run(configs, 2);
  expect(r.started).toEqual(['c']);
  expect(r.done).toEqual({ a: 'started for this job.json' });
});

test('configs ended by a kill path are never started again: idle alarm or max runtime (status of this digest), budget guard and spot-sweep stop (stop request)', async () => {
  const configs = fresh('idle', 'budget', 'stopped', 'next');
  await put('idle', 'status', statusDoc(SWEEP, 'idle', 'TRAINING', { jobDigest: digests.get('idle'), progress: 0.3 }));
  await put('budget', 'control', controlDoc('stop', REQUESTERS.budgetGuard, 'the budget is spent'));
  await put('stopped', 'control', controlDoc('stop', REQUESTERS.cli, 'stopped by hand'));
  const r = await run(configs, 3);
  expect(r.started).toEqual(['next']);
  expect(r.done).toEqual({ idle: 'ran this job.json', budget: 'stop requested', stopped: 'stop requested' });
});

test('a config that ran an older job.json is pending again once its digest changed', async () => {
  const configs = fresh('a', 'b');
  await put('a', 'status', statusDoc(SWEEP, 'a', 'SUCCEEDED', { jobDigest: digest(9) }));
  const r = await run(configs, 1);
  expect(r.started).toEqual(['a']);
});

test('a stop answered by a start request (cdk deploy of a new job.json) no longer blocks the config', async () => {
  const configs = fresh('a');
  await put('a', 'control', controlDoc('start', REQUESTERS.deploy, 'cdk deploy started the job'));
  expect((await run(configs, 1)).started).toEqual(['a']);
});

test('a start request newer than a STOPPED or FAILED status.json (spot-sweep start with a cap) makes the config pending; an older one or a SUCCEEDED job does not', async () => {
  const configs = fresh('again', 'old', 'won');
  const ended = '2026-03-01T10:00:00Z';
  for (const [c, state] of [['again', 'STOPPED'], ['old', 'FAILED'], ['won', 'SUCCEEDED']] as const) {
    await put(c, 'status', statusDoc(SWEEP, c, state, { jobDigest: digests.get(c), updatedAt: ended }));
  }
  await put('again', 'control', controlDoc('start', REQUESTERS.cliStart, 'again', '2026-03-01T11:00:00Z'));
  await put('old', 'control', controlDoc('start', REQUESTERS.cliStart, 'before it failed', '2026-03-01T09:00:00Z'));
  await put('won', 'control', controlDoc('start', REQUESTERS.cliStart, 'again', '2026-03-01T11:00:00Z'));
  const r = await run(configs, 3);
  expect(r.started).toEqual(['again']);
  expect(r.done).toEqual({ old: 'ran this job.json', won: 'ran this job.json' });
});

test('a job that ended before its runner wrote status.json (code download failed, idle alarm) is not started again on the next tick', async () => {
  const configs = fresh('broken', 'next');
  expect((await run(configs, 1)).started).toEqual(['broken']);
  const record = JSON.parse((await store.read(storeKeys.configFile(SWEEP, 'broken', 'scheduled')))!);
  expect(record).toMatchObject({ version: 1, jobDigest: digests.get('broken'), startRequestId: null });
  // No status.json at all: the instance never got as far as the job runner; the idle alarm set desired 0.
  desired.set('broken', 0);
  const r = await run(configs, 1);
  expect(r.started).toEqual(['next']);
  expect(r.done).toEqual({ broken: 'started for this job.json' });
  desired.set('next', 0);
  expect((await run(configs, 1)).started).toEqual([]);
});

test('a start request starts an already-started config once, by its id whatever the clocks say', async () => {
  const configs = fresh('a');
  await run(configs, 1);
  desired.set('a', 0);
  await put('a', 'status', statusDoc(SWEEP, 'a', 'STOPPED', { jobDigest: digests.get('a'), updatedAt: '2026-03-01T12:00:00Z' }));
  // spot-sweep start from a laptop whose clock is an hour behind the instance's: older by time, new by id.
  await put('a', 'control', controlDoc('start', REQUESTERS.cliStart, 'again', '2026-03-01T11:00:00Z'));
  expect((await run(configs, 1)).started).toEqual(['a']);
  const { id } = JSON.parse((await store.read(storeKeys.configFile(SWEEP, 'a', 'control')))!);
  expect(JSON.parse((await store.read(storeKeys.configFile(SWEEP, 'a', 'scheduled')))!).startRequestId).toBe(id);
  desired.set('a', 0);
  // Answered: the same request does not start it a second time.
  const again = await run(configs, 1);
  expect(again.started).toEqual([]);
  expect(again.done).toEqual({ a: 'started for this job.json' });
});

test('a record of another job digest does not count: a changed job.json is pending again', async () => {
  const configs = fresh('a');
  await put('a', 'scheduled', { version: 1, jobDigest: digest(9), startRequestId: null, at: '2026-03-01T10:00:00Z' });
  expect((await run(configs, 1)).started).toEqual(['a']);
});

test('a group or a job parameter that does not exist yet (mid-deploy) is skipped, not counted', async () => {
  const configs = fresh('a', 'b');
  digests.delete('a');
  const r = await run([...configs, 'later'], 2);
  expect(r.started).toEqual(['b']);
  expect(r.done).toEqual({ a: 'no job.json yet', later: 'no group yet' });
});

test('two runs that read the same state start the same configs: the cap holds', async () => {
  const configs = fresh('a', 'b', 'c', 'd');
  desired.set('d', 1);
  // Both read before either writes.
  const snapshot = new Map(desired);
  const stale = deps({ desiredCapacities: async () => new Map([...snapshot].map(([c, n]) => [groupName(SWEEP, c), n])) });
  const [x, y] = await Promise.all([run(configs, 2, stale), run(configs, 2, stale)]);
  expect(x.started).toEqual(['a']);
  expect(y.started).toEqual(['a']);
  expect([...desired].filter(([, n]) => n >= 1).map(([c]) => c).sort()).toEqual(['a', 'd']);
});

test('fails when Auto Scaling refuses, naming the group and what to do', async () => {
  const configs = fresh('a');
  const refusing = deps({ startGroup: async () => Promise.reject(new Error('AccessDenied')) });
  await expect(run(configs, 1, refusing)).rejects.toThrow(`Could not start ${groupName(SWEEP, 'a')} (UpdateAutoScalingGroup to min 0, max 1, desired 1): AccessDenied. The scheduler runs again within a minute; run spot-sweep start to start it yourself.`);
});

test('fails when maxParallel is not a whole number >= 1, naming the variable and the fix', async () => {
  await expect(run(fresh('a'), 0)).rejects.toThrow(/MAX_PARALLEL is 0; .*deploy the sweep stack again/);
});
