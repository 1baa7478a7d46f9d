import { ConfigSpend } from './ledger';

/** How a config's group buys capacity (the sweep spec's `market`). */
export type GroupMarket = 'spot' | 'on-demand' | 'spot-then-on-demand';

export interface GuardedGroup {
  readonly config: string;
  /** lib/contract `groupName(sweep, config)` */
  readonly groupName: string;
  readonly market: GroupMarket;
}

/** What the spot-to-on-demand fallback asks of Auto Scaling. */
export interface FallbackDeps {
  /** Failed spot launches in the group's recent scaling activities. */
  spotLaunchFailures(groupName: string): Promise<number>;
  switchToOnDemand(groupName: string): Promise<void>;
  log(message: string, detail?: Record<string, unknown>): void;
}

/**
 * The spot-to-on-demand fallback of `spot-then-on-demand` groups: once a group's spot interruptions (from
 * the ledger) plus its failed spot launches reach the limit, it launches on-demand from then on. The
 * decision is recorded in the config's row of spend.json (`onDemandSince`, `onDemandReason`) and applied
 * again on every later run, since a redeploy of the sweep stack puts the group's template settings back.
 * Returns the configs' rows with the record and the failure counts, and the groups switched in this run.
 */
export async function applyOnDemandFallback(
  deps: FallbackDeps,
  groups: readonly GuardedGroup[],
  configs: Readonly<Record<string, ConfigSpend>>,
  limit: number,
  now: Date,
): Promise<{ configs: Record<string, ConfigSpend>; switched: string[] }> {
  const out: Record<string, ConfigSpend> = { ...configs };
  const switched: string[] = [];
  for (const g of groups.filter((x) => x.market === 'spot-then-on-demand')) {
    const c = out[g.config];
    if (c.onDemandSince) {
      // Again on every run (idempotent).
      await deps.switchToOnDemand(g.groupName);
      continue;
    }
    const failures = await deps.spotLaunchFailures(g.groupName);
    out[g.config] = { ...c, spotLaunchFailures: failures };
    if (failures + c.interruptions >= limit) {
      await deps.switchToOnDemand(g.groupName);
      const reason = `${c.interruptions} spot interruption(s) and ${failures} failed spot launch(es) reached the limit of ${limit}; the group now launches on-demand instances.`;
      out[g.config] = { ...out[g.config], onDemandSince: now.toISOString(), onDemandReason: reason };
      switched.push(g.groupName);
      deps.log('switched to on-demand', { group: g.groupName, reason });
    }
  }
  return { configs: out, switched };
}
