import { GuardSettings, runGuard, spendKey, statusKey } from '../../../lambda/budget-guard/guard';
import { ObservedInstance } from '../../../lambda/budget-guard/ledger';
import { FakeAws } from './fake-deps';

const at = (hhmm: string): Date => new Date(`2026-11-28T${hhmm}:00Z`);
const ms = (hhmm: string): number => at(hhmm).getTime();

const settings = (budgetUsd: number): GuardSettings => ({
  sweep: 'demo',
  budgetUsd,
  spotFailuresBeforeOnDemand: 2,
  groups: [
    { config: 'a', groupName: 'SpotSweep-demo-a', market: 'spot' },
    { config: 'b', groupName: 'SpotSweep-demo-b', market: 'on-demand' },
    { config: 'c', groupName: 'SpotSweep-demo-c', market: 'spot-then-on-demand' },
  ],
});

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

describe('budget guard: spend', () => {
  test('prices spot from the price history and on-demand from the table, per config and in total', async () => {
    const aws = fake();
    const { ledger } = await runGuard(aws, settings(100), at('12:30'));
    // a: 1 h x 0.50 + 1 h x 0.75 + 0.5 h x 0.25 = 1.375; b: 0.5 h x 0.526 = 0.263.
    expect(ledger.instances['i-spot-a']).toMatchObject({ usd: 1.375, hours: 2.5, priceSource: 'spot price history', final: false });
    expect(ledger.instances['i-od-b']).toMatchObject({ usd: 0.263, hours: 0.5, priceSource: 'on-demand price table', endedAt: at('11:30').toISOString(), final: true });
    expect(ledger.configs.a).toMatchObject({ usd: 1.375, instanceHours: 2.5, instances: 1 });
    expect(ledger.configs.b).toMatchObject({ usd: 0.263, instanceHours: 0.5 });
    expect(ledger.configs.c).toMatchObject({ usd: 0, instanceHours: 0, instances: 0 });
    expect(ledger.totalUsd).toBe(1.638);
    expect(aws.metrics).toEqual([{ sweep: 'demo', totalUsd: 1.638, hours: { a: 2.5, b: 0.5, c: 0 } }]);
    expect(ledger.notes.join(' ')).toMatch(/on-demand price table in lib\/cost\/instances\.ts/);
    expect(aws.json(spendKey('demo'))).toMatchObject({ version: 1, sweep: 'demo', budgetUsd: 100, totalUsd: 1.638 });
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
  });

  test('a spot instance without price history is priced at the on-demand price, and the ledger says so', async () => {
    const aws = fake();
    aws.prices.clear();
    const { ledger } = await runGuard(aws, settings(100), at('12:30'));
    expect(ledger.instances['i-spot-a']).toMatchObject({ priceSource: 'on-demand price table (no spot price history)', usd: 2.515 });
  });

  test('starts a new ledger, with a note, when spend.json is unreadable', async () => {
    const aws = fake();
    aws.put(spendKey('demo'), '{"version": 1, "instances": ');
    const { ledger } = await runGuard(aws, settings(100), at('12:30'));
    expect(ledger.totalUsd).toBe(1.638);
    expect(ledger.notes.join(' ')).toMatch(/previous spend\.json was unreadable \(not valid JSON/);
  });
});

describe('budget guard: the budget', () => {
  test('does not stop anything while the spend is below the budget, even by a tenth of a cent', async () => {
    const aws = fake();
    aws.instances = [spotA];
    const r = await runGuard(aws, settings(1.376), at('12:30'));
    expect(r.scaledToZero).toEqual([]);
    expect(aws.scaled).toEqual([]);
    expect(r.ledger.stoppedForBudget).toBeUndefined();
    expect(aws.json(statusKey('demo', 'a'))).toEqual({ spendUsd: 1.375 });
  });

  test('scales every group to zero when the spend reaches the budget exactly, and says why in each status.json', async () => {
    const aws = fake();
    aws.instances = [spotA];
    aws.put(statusKey('demo', 'a'), JSON.stringify({ state: 'TRAINING', fold: 3, progress: 0.4, attempts: 2, interruptions: 1, custom: 'kept' }));
    aws.put(statusKey('demo', 'b'), JSON.stringify({ state: 'SUCCEEDED', progress: 1, message: 'done' }));
    const r = await runGuard(aws, settings(1.375), at('12:30'));
    expect(aws.scaled).toEqual(['SpotSweep-demo-a', 'SpotSweep-demo-b', 'SpotSweep-demo-c']);
    expect(r.ledger.stoppedForBudget).toEqual({ at: at('12:30').toISOString(), totalUsd: 1.375 });
    const a = aws.json(statusKey('demo', 'a'));
    expect(a).toMatchObject({ state: 'STOPPED', stoppedBy: 'budget', fold: 3, progress: 0.4, attempts: 2, interruptions: 1, custom: 'kept', spendUsd: 1.375 });
    expect(a.message).toBe('Stopped by the sweep budget: the sweep has spent $1.38 of its budgetUsd $1.38.');
    // A finished config keeps its outcome; it only gets its spend.
    expect(aws.json(statusKey('demo', 'b'))).toEqual({ state: 'SUCCEEDED', progress: 1, message: 'done', spendUsd: 0 });
    // A config that never started gets a status.json that says it was stopped.
    expect(aws.json(statusKey('demo', 'c'))).toMatchObject({ state: 'STOPPED', spendUsd: 0 });
    expect(r.errors).toEqual([]);
  });

  test('keeps every group at zero on later runs (idempotent, undoes a manual scale-up)', async () => {
    const aws = fake();
    await runGuard(aws, settings(1), at('12:30'));
    await runGuard(aws, settings(1), at('12:35'));
    expect(aws.scaled).toHaveLength(6);
    expect(aws.json(spendKey('demo')).stoppedForBudget).toEqual({ at: at('12:30').toISOString(), totalUsd: 1.638 });
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

  test('moves the group to on-demand after an interruption and a failed spot launch, and records it', async () => {
    const aws = fake();
    aws.instances = [interrupted];
    aws.launchFailures.set('SpotSweep-demo-c', 1);
    aws.put(statusKey('demo', 'c'), JSON.stringify({ state: 'TRAINING', attempts: 2 }));
    const r = await runGuard(aws, settings(100), at('12:30'));
    expect(r.switchedToOnDemand).toEqual(['SpotSweep-demo-c']);
    expect(r.ledger.configs.c).toMatchObject({ onDemandSince: at('12:30').toISOString(), interruptions: 1, spotLaunchFailures: 1 });
    expect(r.ledger.configs.c.onDemandReason).toMatch(/1 spot interruption\(s\) and 1 failed spot launch\(es\) reached the limit of 2/);
    expect(aws.json(statusKey('demo', 'c'))).toMatchObject({ state: 'TRAINING', attempts: 2, onDemandSince: at('12:30').toISOString() });

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

describe('budget guard: status.json', () => {
  test('rereads and retries when the job runner rewrote status.json in between, keeping the runner\'s fields', async () => {
    const aws = fake();
    aws.put(statusKey('demo', 'a'), JSON.stringify({ state: 'TRAINING', fold: 1 }));
    aws.racers.set(statusKey('demo', 'a'), JSON.stringify({ state: 'TRAINING', fold: 2, progress: 0.2 }));
    const r = await runGuard(aws, settings(100), at('12:30'));
    expect(r.errors).toEqual([]);
    expect(aws.json(statusKey('demo', 'a'))).toEqual({ state: 'TRAINING', fold: 2, progress: 0.2, spendUsd: 1.375 });
  });

  test('leaves a malformed status.json alone and reports it, after doing everything else', async () => {
    const aws = fake();
    aws.put(statusKey('demo', 'a'), '{"state": "TRAIN');
    const r = await runGuard(aws, settings(1), at('12:30'));
    expect(aws.objects.get(statusKey('demo', 'a'))!.text).toBe('{"state": "TRAIN');
    expect(r.errors).toEqual([expect.stringMatching(/^sweeps\/demo\/a\/status\.json: status\.json is not valid JSON/)]);
    expect(aws.scaled).toHaveLength(3);
    expect(aws.json(statusKey('demo', 'b'))).toMatchObject({ state: 'STOPPED' });
  });
});
