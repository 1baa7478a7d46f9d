import { ACTION, CONFIG_FILES, ControlJson, FINAL_STATES, REQUESTERS } from '../../lib/contract';
import { readControl, readStatus, requestControl, SweepStore } from '../../lib/store';
import { GuardedGroup } from './fallback';

/**
 * The budget stop: what the guard does on every run while the sweep's spend is at or over its budget.
 *
 * 1. A stop request per job (control.json, through lib/store `requestControl`), unless the config's
 *    status.json (the job runner's file: read, never written) is final or its control.json already holds
 *    a stop. The job runner reads control.json every 30 s and obeys: checkpoint, upload, STOPPED with
 *    the request's reason, and the instance removes itself.
 * 2. Scale to zero, the independent kill path, for the groups whose job is final, has not started (no
 *    status.json), or was asked to stop at least the grace period ago and is still not final: the job had
 *    its chance to checkpoint first. Repeated on every run while over budget (idempotent; it also undoes
 *    a manual scale-up).
 */

/** What the budget stop asks of Auto Scaling and the store. */
export interface BudgetStopDeps {
  readonly store: SweepStore;
  scaleToZero(groupName: string): Promise<void>;
  log(message: string, detail?: Record<string, unknown>): void;
}

export interface BudgetStopSettings {
  readonly sweep: string;
  readonly groups: readonly GuardedGroup[];
  /** Seconds between a stop request and scaling the group to zero anyway. */
  readonly stopGraceSeconds: number;
}

export interface BudgetStopResult {
  /** Configs whose control.json received a stop request in this run. */
  readonly stopRequested: readonly string[];
  /** Groups scaled to zero in this run. */
  readonly scaledToZero: readonly string[];
  /** Groups left running: their job was asked to stop less than the grace period ago. */
  readonly waiting: readonly string[];
  /** A status.json or control.json that could not be read, a request or a scaling that failed. */
  readonly errors: readonly string[];
}

const usd = (x: number): string => `$${x.toFixed(2)}`;

/** The stop request's reason: it becomes the STOPPED message of the job. */
export function budgetStopReason(totalUsd: number, budgetUsd: number): string {
  return `Stopped by the sweep budget: the sweep has spent ${usd(totalUsd)} of its budgetUsd ${usd(budgetUsd)}.`;
}

/** What the guard knows about one config's job. */
export interface JobView {
  /** status.json `state`; undefined when there is no status.json. */
  readonly state?: string;
  /** Set when status.json exists but says no state (not JSON, no `state`): treated as a job that may be running. */
  readonly statusProblem?: string;
  /** control.json, when it holds a valid request. */
  readonly control?: ControlJson;
}

export interface StopDecision {
  /** Write a stop request into control.json. */
  readonly requestStop: boolean;
  /** Scale the group to zero now. */
  readonly scale: boolean;
  readonly why: string;
}

/** The budget stop's decision for one config, from what its files say. */
export function decideStop(job: JobView, nowMs: number, graceSeconds: number): StopDecision {
  const holdsStop = job.control?.action === ACTION.stop;
  if (job.state !== undefined && FINAL_STATES.has(job.state)) {
    return { requestStop: false, scale: true, why: `the job is ${job.state}` };
  }
  if (job.state === undefined && job.statusProblem === undefined) {
    // Never started: nothing to checkpoint. The request still stops a job that starts later (a redeploy).
    return { requestStop: !holdsStop, scale: true, why: `the job has no ${CONFIG_FILES.status} yet` };
  }
  if (!holdsStop) return { requestStop: true, scale: false, why: `the job is ${job.state ?? 'in an unknown state'}: asked to stop` };
  const askedMs = Date.parse(job.control!.at);
  const waited = (nowMs - askedMs) / 1000;
  if (waited >= graceSeconds) {
    return { requestStop: false, scale: true, why: `asked to stop at ${job.control!.at} (${Math.round(waited)} s ago, grace ${graceSeconds} s) and not final yet` };
  }
  return { requestStop: false, scale: false, why: `asked to stop at ${job.control!.at}; waiting up to ${graceSeconds} s for it to checkpoint and end` };
}

/** status.json's state, read only. */
async function readState(store: SweepStore, sweep: string, config: string): Promise<Pick<JobView, 'state' | 'statusProblem'>> {
  const { status, problem } = await readStatus(store, sweep, config);
  if (problem) return { statusProblem: problem };
  if (status === undefined) return {};
  return typeof status.state === 'string' ? { state: status.state } : { statusProblem: `${CONFIG_FILES.status} has no state` };
}

/** Applies the budget stop to every group of the sweep; failures are collected, never thrown. */
export async function enforceBudget(
  deps: BudgetStopDeps,
  settings: BudgetStopSettings,
  spent: { readonly totalUsd: number; readonly budgetUsd: number },
  now: Date,
): Promise<BudgetStopResult> {
  const { store, log } = deps;
  const { sweep } = settings;
  const reason = budgetStopReason(spent.totalUsd, spent.budgetUsd);
  const stopRequested: string[] = [];
  const scaledToZero: string[] = [];
  const waiting: string[] = [];
  const errors: string[] = [];
  for (const g of settings.groups) {
    let decision: StopDecision;
    try {
      const status = await readState(store, sweep, g.config);
      const { control, problem } = await readControl(store, sweep, g.config);
      if (problem) log(`${CONFIG_FILES.control} unreadable: a new request replaces it`, { config: g.config, problem });
      decision = decideStop({ ...status, control }, now.getTime(), settings.stopGraceSeconds);
      if (decision.requestStop) {
        await requestControl(store, sweep, g.config, { action: ACTION.stop, by: REQUESTERS.budgetGuard, reason }, now);
        stopRequested.push(g.config);
      }
    } catch (err) {
      // Without a readable state or a written request the job cannot be asked: the kill path at once.
      errors.push(`${g.config}: ${(err as Error).message}`);
      decision = { requestStop: false, scale: true, why: `could not ask the job to stop (${(err as Error).message})` };
    }
    log(decision.scale ? 'budget reached: scaling to zero' : 'budget reached: waiting for the job to stop', { group: g.groupName, why: decision.why });
    if (!decision.scale) {
      waiting.push(g.groupName);
      continue;
    }
    try {
      await deps.scaleToZero(g.groupName);
      scaledToZero.push(g.groupName);
    } catch (err) {
      errors.push(`${g.groupName}: scaling to zero failed (${(err as Error).message})`);
    }
  }
  return { stopRequested, scaledToZero, waiting, errors };
}
