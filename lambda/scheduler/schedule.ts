import { ACTION, contractProblems, groupName, ScheduledJson, STATE, storeKeys } from '../../lib/contract';
import { readControl, readStatus, SweepStore } from '../../lib/store';

/**
 * The sweep's `maxParallel` cap (lib/constructs/scheduler.ts): at most `maxParallel` configs hold an
 * instance at once, and the next pending config, in spec order, starts when one ends.
 *
 * - running: a config whose group's desired capacity is 1 or more (booting, training, or waiting for a spot
 *   replacement: an interruption leaves desired at 1, so the config keeps its slot).
 * - pending: a config whose group is at desired 0 and whose control.json's newest request is not a stop, and
 *   - which this scheduler has not started for its current job digest (scheduled.json, the scheduler's own
 *     record, written after each start, names another digest or is missing), and whose status.json is missing
 *     or of another digest: a new job.json makes a finished config pending again; or
 *   - for which control.json holds a start request the scheduler has not answered yet (its id differs from
 *     scheduled.json's startRequestId): `spot-sweep start`, and a deploy of a job.json that ended short of
 *     SUCCEEDED, ask the scheduler this way. Request ids, not clocks, decide: the CLI's and the instance's
 *     clocks may disagree.
 *   Every kill path leaves a config that is not pending: the scheduler's record of its start stands whatever
 *   ended the job (an idle alarm, the max runtime, the instance's own exit, a job that failed before its runner
 *   wrote status.json), and the budget guard and `spot-sweep stop` write a stop request to control.json. A
 *   config that ran before the cap existed (no scheduled.json) counts as started when status.json is of its
 *   digest; only a start request newer than that status.json (by its time: there is no id to compare) makes it
 *   pending.
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
export type NotPending = 'no group yet' | 'no job.json yet' | 'ran this job.json' | 'started for this job.json' | 'stop requested';

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

/** A config that may start, and the start request its start answers (null: none, its job's first run). */
interface Pending {
  readonly digest: string;
  readonly startRequestId: string | null;
}

/** The scheduler's record of its last start of `config`; undefined when there is none or it is unreadable. */
async function readScheduled(deps: ScheduleDeps, sweep: string, config: string): Promise<ScheduledJson | undefined> {
  const key = storeKeys.configFile(sweep, config, 'scheduled');
  const text = await deps.store.read(key);
  if (text === undefined) return undefined;
  try {
    const doc = JSON.parse(text) as unknown;
    if (contractProblems('scheduled', doc).length === 0) return doc as ScheduledJson;
  } catch {
    // Unreadable: as if absent, but said (the status.json rule still keeps a config that ran down).
  }
  deps.log('unreadable scheduled.json, ignored', { sweep, config, key });
  return undefined;
}

/** Whether a config at desired 0 may start, or why not. */
async function pending(deps: ScheduleDeps, sweep: string, config: string): Promise<Pending | NotPending> {
  const digest = await deps.jobDigest(config);
  if (digest === undefined) return 'no job.json yet';
  const { control } = await readControl(deps.store, sweep, config);
  if (control?.action === ACTION.stop) return 'stop requested';
  const startRequest = control?.action === ACTION.start ? control : undefined;
  const scheduled = await readScheduled(deps, sweep, config);
  if (scheduled?.jobDigest === digest) {
    // Started for this job.json already: again only for a start request that start did not answer.
    return startRequest !== undefined && startRequest.id !== scheduled.startRequestId ? { digest, startRequestId: startRequest.id } : 'started for this job.json';
  }
  const { status, problem } = await readStatus(deps.store, sweep, config);
  // An unreadable status.json was written by a runner, so a job ran: do not start it blindly.
  if (problem !== undefined) return 'ran this job.json';
  if (status?.jobDigest !== digest) return { digest, startRequestId: startRequest?.id ?? null };
  if (status.state === STATE.SUCCEEDED) return 'ran this job.json';
  // Ran before the scheduler kept records (maxParallel added to a running sweep): a start request newer than
  // the runner's last word asks for it again; the runner writes status.json as soon as it starts.
  if (startRequest !== undefined && typeof status.updatedAt === 'string' && Date.parse(startRequest.at) > Date.parse(status.updatedAt)) {
    return { digest, startRequestId: startRequest.id };
  }
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
  const candidates: { config: string; why: Pending }[] = [];
  for (const config of configs) {
    if (running.includes(config)) continue;
    if (!desired.has(groupName(sweep, config))) {
      done[config] = 'no group yet';
      continue;
    }
    const why = await pending(deps, sweep, config);
    if (typeof why === 'string') done[config] = why;
    else candidates.push({ config, why });
  }
  const free = Math.max(0, maxParallel - running.length);
  const chosen = candidates.slice(0, free);
  for (const { config, why } of chosen) {
    const group = groupName(sweep, config);
    try {
      await deps.startGroup(group);
    } catch (err) {
      throw new Error(`Could not start ${group} (UpdateAutoScalingGroup to min 0, max 1, desired 1): ${(err as Error).message}. The scheduler runs again within a minute; run spot-sweep start to start it yourself.`);
    }
    // After the start, never before: a run that dies in between leaves a group at desired 1 (running, so
    // counted) and no record, which the status.json rule covers once the job has run.
    const record: ScheduledJson = { version: 1, jobDigest: why.digest, startRequestId: why.startRequestId, at: new Date().toISOString() };
    await deps.store.write(storeKeys.configFile(sweep, config, 'scheduled'), `${JSON.stringify(record, null, 2)}\n`);
  }
  const started = chosen.map((c) => c.config);
  const result: ScheduleResult = { running, started, waiting: candidates.slice(free).map((c) => c.config), done };
  deps.log('scheduled', { sweep, maxParallel, ...result });
  return result;
}
