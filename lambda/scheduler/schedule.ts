import { ACTION, groupName, STATE } from '../../lib/contract';
import { readControl, readStatus, SweepStore } from '../../lib/store';

/**
 * The sweep's `maxParallel` cap (lib/constructs/scheduler.ts): at most `maxParallel` configs hold an
 * instance at once, and the next pending config, in spec order, starts when one ends.
 *
 * - running: a config whose group's desired capacity is 1 or more (booting, training, or waiting for a spot
 *   replacement: an interruption leaves desired at 1, so the config keeps its slot).
 * - pending: a config whose group is at desired 0, whose control.json's newest request is not a stop, and
 *   whose status.json is missing or belongs to another job digest (a new job.json makes a finished config
 *   pending again), or, short of SUCCEEDED, is older than a start request in control.json (`spot-sweep start`
 *   with a cap asks the scheduler this way). Every kill path leaves one of these behind, so a config it ended
 *   is never started again: the job runner writes status.json of its digest as soon as it starts (an idle
 *   alarm, the max runtime, the instance's own exit after SUCCEEDED or FAILED), and the budget guard and
 *   `spot-sweep stop` write a stop request to control.json.
 * - The first `maxParallel - running` pending configs in spec order are set to 0/1/1.
 *
 * Two runs at once could otherwise both count the same free slot: the function has reserved concurrency 1
 * and every trigger invokes it asynchronously, so runs queue instead (the construct cites the docs). The choice
 * is also a prefix of the spec order, so two runs that read the same state start the same configs.
 */

export interface ScheduleDeps {
  readonly store: SweepStore;
  /** The desired capacity of each of these groups that exists, by group name (a group not created yet is absent). */
  desiredCapacities(groupNames: readonly string[]): Promise<ReadonlyMap<string, number>>;
  /** The config's current job digest (of the job.json in its SSM parameter), or undefined when the parameter is not there yet. */
  jobDigest(config: string): Promise<string | undefined>;
  /** Sets the group to min 0, max 1, desired 1. */
  startGroup(groupName: string): Promise<void>;
  log(message: string, detail?: Record<string, unknown>): void;
}

export interface ScheduleInput {
  readonly sweep: string;
  /** Every config of the sweep, in spec order (the order pending configs start in). */
  readonly configs: readonly string[];
  /** The cap, a whole number >= 1. */
  readonly maxParallel: number;
}

/** Why a config at desired 0 is not started. */
export type NotPending = 'no group yet' | 'no job.json yet' | 'ran this job.json' | 'stop requested';

export interface ScheduleResult {
  /** Configs that held an instance before this run. */
  readonly running: readonly string[];
  /** Configs this run started. */
  readonly started: readonly string[];
  /** Pending configs left for a later run (no free slot). */
  readonly waiting: readonly string[];
  /** Configs at desired 0 that are not pending, and why. */
  readonly done: Readonly<Record<string, NotPending>>;
}

/** Whether a config at desired 0 may start; `true` or why not. */
async function pending(deps: ScheduleDeps, sweep: string, config: string): Promise<true | NotPending> {
  const digest = await deps.jobDigest(config);
  if (digest === undefined) return 'no job.json yet';
  const { control } = await readControl(deps.store, sweep, config);
  if (control?.action === ACTION.stop) return 'stop requested';
  const { status, problem } = await readStatus(deps.store, sweep, config);
  // An unreadable status.json was written by a runner, so a job ran: do not start it blindly.
  if (problem !== undefined) return 'ran this job.json';
  if (status?.jobDigest !== digest) return true;
  if (status.state === STATE.SUCCEEDED) return 'ran this job.json';
  // Someone asked for this job again after it ended (`spot-sweep start`, or a deploy of a destroyed stack): a
  // start request newer than the runner's last word. The runner writes status.json as soon as it starts, so
  // the request is older than status.json again once the config ran for it.
  if (control?.action === ACTION.start && typeof status.updatedAt === 'string' && Date.parse(control.at) > Date.parse(status.updatedAt)) return true;
  return 'ran this job.json';
}

/** Starts pending configs up to the cap. Throws when Auto Scaling or the store refuses (the invocation is retried). */
export async function schedule(deps: ScheduleDeps, input: ScheduleInput): Promise<ScheduleResult> {
  const { sweep, configs, maxParallel } = input;
  if (!Number.isInteger(maxParallel) || maxParallel < 1) {
    throw new Error(`MAX_PARALLEL is ${maxParallel}; lib/constructs/scheduler.ts sets it from the spec's maxParallel (a whole number >= 1), so deploy the sweep stack again.`);
  }
  const desired = await deps.desiredCapacities(configs.map((c) => groupName(sweep, c)));
  const running = configs.filter((c) => (desired.get(groupName(sweep, c)) ?? 0) >= 1);
  const done: Record<string, NotPending> = {};
  const candidates: string[] = [];
  for (const config of configs) {
    if (running.includes(config)) continue;
    if (!desired.has(groupName(sweep, config))) {
      done[config] = 'no group yet';
      continue;
    }
    const why = await pending(deps, sweep, config);
    if (why === true) candidates.push(config);
    else done[config] = why;
  }
  const free = Math.max(0, maxParallel - running.length);
  const started = candidates.slice(0, free);
  for (const config of started) {
    const group = groupName(sweep, config);
    try {
      await deps.startGroup(group);
    } catch (err) {
      throw new Error(`Could not start ${group} (UpdateAutoScalingGroup to min 0, max 1, desired 1): ${(err as Error).message}. The scheduler runs again within 5 minutes; run spot-sweep start to start it yourself.`);
    }
  }
  const result: ScheduleResult = { running, started, waiting: candidates.slice(free), done };
  deps.log('scheduled', { sweep, maxParallel, ...result });
  return result;
}
