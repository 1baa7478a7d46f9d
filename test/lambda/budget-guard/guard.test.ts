import { contractProblems, REQUESTERS, storeKeys } from '../../../lib/contract';
import { readControl, requestControl } from '../../../lib/store';
import { budgetStopReason, decideStop } from '../../../lambda/budget-guard/budget-stop';
import { GuardSettings, runGuard } from '../../../lambda/budget-guard/guard';
import { ObservedInstance } from '../../../lambda/budget-guard/ledger';
import { FakeAws } from './fake-deps';

const at = (hhmm: string, seconds = 0): Date => new Date(Date.parse(`2026-11-28T${hhmm}:00Z`) + seconds * 1000);
const ms = (hhmm: string): number => at(hhmm).getTime();
const GRACE = 180;

const settings = (budgetUsd: number): GuardSettings => ({
  sweep: 'demo',
  budgetUsd,
  spotFailuresBeforeOnDemand: 2,
  stopGraceSeconds: GRACE,
  groups: [
    { config: 'a', groupName: 'SpotSweep-demo-a', market: 'spot' },
    { config: 'b', groupName: 'SpotSweep-demo-b', market: 'on-demand' },
    { config: 'c', groupName: 'SpotSweep-demo-c', market: 'spot-then-on-demand' },
  ],
});
const spendKey = storeKeys.sweepFile('demo', 'spend');
const statusKey = (config: string) => storeKeys.configFile('demo', config, 'status');
const controlKey = (config: string) => storeKeys.configFile('demo', config, 'control');

/** A spot g5.xlarge of config a launched at 10:00, still running. */
const spotA: ObservedInstance = {
  instanceId: 'i-spot-a',
  config: 'a',
  instanceType: 'g5.xlarge',
  market: 'spot',
  availabilityZone: 'us-east-1a',
  launchTime: at('10:00').toISOString(),
  state: 'running',
};
/** An on-demand g4dn.xlarge ($0.526/h in the table) of config b, 11:00 to 11:30. */
const onDemandB: ObservedInstance = {
  instanceId: 'i-od-b',
  config: 'b',
  instanceType: 'g4dn.xlarge',
  market: 'on-demand',
  availabilityZone: 'us-east-1b',
  launchTime: at('11:00').toISOString(),
  state: 'terminated',
  stateTransitionReason: 'User initiated (2026-11-28 11:30:00 GMT)',
};

function fake(): FakeAws {
  const aws = new FakeAws();
  // 0.50 $/h in effect since 09:00, 0.75 from 11:00, 0.25 from 12:00.
  aws.prices.set('g5.xlarge us-east-1a', [
    { atMs: ms('09:00'), usdPerHour: 0.5 },
    { atMs: ms('11:00'), usdPerHour: 0.75 },
    { atMs: ms('12:00'), usdPerHour: 0.25 },
  ]);
  aws.instances = [spotA, onDemandB];
  return aws;
}

/** spend.json as the guard wrote it, checked against training/contract/spend.schema.json. */
async function storedLedger(aws: FakeAws): Promise<Record<string, unknown>> {
  const ledger = await aws.json(spendKey);
  expect(contractProblems('spend', ledger)).toEqual([]);
  return ledger;
}

describe('budget guard: spend', () => {
  test('prices spot from the price history and on-demand from the table, per config and in total', async () => {
    const aws = fake();
    const { ledger, errors } = await runGuard(aws, settings(100), at('12:30'));
    // a: 1 h x 0.50 + 1 h x 0.75 + 0.5 h x 0.25 = 1.375; b: 0.5 h x 0.526 = 0.263.
    expect(ledger.instances['i-spot-a']).toMatchObject({ usd: 1.375, hours: 2.5, priceSource: 'spot price history', final: false });
    expect(ledger.instances['i-od-b']).toMatchObject({ usd: 0.263, hours: 0.5, priceSource: 'on-demand price table', endedAt: at('11:30').toISOString(), final: true });
    expect(ledger.configs.a).toMatchObject({ usd: 1.375, instanceHours: 2.5, instances: 1 });
    expect(ledger.configs.b).toMatchObject({ usd: 0.263, instanceHours: 0.5 });
    expect(ledger.configs.c).toMatchObject({ usd: 0, instanceHours: 0, instances: 0 });
    expect(ledger.totalUsd).toBe(1.638);
    expect(aws.metrics).toEqual([{ sweep: 'demo', totalUsd: 1.638, hours: { a: 2.5, b: 0.5, c: 0 } }]);
    expect(ledger.notes.join(' ')).toMatch(/on-demand price table in lib\/cost\/instances\.ts/);
    expect(await storedLedger(aws)).toMatchObject({ version: 1, sweep: 'demo', budgetUsd: 100, totalUsd: 1.638 });
    expect(errors).toEqual([]);
  });

  test('the ledger keeps an instance after EC2 forgets it, and a vanished running one ends when last seen', async () => {
    const aws = fake();
    await runGuard(aws, settings(100), at('12:30'));
    aws.instances = [spotA];
    const later = await runGuard(aws, settings(100), at('13:30'));
    expect(later.ledger.instances['i-od-b']).toMatchObject({ usd: 0.263, state: 'terminated' });
    // a ran on to 13:30: 1.375 + 1 h x 0.25.
    expect(later.ledger.configs.a.usd).toBe(1.625);
    expect(later.ledger.totalUsd).toBe(1.888);

    aws.instances = [];
    const gone = await runGuard(aws, settings(100), at('16:00'));
    expect(gone.ledger.instances['i-spot-a']).toMatchObject({ endedAt: at('13:30').toISOString(), endSource: 'last seen running', usd: 1.625, final: true });
    expect(gone.ledger.totalUsd).toBe(1.888);
    await storedLedger(aws);
  });

  test('a spot instance without price history is priced at the on-demand price, and the ledger says so', async () => {
    const aws = fake();
    aws.prices.clear();
    const { ledger } = await runGuard(aws, settings(100), at('12:30'));
    expect(ledger.instances['i-spot-a']).toMatchObject({ priceSource: 'on-demand price table (no spot price history)', usd: 2.515 });
  });

  test('starts a new ledger, with a note, when spend.json is unreadable', async () => {
    const aws = fake();
    await aws.put(spendKey, '{"version": 1, "instances": ');
    const { ledger } = await runGuard(aws, settings(100), at('12:30'));
    expect(ledger.totalUsd).toBe(1.638);
    expect(ledger.notes.join(' ')).toMatch(/previous spend\.json was unreadable \(not valid JSON/);
    await storedLedger(aws);
  });

  test('spend.json fits spend.schema.json in every case: over budget, an on-demand switch, an unpriced type, an untagged instance', async () => {
    const aws = fake();
    aws.instances = [
      spotA,
      onDemandB,
      { ...spotA, instanceId: 'i-c1', config: 'c', state: 'terminated', stateReasonCode: 'Server.SpotInstanceTermination', stateTransitionReason: 'Service initiated (2026-11-28 10:30:00 GMT)' },
      { ...onDemandB, instanceId: 'i-odd', instanceType: 'x9.huge', config: '(untagged)', state: 'stopped', stateTransitionReason: undefined },
    ];
    aws.launchFailures.set('SpotSweep-demo-c', 1);
    await aws.put(statusKey('a'), { state: 'TRAINING' });
    const first = await runGuard(aws, settings(1), at('12:30'));
    expect(first.switchedToOnDemand).toEqual(['SpotSweep-demo-c']);
    expect(first.errors).toEqual([]);
    const ledger = await storedLedger(aws);
    expect(ledger.stoppedForBudget).toEqual({ at: at('12:30').toISOString(), totalUsd: first.ledger.totalUsd });
    expect((ledger.configs as Record<string, object>).c).toMatchObject({ onDemandSince: at('12:30').toISOString(), spotLaunchFailures: 1, interruptions: 1 });
    expect(ledger.notes).toContainEqual(expect.stringMatching(/x9\.huge has no price/));
    // And again from the ledger it wrote.
    await runGuard(aws, settings(1), at('12:35'));
    await storedLedger(aws);
  });
});

describe('budget guard: the budget stop', () => {
  test('does nothing while the spend is below the budget, even by a tenth of a cent', async () => {
    const aws = fake();
    aws.instances = [spotA];
    await aws.put(statusKey('a'), { state: 'TRAINING' });
    const r = await runGuard(aws, settings(1.376), at('12:30'));
    expect([r.stopRequested, r.scaledToZero, r.waitingForStop, aws.scaled]).toEqual([[], [], [], []]);
    expect(r.ledger.stoppedForBudget).toBeUndefined();
    expect(await aws.store.read(controlKey('a'))).toBeUndefined();
  });

  test('at the budget: asks a TRAINING job to stop and waits; scales a finished config and one that never started at once', async () => {
    const aws = fake();
    aws.instances = [spotA];
    await aws.put(statusKey('a'), { state: 'TRAINING', fold: 3, progress: 0.4 });
    await aws.put(statusKey('b'), { state: 'SUCCEEDED', progress: 1 });
    const statusBefore = await aws.store.readObject(statusKey('a'));
    const r = await runGuard(aws, settings(1.375), at('12:30'));

    expect(r.stopRequested).toEqual(['a', 'c']);
    expect(r.scaledToZero).toEqual(['SpotSweep-demo-b', 'SpotSweep-demo-c']);
    expect(r.waitingForStop).toEqual(['SpotSweep-demo-a']);
    expect(aws.scaled).toEqual(['SpotSweep-demo-b', 'SpotSweep-demo-c']);
    const { control, problem } = await readControl(aws.store, 'demo', 'a');
    expect(problem).toBeUndefined();
    expect(control).toMatchObject({ version: 1, action: 'stop', by: REQUESTERS.budgetGuard, at: at('12:30').toISOString() });
    expect(control!.reason).toBe('Stopped by the sweep budget: the sweep has spent $1.38 of its budgetUsd $1.38.');
    expect(control!.reason).toBe(budgetStopReason(1.375, 1.375));
    // A finished config is not asked; status.json stays the job runner's alone.
    expect(await aws.store.read(controlKey('b'))).toBeUndefined();
    expect(await aws.store.readObject(statusKey('a'))).toEqual(statusBefore);
    expect(await aws.store.read(statusKey('c'))).toBeUndefined();
    expect(r.ledger.stoppedForBudget).toEqual({ at: at('12:30').toISOString(), totalUsd: 1.375 });
    expect(r.errors).toEqual([]);
  });

  test('scales the stopping job\'s group once the grace period has passed, not before, and keeps every group at zero after', async () => {
    const aws = fake();
    await aws.put(statusKey('a'), { state: 'TRAINING' });
    await runGuard(aws, settings(1), at('12:30'));
    const request = (await readControl(aws.store, 'demo', 'a')).control!;

    const early = await runGuard(aws, settings(1), at('12:30', GRACE - 1));
    expect(early.waitingForStop).toEqual(['SpotSweep-demo-a']);
    expect(early.stopRequested).toEqual([]);
    expect((await readControl(aws.store, 'demo', 'a')).control!.id).toBe(request.id);

    const late = await runGuard(aws, settings(1), at('12:30', GRACE));
    expect(late.scaledToZero).toEqual(['SpotSweep-demo-a', 'SpotSweep-demo-b', 'SpotSweep-demo-c']);
    // Idempotent: every later run while over budget scales every group again (undoes a manual scale-up).
    const again = await runGuard(aws, settings(1), at('12:40'));
    expect(again.scaledToZero).toEqual(['SpotSweep-demo-a', 'SpotSweep-demo-b', 'SpotSweep-demo-c']);
    expect(aws.scaled.filter((g) => g === 'SpotSweep-demo-a')).toHaveLength(2);
    expect((await aws.json(spendKey)).stoppedForBudget).toEqual({ at: at('12:30').toISOString(), totalUsd: 1.638 });
  });

  test('a job that obeyed (STOPPED) is scaled on the next run, within the grace period', async () => {
    const aws = fake();
    await aws.put(statusKey('a'), { state: 'TRAINING' });
    await runGuard(aws, settings(1), at('12:30'));
    await aws.put(statusKey('a'), { state: 'STOPPED', stoppedBy: REQUESTERS.budgetGuard });
    const r = await runGuard(aws, settings(1), at('12:31'));
    expect(r.scaledToZero).toContain('SpotSweep-demo-a');
    expect(r.stopRequested).toEqual([]);
  });

  test('a stop already requested by someone else is not repeated; its own age counts', async () => {
    const aws = fake();
    await aws.put(statusKey('a'), { state: 'BOOTSTRAPPING' });
    await requestControl(aws.store, 'demo', 'a', { action: 'stop', by: REQUESTERS.cli, reason: 'Stopped by hand.' }, at('12:00'));
    const r = await runGuard(aws, settings(1), at('12:30'));
    expect(r.stopRequested).not.toContain('a');
    expect(r.scaledToZero).toContain('SpotSweep-demo-a');
    expect((await readControl(aws.store, 'demo', 'a')).control).toMatchObject({ by: REQUESTERS.cli, reason: 'Stopped by hand.' });
  });

  test('a start request, or an unreadable control.json, is replaced by the stop request', async () => {
    const aws = fake();
    await aws.put(statusKey('a'), { state: 'TRAINING' });
    await aws.put(statusKey('b'), { state: 'TRAINING' });
    await requestControl(aws.store, 'demo', 'a', { action: 'start', by: REQUESTERS.cliStart, reason: 'Started again.' }, at('12:00'));
    await aws.put(controlKey('b'), '{"action": "st');
    const r = await runGuard(aws, settings(1), at('12:30'));
    expect(r.stopRequested).toEqual(['a', 'b', 'c']);
    for (const config of ['a', 'b']) expect((await readControl(aws.store, 'demo', config)).control).toMatchObject({ action: 'stop', by: REQUESTERS.budgetGuard });
  });

  test('a malformed status.json counts as a job that may be running: asked to stop, then scaled after the grace period', async () => {
    const aws = fake();
    await aws.put(statusKey('a'), '{"state": "TRAIN');
    const r = await runGuard(aws, settings(1), at('12:30'));
    expect(r.stopRequested).toContain('a');
    expect(r.waitingForStop).toEqual(['SpotSweep-demo-a']);
    expect(await aws.store.read(statusKey('a'))).toBe('{"state": "TRAIN');
    expect((await runGuard(aws, settings(1), at('12:35'))).scaledToZero).toContain('SpotSweep-demo-a');
  });

  test('a group that cannot be scaled is reported, after every other group is scaled and spend.json written', async () => {
    const aws = fake();
    aws.failScaling.add('SpotSweep-demo-b');
    const r = await runGuard(aws, settings(1), at('12:30'));
    expect(r.scaledToZero).toEqual(['SpotSweep-demo-a', 'SpotSweep-demo-c']);
    expect(r.errors).toEqual([expect.stringMatching(/^SpotSweep-demo-b: scaling to zero failed \(AccessDenied\)$/)]);
    await storedLedger(aws);
  });

  test('a budget raised above the spend (a redeploy) stops nothing, though the ledger remembers the first time', async () => {
    const aws = fake();
    await runGuard(aws, settings(1), at('12:30'));
    aws.scaled = [];
    const r = await runGuard(aws, settings(50), at('12:35'));
    expect([r.stopRequested, r.scaledToZero, aws.scaled]).toEqual([[], [], []]);
    expect(r.ledger.stoppedForBudget).toEqual({ at: at('12:30').toISOString(), totalUsd: 1.638 });
  });
});

describe('budget stop: the decision for one config', () => {
  const now = ms('12:30');
  const stop = (secondsAgo: number) => ({ version: 1 as const, action: 'stop' as const, by: 'x', reason: 'y', id: 'z', at: new Date(now - secondsAgo * 1000).toISOString() });
  test.each([
    ['final: scaled, not asked', { state: 'FAILED' }, { requestStop: false, scale: true }],
    ['no status.json: asked and scaled', {}, { requestStop: true, scale: true }],
    ['no status.json, already asked: scaled', { control: stop(1) }, { requestStop: false, scale: true }],
    ['running, not asked: asked, waits', { state: 'TRAINING' }, { requestStop: true, scale: false }],
    ['running, asked within the grace period: waits', { state: 'TRAINING', control: stop(GRACE - 1) }, { requestStop: false, scale: false }],
    ['running, asked the grace period ago: scaled', { state: 'PENDING', control: stop(GRACE) }, { requestStop: false, scale: true }],
    ['unreadable status, not asked: asked, waits', { statusProblem: 'not JSON' }, { requestStop: true, scale: false }],
  ])('%s', (_name, job, expected) => {
    expect(decideStop(job, now, GRACE)).toMatchObject(expected);
  });
});

describe('budget guard: spot-then-on-demand', () => {
  const interrupted: ObservedInstance = {
    ...spotA,
    instanceId: 'i-spot-c1',
    config: 'c',
    state: 'terminated',
    stateReasonCode: 'Server.SpotInstanceTermination',
    stateTransitionReason: 'Service initiated (2026-11-28 10:30:00 GMT)',
  };

  test('stays on spot below the limit', async () => {
    const aws = fake();
    aws.instances = [interrupted];
    const r = await runGuard(aws, settings(100), at('12:30'));
    expect(r.switchedToOnDemand).toEqual([]);
    expect(r.ledger.configs.c).toMatchObject({ interruptions: 1, spotLaunchFailures: 0 });
  });

  test('moves the group to on-demand after an interruption and a failed spot launch, and records it in spend.json only', async () => {
    const aws = fake();
    aws.instances = [interrupted];
    aws.launchFailures.set('SpotSweep-demo-c', 1);
    await aws.put(statusKey('c'), { state: 'TRAINING', attempts: 2 });
    const statusBefore = await aws.store.readObject(statusKey('c'));
    const r = await runGuard(aws, settings(100), at('12:30'));
    expect(r.switchedToOnDemand).toEqual(['SpotSweep-demo-c']);
    expect(r.ledger.configs.c).toMatchObject({ onDemandSince: at('12:30').toISOString(), interruptions: 1, spotLaunchFailures: 1 });
    expect(r.ledger.configs.c.onDemandReason).toMatch(/1 spot interruption\(s\) and 1 failed spot launch\(es\) reached the limit of 2/);
    expect((await storedLedger(aws)).configs).toMatchObject({ c: { onDemandSince: at('12:30').toISOString() } });
    expect(await aws.store.readObject(statusKey('c'))).toEqual(statusBefore);

    // Later runs keep the decision (and re-apply it, in case a redeploy reset the group) without recording it again.
    aws.launchFailures.set('SpotSweep-demo-c', 5);
    const later = await runGuard(aws, settings(100), at('12:35'));
    expect(later.switchedToOnDemand).toEqual([]);
    expect(later.ledger.configs.c.onDemandSince).toBe(at('12:30').toISOString());
    expect(aws.switched).toEqual(['SpotSweep-demo-c', 'SpotSweep-demo-c']);
  });

  test('never switches spot-only or on-demand groups', async () => {
    const aws = fake();
    aws.instances = [{ ...interrupted, config: 'a' }];
    aws.launchFailures.set('SpotSweep-demo-a', 9);
    await runGuard(aws, settings(100), at('12:30'));
    expect(aws.switched).toEqual([]);
  });
});

test('fails when another guard run wrote spend.json in between: the later write is skipped and reported, the other ledger stands', async () => {
  const aws = new FakeAws();
  aws.instances = [spotA];
  await runGuard(aws, settings(100), at('10:30'));
  // A second run (a retried invocation) reads the ledger, and while it asks EC2, the scheduled run writes.
  const list = aws.listInstances.bind(aws);
  aws.listInstances = async () => {
    await aws.put(spendKey, { ...(await aws.json(spendKey)), updatedAt: at('10:34').toISOString(), notes: ['written by the other run'] });
    return list();
  };
  const result = await runGuard(aws, settings(100), at('10:35'));

  expect(result.errors).toEqual([expect.stringMatching(/spend\.json was written by another guard run in the meantime/)]);
  expect((await aws.json(spendKey)).notes).toEqual(['written by the other run']);
});

describe('budget guard: the heartbeat the guard-silent alarm watches', () => {
  test('beats once per run, at the run start, even with no instance and nothing else to say', async () => {
    const aws = new FakeAws();
    const r = await runGuard(aws, settings(100), at('12:30'));
    expect(r.errors).toEqual([]);
    expect(aws.heartbeats).toEqual([{ sweep: 'demo', at: at('12:30').toISOString() }]);
  });

  test('beats when a later step fails part-way (a group that cannot be scaled at the budget)', async () => {
    const aws = new FakeAws();
    aws.instances = [spotA];
    aws.failScaling.add('SpotSweep-demo-b');
    const r = await runGuard(aws, settings(0.01), at('12:30'));
    expect(r.errors.join(' ')).toMatch(/SpotSweep-demo-b/);
    expect(aws.heartbeats).toHaveLength(1);
  });

  test('does not beat when it cannot price the sweep, so a guard failing that way trips the fail-safe', async () => {
    const aws = new FakeAws();
    aws.failListing = true;
    await expect(runGuard(aws, settings(100), at('12:30'))).rejects.toThrow(/UnauthorizedOperation/);
    expect(aws.heartbeats).toEqual([]);
  });

  test('a heartbeat that cannot be published is a problem of the run, and the run still does the rest', async () => {
    const aws = new FakeAws();
    aws.failHeartbeat = true;
    const r = await runGuard(aws, settings(100), at('12:30'));
    expect(r.errors).toEqual([expect.stringMatching(/could not publish the heartbeat: Error: Throttling/)]);
    expect(aws.metrics).toHaveLength(1);
  });
});
