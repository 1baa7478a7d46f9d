import { contractProblems, storeKeys, SWEEP_FILES } from '../../lib/contract';
import { isPreconditionFailed, SweepStore } from '../../lib/store';
import { hoursBetween, onDemandUsdPerHour, PricePoint, spotCostUsd } from './pricing';

/**
 * The spend ledger, the sweep's spend.json (lib/contract `storeKeys.sweepFile(sweep, 'spend')`, schema
 * training/contract/spend.schema.json): every instance of the sweep ever seen, priced. EC2
 * DescribeInstances forgets a terminated instance after about an hour, so the ledger, not EC2, is the
 * record of what the sweep has spent. The guard is its only writer.
 * @see https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/terminating-instances.html
 */

export type Market = 'spot' | 'on-demand';

/** What DescribeInstances says about one instance of the sweep right now. */
export interface ObservedInstance {
  readonly instanceId: string;
  readonly config: string;
  readonly instanceType: string;
  readonly market: Market;
  readonly availabilityZone: string;
  /** ISO 8601. */
  readonly launchTime: string;
  /** pending | running | shutting-down | terminated | stopping | stopped */
  readonly state: string;
  /** StateReason.Code, e.g. `Server.SpotInstanceTermination` for a spot interruption. */
  readonly stateReasonCode?: string;
  /** StateTransitionReason, e.g. `User initiated (2026-11-28 10:00:00 GMT)`. */
  readonly stateTransitionReason?: string;
}

/** How the ledger priced an instance. */
export type PriceSource = 'spot price history' | 'on-demand price table' | 'on-demand price table (no spot price history)' | 'unpriced';

/** One instance as the ledger keeps it: what was observed, plus when it ran and what it cost. */
export interface LedgerInstance
  extends Pick<ObservedInstance, 'instanceId' | 'config' | 'instanceType' | 'market' | 'availabilityZone' | 'launchTime' | 'state'> {
  /** When the guard last saw the instance in DescribeInstances (any state). */
  readonly lastSeenAt: string;
  /** When the guard last saw it running. */
  readonly lastSeenRunningAt?: string;
  /** When it stopped costing money; absent while it runs. */
  readonly endedAt?: string;
  /** Where `endedAt` comes from. */
  readonly endSource?: 'state transition time' | 'first seen stopped' | 'last seen running';
  /** True when EC2 reclaimed it (StateReason `Server.SpotInstanceTermination`). */
  readonly interrupted: boolean;
  readonly hours: number;
  readonly usd: number;
  readonly priceSource?: PriceSource;
  /** Ended and priced: never recomputed. */
  readonly final: boolean;
}

export interface ConfigSpend {
  readonly usd: number;
  readonly instanceHours: number;
  readonly instances: number;
  /** Spot interruptions seen in the ledger. */
  readonly interruptions: number;
  /** Failed spot launches in the group's scaling activities (spot-then-on-demand configs only). */
  readonly spotLaunchFailures?: number;
  /** When the guard moved the group to on-demand, and why. */
  readonly onDemandSince?: string;
  readonly onDemandReason?: string;
}

export interface Ledger {
  readonly version: 1;
  readonly sweep: string;
  readonly budgetUsd: number;
  readonly updatedAt: string;
  readonly totalUsd: number;
  readonly configs: Readonly<Record<string, ConfigSpend>>;
  readonly instances: Readonly<Record<string, LedgerInstance>>;
  /** Set the first time the total reached the budget. */
  readonly stoppedForBudget?: { readonly at: string; readonly totalUsd: number };
  /** How prices were obtained, and anything odd (an unreadable previous ledger, an unpriced type). */
  readonly notes: readonly string[];
}

const ENDED_STATES = new Set(['shutting-down', 'terminated', 'stopping', 'stopped']);

/**
 * `User initiated (2026-11-28 10:00:00 GMT)` -> the ISO instant, when the reason carries one (EC2 writes GMT;
 * the moto emulator writes UTC).
 * @see https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Instance.html (stateTransitionReason)
 */
export function transitionTime(reason: string | undefined): string | undefined {
  const m = /\((\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) (?:GMT|UTC)\)/.exec(reason ?? '');
  return m ? new Date(`${m[1]}T${m[2]}Z`).toISOString() : undefined;
}

/**
 * Folds this run's observations into the previous ledger's instances. An instance keeps running
 * in the ledger while EC2 says pending/running; it ends at its state transition time (or when the
 * guard first saw it stopped); one that vanished from EC2 while still running in the ledger (the
 * guard did not run for over an hour) ends when it was last seen running.
 */
export function mergeInstances(
  previous: Readonly<Record<string, LedgerInstance>>,
  observed: readonly ObservedInstance[],
  now: string,
): Record<string, LedgerInstance> {
  const merged: Record<string, LedgerInstance> = { ...previous };
  const seen = new Set<string>();
  for (const o of observed) {
    seen.add(o.instanceId);
    const before = previous[o.instanceId];
    if (before?.final) {
      merged[o.instanceId] = { ...before, state: o.state, lastSeenAt: now };
      continue;
    }
    const ended = ENDED_STATES.has(o.state);
    const endedAt = ended ? before?.endedAt ?? transitionTime(o.stateTransitionReason) ?? now : undefined;
    merged[o.instanceId] = {
      instanceId: o.instanceId,
      config: o.config,
      instanceType: o.instanceType,
      market: o.market,
      availabilityZone: o.availabilityZone,
      launchTime: o.launchTime,
      state: o.state,
      lastSeenAt: now,
      lastSeenRunningAt: o.state === 'running' ? now : before?.lastSeenRunningAt,
      endedAt,
      endSource: !ended ? undefined : before?.endSource ?? (transitionTime(o.stateTransitionReason) ? 'state transition time' : 'first seen stopped'),
      interrupted: (before?.interrupted ?? false) || o.stateReasonCode === 'Server.SpotInstanceTermination',
      hours: before?.hours ?? 0,
      usd: before?.usd ?? 0,
      priceSource: before?.priceSource,
      final: false,
    };
  }
  for (const [id, before] of Object.entries(previous)) {
    if (seen.has(id) || before.endedAt) continue;
    merged[id] = { ...before, endedAt: before.lastSeenRunningAt ?? before.lastSeenAt, endSource: 'last seen running' };
  }
  return merged;
}

/** Per-config spend, hours and interruptions from the priced instances. */
export function summarize(
  instances: Readonly<Record<string, LedgerInstance>>,
  configs: readonly string[],
): { totalUsd: number; configs: Record<string, { usd: number; instanceHours: number; instances: number; interruptions: number }> } {
  const out: Record<string, { usd: number; instanceHours: number; instances: number; interruptions: number }> = {};
  for (const c of configs) out[c] = { usd: 0, instanceHours: 0, instances: 0, interruptions: 0 };
  let totalUsd = 0;
  for (const i of Object.values(instances)) {
    const row = (out[i.config] ??= { usd: 0, instanceHours: 0, instances: 0, interruptions: 0 });
    row.usd += i.usd;
    row.instanceHours += i.hours;
    row.instances += 1;
    if (i.interrupted) row.interruptions += 1;
    totalUsd += i.usd;
  }
  return { totalUsd, configs: out };
}

/** Parses a stored ledger; undefined (with the reason) when it is not one. */
export function parseLedger(text: string): { ledger?: Ledger; problem?: string } {
  try {
    const value = JSON.parse(text) as Partial<Ledger>;
    if (value && value.version === 1 && typeof value.instances === 'object' && value.instances !== null) return { ledger: value as Ledger };
    return { problem: 'not a version 1 ledger' };
  } catch (err) {
    return { problem: `not valid JSON (${(err as Error).message})` };
  }
}

/** What updating the ledger asks of AWS and the store. */
export interface LedgerDeps {
  readonly store: SweepStore;
  /** Every instance tagged with the sweep, in every state. */
  listInstances(sweep: string): Promise<ObservedInstance[]>;
  spotPriceHistory(instanceType: string, availabilityZone: string, start: Date, end: Date): Promise<PricePoint[]>;
  log(message: string, detail?: Record<string, unknown>): void;
}

export interface LedgerSettings {
  readonly sweep: string;
  readonly budgetUsd: number;
  /** Every config of the sweep: each gets a row, even before its first instance. */
  readonly configs: readonly string[];
}

const round4 = (x: number): number => Math.round(x * 10000) / 10000;

const PRICING_NOTE =
  'Spot instances: time-weighted EC2 spot price history (Linux/UNIX) of their type and AZ; on-demand instances: the on-demand price ' +
  'table in lib/cost/instances.ts (us-east-1 list prices). EBS volumes and data transfer are not counted.';

/** Prices every instance that is still running or not yet priced; ended and priced ones are kept as they are. */
export async function priceInstances(
  spotPriceHistory: LedgerDeps['spotPriceHistory'],
  instances: Record<string, LedgerInstance>,
  nowMs: number,
): Promise<void> {
  const open = Object.values(instances).filter((i) => !i.final);
  const histories = new Map<string, Promise<PricePoint[]>>();
  for (const i of open.filter((x) => x.market === 'spot')) {
    const key = `${i.instanceType} ${i.availabilityZone}`;
    if (histories.has(key)) continue;
    const starts = open.filter((x) => x.market === 'spot' && `${x.instanceType} ${x.availabilityZone}` === key).map((x) => Date.parse(x.launchTime));
    histories.set(key, spotPriceHistory(i.instanceType, i.availabilityZone, new Date(Math.min(...starts)), new Date(nowMs)));
  }
  for (const i of open) {
    const startMs = Date.parse(i.launchTime);
    const endMs = i.endedAt ? Date.parse(i.endedAt) : nowMs;
    const hours = hoursBetween(startMs, endMs);
    let cost: number | undefined;
    let source: PriceSource = 'unpriced';
    if (i.market === 'spot') {
      cost = spotCostUsd(await histories.get(`${i.instanceType} ${i.availabilityZone}`)!, startMs, endMs);
      if (cost !== undefined) source = 'spot price history';
    }
    if (cost === undefined) {
      // On-demand instances, and spot ones without a price history (an upper bound: spot never costs more than on-demand).
      const hourly = onDemandUsdPerHour(i.instanceType);
      if (hourly !== undefined) {
        cost = hours * hourly;
        source = i.market === 'spot' ? 'on-demand price table (no spot price history)' : 'on-demand price table';
      }
    }
    instances[i.instanceId] = { ...i, hours: round4(hours), usd: round4(cost ?? 0), priceSource: source, final: i.endedAt !== undefined && cost !== undefined };
  }
}

/**
 * This run's ledger: the stored one (if readable) with this run's observations folded in and priced,
 * per-config totals (keeping each config's on-demand switch record), and `stoppedForBudget` set the
 * first time the total reaches the budget. Not written yet: see {@link writeLedger}.
 */
export async function updateLedger(deps: LedgerDeps, settings: LedgerSettings, now: Date): Promise<{ ledger: Ledger; etag: string | 'absent' }> {
  const { sweep, budgetUsd } = settings;
  const nowIso = now.toISOString();
  const notes: string[] = [PRICING_NOTE];
  const read = await deps.store.readObject(storeKeys.sweepFile(sweep, 'spend'));
  const stored = read?.text;
  let previous: Ledger | undefined;
  if (stored !== undefined) {
    const parsed = parseLedger(stored);
    previous = parsed.ledger;
    if (parsed.problem) {
      notes.push(`The previous ${SWEEP_FILES.spend} was unreadable (${parsed.problem}) at ${nowIso}; spend of instances already gone from EC2 may be missing.`);
      deps.log('previous ledger unreadable, starting a new one', { problem: parsed.problem });
    }
  }
  for (const n of previous?.notes ?? []) if (!notes.includes(n)) notes.push(n);

  const observed = await deps.listInstances(sweep);
  const instances = mergeInstances(previous?.instances ?? {}, observed, nowIso);
  await priceInstances((type, az, start, end) => deps.spotPriceHistory(type, az, start, end), instances, now.getTime());
  for (const i of Object.values(instances)) {
    const note = `${i.instanceType} has no price in lib/cost/instances.ts and no spot price history: its spend counts as $0.`;
    if (i.priceSource === 'unpriced' && !notes.includes(note)) notes.push(note);
  }
  const summary = summarize(instances, settings.configs);
  const configs: Record<string, ConfigSpend> = {};
  for (const [config, s] of Object.entries(summary.configs)) {
    const before = previous?.configs[config];
    configs[config] = {
      ...s,
      usd: round4(s.usd),
      instanceHours: round4(s.instanceHours),
      ...(before?.spotLaunchFailures !== undefined ? { spotLaunchFailures: before.spotLaunchFailures } : {}),
      ...(before?.onDemandSince !== undefined ? { onDemandSince: before.onDemandSince, onDemandReason: before.onDemandReason ?? '' } : {}),
    };
  }
  const totalUsd = round4(summary.totalUsd);
  const stoppedForBudget = previous?.stoppedForBudget ?? (totalUsd >= budgetUsd ? { at: nowIso, totalUsd } : undefined);
  const ledger: Ledger = {
    version: 1,
    sweep,
    budgetUsd,
    updatedAt: nowIso,
    totalUsd,
    configs,
    instances,
    ...(stoppedForBudget ? { stoppedForBudget } : {}),
    notes,
  };
  return { ledger, etag: read?.etag ?? 'absent' };
}

/**
 * Writes spend.json, conditionally on the ETag it was read with (`etag`): the guard is its only writer,
 * but two runs can overlap (a retried invocation beside the next scheduled one), and the later write
 * must not drop instances the earlier one recorded. A lost race is reported and skipped: the next run
 * recomputes the ledger from the one that won. Returns the problems, including what does not fit
 * spend.schema.json (the ledger is written anyway, since losing the spend record would be worse).
 */
export async function writeLedger(store: SweepStore, ledger: Ledger, etag: string | 'absent'): Promise<string[]> {
  const text = `${JSON.stringify(ledger, null, 2)}\n`;
  const problems = contractProblems('spend', JSON.parse(text)).map((p) => `${SWEEP_FILES.spend}: ${p}`);
  try {
    await store.write(storeKeys.sweepFile(ledger.sweep, 'spend'), text, { ifMatch: etag });
  } catch (err) {
    if (!isPreconditionFailed(err)) throw err;
    problems.push(`${SWEEP_FILES.spend} was written by another guard run in the meantime; this run's ledger was not written (the next run recomputes it)`);
  }
  return problems;
}
