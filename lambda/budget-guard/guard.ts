import { BudgetStopDeps, BudgetStopResult, enforceBudget } from './budget-stop';
import { applyOnDemandFallback, FallbackDeps, GuardedGroup } from './fallback';
import { Ledger, LedgerDeps, updateLedger, writeLedger } from './ledger';

export type { GroupMarket, GuardedGroup } from './fallback';

export interface GuardSettings {
  readonly sweep: string;
  readonly budgetUsd: number;
  readonly groups: readonly GuardedGroup[];
  /** Spot interruptions + failed spot launches after which a spot-then-on-demand group goes on-demand. */
  readonly spotFailuresBeforeOnDemand: number;
  /** Seconds a job has, after the guard's stop request, before its group is scaled to zero anyway. */
  readonly stopGraceSeconds: number;
}

/** Everything the guard asks of AWS and the store; aws.ts implements it with SDK clients, tests with fakes. */
export interface GuardDeps extends LedgerDeps, FallbackDeps, BudgetStopDeps {
  putMetrics(sweep: string, totalUsd: number, instanceHoursByConfig: Readonly<Record<string, number>>): Promise<void>;
  /** One `GuardHeartbeat` datapoint at `at` (the run's start): the guard-silent alarm counts the minutes without one. */
  putHeartbeat(sweep: string, at: Date): Promise<void>;
}

export interface GuardResult {
  readonly ledger: Ledger;
  readonly switchedToOnDemand: readonly string[];
  /** Configs asked to stop in this run (over budget only). */
  readonly stopRequested: readonly string[];
  readonly scaledToZero: readonly string[];
  /** Groups whose job was asked to stop and is still within its grace period. */
  readonly waitingForStop: readonly string[];
  /** Non-fatal failures: logged, and the run fails after finishing everything else. */
  readonly errors: readonly string[];
}

const NOT_OVER_BUDGET: BudgetStopResult = { stopRequested: [], scaledToZero: [], waiting: [], errors: [] };

/**
 * One run of the budget guard. It only orchestrates: the spend ledger (ledger.ts), the spot-to-on-demand
 * fallback (fallback.ts), the spend metrics, the budget stop (budget-stop.ts) and finally spend.json,
 * the one file the guard owns (besides the stop requests it writes into control.json, like any requester).
 */
export async function runGuard(deps: GuardDeps, settings: GuardSettings, now: Date): Promise<GuardResult> {
  const { sweep, budgetUsd, groups } = settings;
  const { ledger: spent, etag } = await updateLedger(deps, { sweep, budgetUsd, configs: groups.map((g) => g.config) }, now);
  // The spend is known: from here on the run can enforce the budget, so it beats now, before any later step can
  // fail. A run that cannot price the sweep (EC2 or the ledger unreadable) does not beat, so a guard that fails
  // that way every time trips the guard-silent alarm like one that does not run.
  const heartbeatProblems = await deps.putHeartbeat(sweep, now).then(
    () => [],
    (err: unknown) => [`could not publish the heartbeat: ${String(err)}`],
  );
  const fallback = await applyOnDemandFallback(deps, groups, spent.configs, settings.spotFailuresBeforeOnDemand, now);
  const ledger: Ledger = { ...spent, configs: fallback.configs };

  const overBudget = ledger.totalUsd >= budgetUsd;
  const stop = overBudget ? await enforceBudget(deps, { sweep, groups, stopGraceSeconds: settings.stopGraceSeconds }, { totalUsd: ledger.totalUsd, budgetUsd }, now) : NOT_OVER_BUDGET;
  if (overBudget) deps.log('budget reached', { totalUsd: ledger.totalUsd, budgetUsd, stopRequested: stop.stopRequested, scaledToZero: stop.scaledToZero, waiting: stop.waiting });

  await deps.putMetrics(sweep, ledger.totalUsd, Object.fromEntries(Object.entries(ledger.configs).map(([c, s]) => [c, s.instanceHours])));
  const ledgerProblems = await writeLedger(deps.store, ledger, etag);

  const errors = [...heartbeatProblems, ...stop.errors, ...ledgerProblems];
  for (const e of errors) deps.log('guard problem', { problem: e });
  return {
    ledger,
    switchedToOnDemand: fallback.switched,
    stopRequested: stop.stopRequested,
    scaledToZero: stop.scaledToZero,
    waitingForStop: stop.waiting,
    errors,
  };
}
