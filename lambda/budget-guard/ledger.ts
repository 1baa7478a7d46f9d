/**
 * The guard's persistent ledger, `sweeps/<sweep>/spend.json`: every instance of the sweep ever seen.
 * EC2 DescribeInstances forgets a terminated instance after about an hour, so the ledger, not EC2,
 * is the record of what the sweep has spent.
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
