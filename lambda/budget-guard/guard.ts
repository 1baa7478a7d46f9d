import { hoursBetween, onDemandUsdPerHour, PricePoint, spotCostUsd } from './pricing';
import { ConfigSpend, Ledger, LedgerInstance, mergeInstances, ObservedInstance, parseLedger, PriceSource, summarize } from './ledger';
import { mergeStatus, StatusPatch } from './status';

/** How a config's group buys capacity (the sweep spec's `market`). */
export type GroupMarket = 'spot' | 'on-demand' | 'spot-then-on-demand';

export interface GuardedGroup {
  readonly config: string;
  /** `SpotSweep-<sweep>-<config>` */
  readonly groupName: string;
  readonly market: GroupMarket;
}

export interface GuardSettings {
  readonly sweep: string;
  readonly budgetUsd: number;
  readonly groups: readonly GuardedGroup[];
  /** Spot interruptions + failed spot launches after which a spot-then-on-demand group goes on-demand. */
  readonly spotFailuresBeforeOnDemand: number;
}

/** Everything the guard asks of AWS; aws.ts implements it with SDK clients, tests with fakes. */
export interface GuardDeps {
  listInstances(sweep: string): Promise<ObservedInstance[]>;
  spotPriceHistory(instanceType: string, availabilityZone: string, start: Date, end: Date): Promise<PricePoint[]>;
  /** Failed spot launches in the group's recent scaling activities. */
  spotLaunchFailures(groupName: string): Promise<number>;
  scaleToZero(groupName: string): Promise<void>;
  switchToOnDemand(groupName: string): Promise<void>;
  putMetrics(sweep: string, totalUsd: number, instanceHoursByConfig: Readonly<Record<string, number>>): Promise<void>;
  /** Reads a key of the artifact bucket: text and ETag, undefined when missing. */
  read(key: string): Promise<{ text: string; etag?: string } | undefined>;
  /** Writes a key; `ifMatch` makes it conditional (`absent`: only if it does not exist). */
  write(key: string, body: string, ifMatch?: string | 'absent'): Promise<void>;
  isConflict(err: unknown): boolean;
  log(message: string, detail?: Record<string, unknown>): void;
}

export interface GuardResult {
  readonly ledger: Ledger;
  readonly scaledToZero: readonly string[];
  readonly switchedToOnDemand: readonly string[];
  /** Non-fatal failures (a status.json that could not be updated): logged, and the run fails after finishing everything else. */
  readonly errors: readonly string[];
}

export const spendKey = (sweep: string): string => `sweeps/${sweep}/spend.json`;
export const statusKey = (sweep: string, config: string): string => `sweeps/${sweep}/${config}/status.json`;

const round4 = (x: number): number => Math.round(x * 10000) / 10000;
const usd = (x: number): string => `$${x.toFixed(2)}`;

/** Prices every instance that is still running or not yet priced; ended and priced ones are kept as they are. */
async function priceInstances(deps: GuardDeps, instances: Record<string, LedgerInstance>, nowMs: number): Promise<void> {
  const open = Object.values(instances).filter((i) => !i.final);
  const histories = new Map<string, Promise<PricePoint[]>>();
  for (const i of open.filter((x) => x.market === 'spot')) {
    const key = `${i.instanceType} ${i.availabilityZone}`;
    if (histories.has(key)) continue;
    const starts = open.filter((x) => x.market === 'spot' && `${x.instanceType} ${x.availabilityZone}` === key).map((x) => Date.parse(x.launchTime));
    histories.set(key, deps.spotPriceHistory(i.instanceType, i.availabilityZone, new Date(Math.min(...starts)), new Date(nowMs)));
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

/** Read-modify-write of one status.json, retried when the job runner wrote it in between. */
async function patchStatus(deps: GuardDeps, key: string, patch: StatusPatch): Promise<string | undefined> {
  for (let attempt = 1; attempt <= 3; attempt++) {
    const current = await deps.read(key);
    const merged = mergeStatus(current?.text, patch);
    if (merged.problem) return `${key}: ${merged.problem}; left unchanged`;
    if (merged.unchanged) return undefined;
    try {
      await deps.write(key, merged.text!, current ? current.etag ?? undefined : 'absent');
      return undefined;
    } catch (err) {
      if (!deps.isConflict(err)) return `${key}: ${(err as Error).message}`;
    }
  }
  return `${key}: changed by another writer three times in a row; will retry on the next run`;
}

/**
 * One run of the budget guard: update the ledger from EC2, price it, publish the spend, move
 * spot-then-on-demand groups that keep losing spot capacity to on-demand, and stop every group once
 * the sweep has spent its budget.
 */
export async function runGuard(deps: GuardDeps, settings: GuardSettings, now: Date): Promise<GuardResult> {
  const { sweep, budgetUsd, groups } = settings;
  const nowIso = now.toISOString();
  const notes: string[] = [
    'Spot instances: time-weighted EC2 spot price history (Linux/UNIX) of their type and AZ; on-demand instances: the on-demand price ' +
      'table in lib/cost/instances.ts (us-east-1 list prices). EBS volumes and data transfer are not counted.',
  ];
  const stored = await deps.read(spendKey(sweep));
  let previous: Ledger | undefined;
  if (stored) {
    const parsed = parseLedger(stored.text);
    previous = parsed.ledger;
    if (parsed.problem) {
      notes.push(`The previous spend.json was unreadable (${parsed.problem}) at ${nowIso}; spend of instances already gone from EC2 may be missing.`);
      deps.log('previous ledger unreadable, starting a new one', { problem: parsed.problem });
    }
  }
  for (const n of previous?.notes ?? []) if (!notes.includes(n)) notes.push(n);

  const observed = await deps.listInstances(sweep);
  const instances = mergeInstances(previous?.instances ?? {}, observed, nowIso);
  await priceInstances(deps, instances, now.getTime());
  for (const i of Object.values(instances)) {
    const note = `${i.instanceType} has no price in lib/cost/instances.ts and no spot price history: its spend counts as $0.`;
    if (i.priceSource === 'unpriced' && !notes.includes(note)) notes.push(note);
  }
  const summary = summarize(instances, groups.map((g) => g.config));

  const configs: Record<string, ConfigSpend> = {};
  const switched: string[] = [];
  for (const [config, s] of Object.entries(summary.configs)) {
    const before = previous?.configs[config];
    configs[config] = { ...s, usd: round4(s.usd), instanceHours: round4(s.instanceHours), onDemandSince: before?.onDemandSince, onDemandReason: before?.onDemandReason };
  }
  for (const g of groups.filter((x) => x.market === 'spot-then-on-demand')) {
    const c = configs[g.config];
    if (c.onDemandSince) {
      // Again on every run (idempotent): a redeploy of the sweep stack puts the group's template settings back.
      await deps.switchToOnDemand(g.groupName);
      continue;
    }
    const failures = await deps.spotLaunchFailures(g.groupName);
    const lost = failures + c.interruptions;
    configs[g.config] = { ...c, spotLaunchFailures: failures };
    if (lost >= settings.spotFailuresBeforeOnDemand) {
      await deps.switchToOnDemand(g.groupName);
      const reason = `${c.interruptions} spot interruption(s) and ${failures} failed spot launch(es) reached the limit of ${settings.spotFailuresBeforeOnDemand}; the group now launches on-demand instances.`;
      configs[g.config] = { ...configs[g.config], onDemandSince: nowIso, onDemandReason: reason };
      switched.push(g.groupName);
      deps.log('switched to on-demand', { group: g.groupName, reason });
    }
  }

  const total = summary.totalUsd;
  const overBudget = total >= budgetUsd;
  const scaled: string[] = [];
  const stopMessage = `Stopped by the sweep budget: the sweep has spent ${usd(total)} of its budgetUsd ${usd(budgetUsd)}.`;
  if (overBudget) {
    // Every run while over budget, not only the first: it is idempotent, and undoes a manual scale-up.
    for (const g of groups) {
      await deps.scaleToZero(g.groupName);
      scaled.push(g.groupName);
    }
    deps.log('budget reached, every group scaled to zero', { totalUsd: total, budgetUsd });
  }

  await deps.putMetrics(sweep, total, Object.fromEntries(Object.entries(configs).map(([c, s]) => [c, s.instanceHours])));

  const ledger: Ledger = {
    version: 1,
    sweep,
    budgetUsd,
    updatedAt: nowIso,
    totalUsd: round4(total),
    configs,
    instances,
    stoppedForBudget: previous?.stoppedForBudget ?? (overBudget ? { at: nowIso, totalUsd: round4(total) } : undefined),
    notes,
  };
  await deps.write(spendKey(sweep), `${JSON.stringify(ledger, null, 2)}\n`);

  const errors: string[] = [];
  for (const g of groups) {
    const c = configs[g.config];
    const problem = await patchStatus(deps, statusKey(sweep, g.config), {
      spendUsd: c.usd,
      stoppedMessage: overBudget ? stopMessage : undefined,
      onDemand: c.onDemandSince ? { since: c.onDemandSince, reason: c.onDemandReason ?? '' } : undefined,
    });
    if (problem) {
      errors.push(problem);
      deps.log('status.json not updated', { problem });
    }
  }
  return { ledger, scaledToZero: scaled, switchedToOnDemand: switched, errors };
}
