import { rmSync } from 'node:fs';
import * as path from 'node:path';
import { EXIT_CODES, FINAL_STATES, groupName, METRICS, NAMES, REQUESTERS, STATE, StatusJson, storeKeys, sweepStackName } from '../../contract';
import { INSTANCES } from '../../cost/instances';
import { CanaryDeps, CanaryTimeouts } from './deps';
import { CANARY_CANDIDATES, CANARY_CONFIG, canaryDataPrefix, canarySweepName, writeCanarySpec } from './spec';

/**
 * The canary's orchestration: pick the GPU type, deploy the foundation if it is missing, upload the data
 * set, deploy a one-config sweep, then check each promise in the order the job keeps them, one checklist
 * line each with its timing. Whatever happens (a failed promise, a failed deploy, Ctrl-C) the sweep stack
 * is destroyed at the end and the uploaded data set deleted, unless `keep`.
 */

/** `ok` a promise held; `fail` it did not; `skip` not checked (an earlier one failed); `info` a measurement. */
export type CheckState = 'ok' | 'fail' | 'skip' | 'info';

export interface Check {
  readonly promise: string;
  readonly state: CheckState;
  /** How long it took to hold (or until the canary gave up). */
  readonly seconds?: number;
  readonly detail: string;
}

export interface CanaryRunOptions {
  /**
   * The run's spec and data set go into `<workRoot>/<sweep>/` (the spec is kept there, for
   * `cdk destroy -c sweep=FILE` after --keep and for `spot-sweep results FILE`).
   */
  readonly workRoot: string;
  /** Leave the stack and the data set deployed for a look. */
  readonly keep: boolean;
  readonly timeouts: CanaryTimeouts;
  /** Ctrl-C: stop checking, then tear down. */
  readonly signal?: AbortSignal;
  /** Progress and the final checklist. */
  readonly out: (text: string) => void;
}

export interface CanaryResult {
  readonly sweep: string;
  readonly checks: readonly Check[];
  readonly interrupted: boolean;
  /** What the teardown removed, as phrases. */
  readonly destroyed: readonly string[];
  /** What the teardown could not remove, each with the command that does. */
  readonly leftBehind: readonly string[];
  /** EXIT_CODES.cli: ok, someFailed (a promise failed, or Ctrl-C), aws (something was left deployed). */
  readonly code: number;
}

/**
 * The runner's log line of an attempt that fetched checkpoints from the store (training/spot_runner/job.py,
 * run_trainer): the evidence that `start` resumed rather than started over. status.json has no field for it.
 */
export const RESUME_LOG_LINE = 'resuming: checkpoint(s) from the store: ';
/** The header the runner writes into train.log at the start of each attempt (training/spot_runner/job.py). */
const ATTEMPT_HEADER = /^=== attempt (\d+) on .*===$/;

class Interrupted extends Error {}

const STOPPED = STATE.STOPPED;
const SUCCEEDED = STATE.SUCCEEDED;
const TRAINING = STATE.TRAINING;
const BOOTSTRAPPING = STATE.BOOTSTRAPPING;

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const obj = (v: unknown): Record<string, unknown> | undefined => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);

export async function runCanary(deps: CanaryDeps, o: CanaryRunOptions): Promise<CanaryResult> {
  const checks: Check[] = [];
  const started = deps.now();
  const sweep = canarySweepName(started);
  const stack = sweepStackName(sweep);
  const group = groupName(sweep, CANARY_CONFIG);
  const workDir = path.join(o.workRoot, sweep);
  const configKey = (file: Parameters<typeof storeKeys.configFile>[2]): string => storeKeys.configFile(sweep, CANARY_CONFIG, file);
  const seconds = (since: Date): number => (deps.now().getTime() - since.getTime()) / 1000;

  const record = (check: Check): Check => {
    checks.push(check);
    o.out(`${checkLine(check)}\n`);
    return check;
  };
  const guard = (): void => {
    if (o.signal?.aborted) throw new Interrupted();
  };
  /** Polls `probe` until it returns a value, `timeoutSeconds` pass, or Ctrl-C (which throws). */
  const waitFor = async <T>(timeoutSeconds: number, probe: () => Promise<T | undefined>): Promise<{ value?: T; seconds: number }> => {
    const from = deps.now();
    for (;;) {
      guard();
      const value = await probe();
      const elapsed = seconds(from);
      if (value !== undefined) return { value, seconds: elapsed };
      if (elapsed >= timeoutSeconds) return { seconds: elapsed };
      await deps.sleep(Math.min(o.timeouts.poll, timeoutSeconds - elapsed) * 1000, o.signal);
    }
  };
  const status = (): Promise<Partial<StatusJson> | undefined> => deps.readStatus(sweep, CANARY_CONFIG);

  let specFile: string | undefined;
  let sweepDeployStarted = false;
  let dataset: { bucket: string; prefix: string; keys: string[] } | undefined;
  let instanceType: string | undefined;
  let deployedAt: Date | undefined;
  let removedAt: Date | undefined;
  let interrupted = false;
  let step = 'picking the instance type';

  o.out(`Canary "${sweep}": every promise on a real instance, then everything destroyed${o.keep ? ' (--keep: left deployed)' : ''}.\n`);
  try {
    const pick = await deps.pickInstanceType(CANARY_CANDIDATES);
    if (pick.instanceType === undefined) {
      record({ promise: 'a GPU type this account can launch as spot', state: 'fail', detail: pick.reason });
      return finish();
    }
    instanceType = pick.instanceType;
    record({ promise: 'a GPU type this account can launch as spot', state: 'ok', detail: `${instanceType}: ${pick.reason}` });
    guard();

    step = 'checking the foundation';
    let bucket = await deps.foundationBucket();
    if (bucket === undefined) {
      step = 'deploying the foundation';
      o.out('The foundation is not deployed here: deploying it (it stays; every sweep needs it)...\n');
      const t = deps.now();
      await deps.deployFoundation();
      bucket = await deps.foundationBucket();
      if (bucket === undefined) throw new Error('the foundation deployed, but its stack has no artifact bucket output');
      record({ promise: 'the foundation is deployed', state: 'ok', seconds: seconds(t), detail: `deployed now; bucket ${bucket}` });
    } else {
      record({ promise: 'the foundation is deployed', state: 'ok', detail: `bucket ${bucket}` });
    }
    guard();

    step = 'uploading the data set';
    const dataDir = path.join(workDir, 'data');
    const prefix = canaryDataPrefix(sweep);
    let t = deps.now();
    await deps.makeDataset(dataDir);
    dataset = { bucket, prefix, keys: [] };
    dataset.keys = await deps.uploadDataset(dataDir, bucket, prefix);
    rmSync(dataDir, { recursive: true, force: true });
    record({ promise: 'the synthetic data set is in the bucket', state: 'ok', seconds: seconds(t), detail: `${dataset.keys.length} files under s3://${bucket}/${prefix}` });
    guard();

    step = `deploying ${stack}`;
    specFile = writeCanarySpec(workDir, sweep, instanceType, `s3://${bucket}/${prefix}`).file;
    o.out(`Deploying ${stack} (spec ${specFile}; if this process is killed, remove it with npx cdk destroy -e --force ${stack} -c sweep=${specFile})...\n`);
    t = deps.now();
    sweepDeployStarted = true;
    try {
      await deps.deploySweep(specFile);
    } catch (err) {
      record({ promise: `cdk deploy of ${stack}`, state: 'fail', seconds: seconds(t), detail: (err as Error).message });
      return finish();
    }
    deployedAt = deps.now();
    record({ promise: `cdk deploy of ${stack}`, state: 'ok', seconds: seconds(t), detail: `one config on ${instanceType} spot` });

    await checkPromises(deployedAt);
  } catch (err) {
    if (err instanceof Interrupted) interrupted = true;
    else record({ promise: step, state: 'fail', detail: (err as Error).message });
  }
  return finish();

  /** The promises, in the order the job keeps them; a missing precondition skips the ones after it. */
  async function checkPromises(since: Date): Promise<void> {
    step = 'waiting for the job to start';
    const begun = await waitFor(o.timeouts.jobStart, async () => {
      const s = await status();
      return s && (s.history ?? []).some((h) => h.state === BOOTSTRAPPING) ? s : undefined;
    });
    const association = 'the association starts the job (status.json BOOTSTRAPPING)';
    if (!begun.value) return skipRest(record({ promise: association, state: 'fail', seconds: begun.seconds, detail: `no status.json with BOOTSTRAPPING after ${timing(begun.seconds)}: see spot-sweep status (launch problems) and the association's runs in Systems Manager` }));
    record({ promise: association, state: 'ok', seconds: begun.seconds, detail: `on ${begun.value.instanceType ?? '?'} (${begun.value.market ?? '?'}), ${timing(begun.seconds)} after the deploy` });

    step = 'waiting for the first training step';
    const training = await waitFor(o.timeouts.firstStep, async () => {
      const s = await status();
      if (s?.state !== undefined && FINAL_STATES.has(s.state)) return s;
      return s?.state === TRAINING && (num(s.step) ?? 0) > 0 ? s : undefined;
    });
    const firstStep = 'the bootstrap ends in training (status.json TRAINING, a step done)';
    if (!training.value || training.value.state !== TRAINING) {
      const why = training.value ? `the job ended ${training.value.state}: ${training.value.message ?? 'no message'}` : `no training step after ${timing(training.seconds)}`;
      return skipRest(record({ promise: firstStep, state: 'fail', seconds: training.seconds, detail: `${why}; spot-sweep logs shows the bootstrap's output` }));
    }
    record({ promise: firstStep, state: 'ok', seconds: training.seconds, detail: `step ${training.value.step}, ${timing(training.seconds)} after BOOTSTRAPPING was seen` });

    step = 'stopping mid-training';
    const checkpoint = await checkStop();
    if (checkpoint === undefined) return skipRest();

    step = 'starting again';
    const resumed = await checkResume(checkpoint);

    step = 'reading the GPU metrics';
    const metrics = await waitFor(o.timeouts.metrics, async () => {
      const d = await deps.gpuDatapoints(group, since, deps.now());
      return d.count > 0 ? d : undefined;
    });
    const metricName = `${METRICS.agentNamespace} ${METRICS.gpuUtilization} {${METRICS.dimensions.group}=${group}}`;
    record(
      metrics.value
        ? { promise: 'GPU metrics arrive as the idle alarm reads them (no unit)', state: 'ok', seconds: metrics.seconds, detail: `${metrics.value.count} datapoints of ${metricName}, published with unit ${metrics.value.units.join(', ') || '(none)'}` }
        : { promise: 'GPU metrics arrive as the idle alarm reads them (no unit)', state: 'fail', seconds: metrics.seconds, detail: `no datapoint of ${metricName} read without a unit: the idle alarm would stay INSUFFICIENT_DATA and never stop an idle instance` },
    );
    if (!resumed) return skipRest();

    step = 'waiting for results.json and report.html';
    const landed = await waitFor(o.timeouts.results, async () => {
      const [results, report] = await Promise.all([deps.readText(configKey('results')), deps.readText(storeKeys.sweepFile(sweep, 'report'))]);
      return results !== undefined && report !== undefined ? results : undefined;
    });
    let results: Record<string, unknown> | undefined;
    if (landed.value === undefined) {
      record({ promise: 'results.json and report.html land', state: 'fail', seconds: landed.seconds, detail: `missing after ${timing(landed.seconds)}: ${configKey('results')} or ${storeKeys.sweepFile(sweep, 'report')} (the results collector writes the report)` });
    } else {
      try {
        results = obj(JSON.parse(landed.value));
      } catch {
        results = undefined;
      }
      const mean = num(obj(results?.ndcg10)?.mean);
      record(
        results
          ? { promise: 'results.json and report.html land', state: 'ok', seconds: landed.seconds, detail: `nDCG@10 ${mean === undefined ? '?' : mean.toFixed(4)}; ${configKey('results')}, ${storeKeys.sweepFile(sweep, 'report')}` }
          : { promise: 'results.json and report.html land', state: 'fail', seconds: landed.seconds, detail: `${configKey('results')} is not a JSON object` },
      );
    }
    for (const line of setupLines(results)) record(line);

    step = 'waiting for the instance to remove itself';
    // Its own removal first: desired 0 soon after the job ended, before any alarm could have scaled it in.
    const decremented = await waitFor(o.timeouts.selfRemoval, async () => {
      const g = await deps.group(group);
      return g && g.desired === 0 ? g : undefined;
    });
    const removal = decremented.value
      ? await waitFor(o.timeouts.removal, async () => {
          const g = await deps.group(group);
          return g && g.desired === 0 && g.instances === 0 ? g : undefined;
        })
      : { value: undefined, seconds: decremented.seconds };
    if (removal.value) removedAt = deps.now();
    const last = removal.value ? undefined : await deps.group(group);
    record(
      removal.value
        ? { promise: 'the instance removes itself (group desired 0, no instance)', state: 'ok', seconds: removal.seconds, detail: `${group} at desired 0 with no instance` }
        : {
            promise: 'the instance removes itself (group desired 0, no instance)',
            state: 'fail',
            seconds: removal.seconds,
            detail: !decremented.value
              ? `${group} was not at desired 0 within ${o.timeouts.selfRemoval} s of the job's end (${last ? `desired ${last.desired}, ${last.instances} instance(s)` : 'group not found'}): the instance did not remove itself; see bootstrap.log's "self-removal" lines`
              : last
                ? `${group} still at desired ${last.desired} with ${last.instances} instance(s)`
                : `${group} not found`,
          },
    );
  }

  /** Stops the job mid-training with `spot-sweep stop`; the newest checkpoint name, or undefined when the promise failed. */
  async function checkStop(): Promise<string | undefined> {
    const promise = 'a stop request mid-training checkpoints (STOPPED, a checkpoint in the store)';
    const t = deps.now();
    const printed = await deps.stop(specFile as string, o.timeouts.stop);
    o.out(indent(printed));
    guard();
    const s = await status();
    const prefix = configKey('checkpoints');
    const digest = NAMES.trainerOut.checkpointDigestSuffix;
    const saved = (await deps.listKeys(prefix)).filter((k) => !k.endsWith(digest)).map((k) => k.slice(prefix.length)).sort();
    if (s?.state === SUCCEEDED) {
      record({ promise, state: 'fail', seconds: seconds(t), detail: 'training ended SUCCEEDED before the runner read the stop request (it polls control.json every 30 s): the canary data set is too small for this GPU (lib/cli/canary/spec.ts)' });
      return undefined;
    }
    if (s?.state !== STOPPED) {
      record({ promise, state: 'fail', seconds: seconds(t), detail: `status.json is ${s?.state ?? 'missing'} after spot-sweep stop --wait ${o.timeouts.stop}${s?.message ? `: ${s.message}` : ''}` });
      return undefined;
    }
    if (s.stoppedBy !== REQUESTERS.cli) {
      record({ promise, state: 'fail', seconds: seconds(t), detail: `STOPPED by ${s.stoppedBy ?? 'nobody named'}, not by the stop request (${REQUESTERS.cli})` });
      return undefined;
    }
    if (saved.length === 0) {
      record({ promise, state: 'fail', seconds: seconds(t), detail: `STOPPED, but no checkpoint under ${prefix}: start would begin again from scratch` });
      return undefined;
    }
    const newest = saved[saved.length - 1];
    record({ promise, state: 'ok', seconds: seconds(t), detail: `STOPPED at attempt ${s.attempts ?? '?'} (fold ${num(s.fold) === undefined ? '?' : (s.fold as number) + 1}, step ${s.step ?? '?'}); ${newest} in ${prefix}` });
    return newest;
  }

  /** `spot-sweep start`, then the job's end; whether the next attempt resumed from the stop's checkpoints. */
  async function checkResume(checkpoint: string): Promise<boolean> {
    const promise = '`start` resumes from that checkpoint';
    const before = (await status())?.attempts ?? 0;
    const t = deps.now();
    o.out(indent(await deps.start(specFile as string)));
    const done = await waitFor(o.timeouts.resume, async () => {
      const s = await status();
      return s && (s.attempts ?? 0) > before && s.state !== undefined && FINAL_STATES.has(s.state) ? s : undefined;
    });
    if (!done.value) {
      record({ promise, state: 'fail', seconds: done.seconds, detail: `no attempt after ${before} ended within ${timing(done.seconds)}` });
      return false;
    }
    if (done.value.state !== SUCCEEDED) {
      record({ promise, state: 'fail', seconds: done.seconds, detail: `attempt ${done.value.attempts} ended ${done.value.state}: ${done.value.message ?? 'no message'}` });
      return false;
    }
    const log = (await deps.readText(configKey('log'))) ?? '';
    const line = resumedLine(log, before);
    if (line === undefined || !line.includes(checkpoint)) {
      record({ promise, state: 'fail', seconds: done.seconds, detail: line === undefined ? `attempt ${done.value.attempts} SUCCEEDED but started over: ${configKey('log')} has no "${RESUME_LOG_LINE.trim()}" line after attempt ${before}` : `attempt ${done.value.attempts} resumed from other checkpoints than ${checkpoint}: ${line.trim()}` });
      return false;
    }
    record({ promise, state: 'ok', seconds: seconds(t), detail: `attempt ${done.value.attempts} resumed from ${checkpoint} and SUCCEEDED` });
    return true;
  }

  function skipRest(_failed?: Check): void {
    const done = new Set(checks.map((c) => c.promise));
    for (const promise of LATER_PROMISES) {
      if (!done.has(promise)) record({ promise, state: 'skip', detail: 'not checked: an earlier promise failed' });
    }
  }

  async function finish(): Promise<CanaryResult> {
    if (interrupted) o.out(`Interrupted (Ctrl-C) while ${step}: tearing down what the canary deployed...\n`);
    const destroyed: string[] = [];
    const leftBehind: string[] = [];
    const destroyCommand = specFile ? `npx cdk destroy -e --force ${stack} -c sweep=${specFile}` : '';
    if (o.keep) {
      if (sweepDeployStarted) leftBehind.push(`${stack} (--keep): destroy it with ${destroyCommand}`);
      if (dataset && dataset.keys.length > 0) leftBehind.push(`the data set s3://${dataset.bucket}/${dataset.prefix} (--keep): aws s3 rm --recursive s3://${dataset.bucket}/${dataset.prefix}`);
    } else {
      if (sweepDeployStarted) {
        o.out(`Destroying ${stack}...\n`);
        try {
          await deps.destroySweep(specFile as string);
          destroyed.push(`stack ${stack} (its group, instance, launch template, association, alarms, Lambdas)`);
        } catch (err) {
          leftBehind.push(`${stack}: cdk destroy failed (${(err as Error).message}); run ${destroyCommand}`);
        }
      }
      if (dataset && dataset.keys.length > 0) {
        try {
          await deps.removeDataset(dataset.bucket, dataset.keys);
          destroyed.push(`${dataset.keys.length} data set objects under s3://${dataset.bucket}/${dataset.prefix}`);
        } catch (err) {
          leftBehind.push(`the data set s3://${dataset.bucket}/${dataset.prefix}: ${(err as Error).message}`);
        }
      }
    }
    const failed = checks.filter((c) => c.state === 'fail');
    const total = seconds(started);
    const lines = [
      '',
      `Canary checklist of "${sweep}"${instanceType ? ` on ${instanceType} spot` : ''}:`,
      ...checks.map((c) => checkLine(c)),
      ...(interrupted ? [`  STOP  interrupted by Ctrl-C while ${step}`] : []),
      `Total ${timing(total)}; ${await costLine()}`,
      destroyed.length > 0 ? `Destroyed: ${destroyed.join('; ')}.` : 'Destroyed: nothing (nothing was deployed, or --keep).',
      ...leftBehind.map((l) => `LEFT DEPLOYED: ${l}`),
      ...(sweepDeployStarted ? [`Kept: ${storeKeys.sweep(sweep)} in the bucket (status, train.log, results: spot-sweep results ${specFile}).`] : []),
      failed.length > 0 ? `${failed.length} promise(s) failed: ${failed.map((c) => c.promise).join('; ')}.` : interrupted ? 'Interrupted: the promises after that were not checked.' : 'Every promise held.',
      '',
    ];
    o.out(lines.join('\n'));
    const code = leftBehind.length > 0 && !o.keep ? EXIT_CODES.cli.aws : failed.length > 0 || interrupted ? EXIT_CODES.cli.someFailed : EXIT_CODES.cli.ok;
    return { sweep, checks, interrupted, destroyed, leftBehind, code };
  }

  /** spend.json's total when the budget guard has written it, else instance time x the table's spot price. */
  async function costLine(): Promise<string> {
    if (!sweepDeployStarted) return 'cost $0.00 (nothing launched)';
    let total: number | undefined;
    try {
      const text = await deps.readText(storeKeys.sweepFile(sweep, 'spend'));
      total = text === undefined ? undefined : num(obj(JSON.parse(text))?.totalUsd);
    } catch {
      total = undefined;
    }
    if (total !== undefined) return `cost $${total.toFixed(2)} (spend.json, the budget guard's ledger)`;
    const price = instanceType ? INSTANCES.get(instanceType)?.spotUsdPerHour : undefined;
    if (!deployedAt || price === undefined) return 'cost not known (no spend.json, and the instance never ran)';
    const hours = ((removedAt ?? deps.now()).getTime() - deployedAt.getTime()) / 3_600_000;
    return `cost at most about $${(hours * price).toFixed(2)} (no spend.json yet: ${timing(hours * 3600)} from deploy to removal x $${price}/h typical spot)`;
  }
}

/** The promises after the first training step, for `skip` lines when an earlier one failed. */
const LATER_PROMISES = [
  'a stop request mid-training checkpoints (STOPPED, a checkpoint in the store)',
  '`start` resumes from that checkpoint',
  'GPU metrics arrive as the idle alarm reads them (no unit)',
  'results.json and report.html land',
  'the instance removes itself (group desired 0, no instance)',
];

/** The runner's resume line in an attempt after `afterAttempt`, or undefined when none resumed. */
export function resumedLine(log: string, afterAttempt: number): string | undefined {
  let attempt = 0;
  for (const line of log.split('\n')) {
    const header = ATTEMPT_HEADER.exec(line.trim());
    if (header) attempt = Number(header[1]);
    else if (attempt > afterAttempt && line.includes(RESUME_LOG_LINE)) return line;
  }
  return undefined;
}

/**
 * The bootstrap phases and the launch-to-first-step time from results.json `job.setup` (written by the job
 * runner of a version that records them), read defensively: any part missing prints "not recorded".
 */
export function setupLines(results: Record<string, unknown> | undefined): Check[] {
  const setup = obj(obj(results?.job)?.setup);
  const phases = Array.isArray(setup?.phases) ? setup.phases.map(obj).filter((p): p is Record<string, unknown> => p !== undefined) : [];
  const lines: Check[] = phases
    .filter((p) => typeof p.name === 'string' && num(p.seconds) !== undefined)
    .map((p) => ({ promise: `bootstrap phase ${p.name as string}`, state: 'info' as const, seconds: num(p.seconds), detail: 'results.json job.setup' }));
  if (lines.length === 0) lines.push({ promise: 'bootstrap phases', state: 'info', detail: 'not recorded (results.json has no job.setup.phases)' });
  const toFirstStep = num(setup?.bootToFirstStepSeconds);
  lines.push(
    toFirstStep === undefined
      ? { promise: 'launch to first training step', state: 'info', detail: 'not recorded (results.json has no job.setup.bootToFirstStepSeconds)' }
      : { promise: 'launch to first training step', state: 'info', seconds: toFirstStep, detail: `booted ${typeof setup?.bootedAt === 'string' ? setup.bootedAt : '?'}, first step ${typeof setup?.firstStepAt === 'string' ? setup.firstStepAt : '?'}` },
  );
  return lines;
}

const MARKS: Readonly<Record<CheckState, string>> = { ok: 'ok  ', fail: 'FAIL', skip: '-   ', info: 'info' };

/** `95 s`, `3 min 32 s`, `1 h 05 min`: a checklist timing, to the second under an hour. */
export function timing(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 120) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** `  ok    the association starts the job (status.json BOOTSTRAPPING)  [4 min 10 s]: on g4dn.xlarge (spot), ...` */
export function checkLine(c: Check): string {
  const time = c.seconds === undefined ? '' : `  [${timing(c.seconds)}]`;
  // A multi-line detail (cdk's last lines) stays under its line.
  return `  ${MARKS[c.state]}  ${c.promise}${time}: ${c.detail.split('\n').join('\n        ')}`;
}

function indent(text: string): string {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => `    | ${l}\n`)
    .join('');
}
