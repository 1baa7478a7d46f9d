import { aws, AwsOptions, AwsSession, AwsSetupError, bucketStore, BucketStore, FINAL_STATES, groupName, loadSweep, parseArgs, seconds, sleep, UsageError } from './aws';
import { parseObject } from './status';

export const STOP_USAGE = 'spot-sweep stop <spec.json> [config] [--wait SECONDS] [--region R] [--bucket NAME]';

/**
 * How long `stop` lets a job checkpoint before scaling its group to zero. The runner gives the
 * trainer 100 s after SIGTERM (`--grace-seconds`), then uploads the checkpoint and the log.
 */
const DEFAULT_WAIT_SECONDS = 150;
const POLL_MS = 5000;

/**
 * The command sent to the config's instances: SIGTERM the job runner (which forwards it to the
 * trainer, waits for its checkpoint, uploads it and exits 75; bootstrap.sh keeps the instance on 75),
 * then wait for the runner to exit so the command's end means "checkpoint uploaded". The bracket in
 * the pattern keeps pkill/pgrep from matching this script's own command line.
 */
export function stopScript(waitSeconds: number): string {
  const polls = Math.max(1, Math.ceil(waitSeconds / 2));
  return [
    "if ! pkill -TERM -f '[t]wo_tower[.]job'; then echo 'no job runner running'; exit 0; fi",
    `for _ in $(seq ${polls}); do`,
    "  if ! pgrep -f '[t]wo_tower[.]job' >/dev/null; then echo 'job runner exited'; exit 0; fi",
    '  sleep 2',
    'done',
    "echo 'job runner still running'; exit 1",
  ].join('\n');
}

/**
 * Command states after which nothing more happens (ListCommands `Status`).
 * @see https://docs.aws.amazon.com/systems-manager/latest/userguide/monitor-commands.html
 */
const COMMAND_DONE = new Set(['Success', 'Failed', 'Cancelled', 'TimedOut']);

interface Target {
  readonly config: string;
  readonly group: string;
  readonly exists: boolean;
  readonly instances: readonly string[];
  stateBefore: string;
  commandId?: string;
  signalProblem?: string;
  waited?: string;
  scaled?: boolean;
  scaleProblem?: string;
  stateAfter?: string;
}

export interface StopIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
}

/**
 * `spot-sweep stop`: for the config (or every config), asks the running job to checkpoint and stop
 * (SSM Run Command, AWS-RunShellScript), waits up to `--wait` seconds for it, scales the config's
 * Auto Scaling group to 0/0/0 and marks status.json STOPPED (other fields kept; a SUCCEEDED or
 * FAILED config keeps its state). Exit 0 when every group is at zero, 5 otherwise.
 */
export async function runStop(args: readonly string[], io: StopIo): Promise<number> {
  const parsed = parseArgs(args, { values: ['--wait'] });
  const [specFile, only, ...extra] = parsed.positional;
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"; stop takes one config or none (all).`);
  const spec = loadSweep(specFile, STOP_USAGE);
  const names = spec.configs.map((c) => c.name);
  if (only !== undefined && !names.includes(only)) throw new UsageError(`the sweep "${spec.name}" has no config "${only}"; its configs are ${names.join(', ')}.`);
  const wait = seconds('--wait', parsed.values.get('--wait'), DEFAULT_WAIT_SECONDS);
  const options: AwsOptions = { region: parsed.values.get('--region'), bucket: parsed.values.get('--bucket') };
  const session = await AwsSession.open(options, io.env);
  try {
    await session.requireSweepStack(spec);
    const store = await bucketStore(session, await session.bucket(options));
    const configs = only !== undefined ? [only] : names;
    const targets = await describeTargets(session, spec.name, configs);
    const statusKey = (c: string): string => `sweeps/${spec.name}/${c}/status.json`;

    for (const t of targets) {
      const status = parseObject(await store.read(statusKey(t.config)), 'status.json').value;
      t.stateBefore = typeof status?.state === 'string' ? status.state : 'UNKNOWN';
      // Marked first, so the runner, which reads the state when it is interrupted, ends STOPPED
      // rather than PENDING (PENDING would let a replacement instance resume the job).
      if (t.exists && status && !FINAL_STATES.has(t.stateBefore)) await markStopped(store, statusKey(t.config), 'stop requested with spot-sweep stop');
      if (t.instances.length > 0) await signal(session, spec.name, t, wait);
    }

    const started = Date.now();
    await waitForCommands(session, targets, started + wait * 1000);

    const { UpdateAutoScalingGroupCommand } = await import('@aws-sdk/client-auto-scaling');
    for (const t of targets) {
      if (!t.exists) continue;
      try {
        await aws(`Auto Scaling UpdateAutoScalingGroup ${t.group}`, () =>
          session.autoScaling().send(new UpdateAutoScalingGroupCommand({ AutoScalingGroupName: t.group, MinSize: 0, MaxSize: 0, DesiredCapacity: 0 })),
        );
        t.scaled = true;
      } catch (err) {
        t.scaleProblem = (err as Error).message;
      }
      const status = parseObject(await store.read(statusKey(t.config)), 'status.json').value;
      const state = typeof status?.state === 'string' ? status.state : 'UNKNOWN';
      if (state === 'SUCCEEDED' || state === 'FAILED') {
        t.stateAfter = state;
      } else {
        await markStopped(store, statusKey(t.config), 'stopped with spot-sweep stop');
        t.stateAfter = 'STOPPED';
      }
    }

    io.out(`Stopping "${spec.name}" in ${session.region}:\n${targets.map((t) => `  ${report(t)}`).join('\n')}\n`);
    const failed = targets.filter((t) => !t.scaled);
    if (failed.length > 0) {
      io.err(`spot-sweep stop: ${failed.length} group(s) not scaled to zero: ${failed.map((t) => t.config).join(', ')}; see above.\n`);
      return 5;
    }
    return 0;
  } finally {
    session.close();
  }
}

async function describeTargets(session: AwsSession, sweep: string, configs: readonly string[]): Promise<Target[]> {
  const { DescribeAutoScalingGroupsCommand } = await import('@aws-sdk/client-auto-scaling');
  const groups = configs.map((c) => groupName(sweep, c));
  const found = new Map<string, string[]>();
  for (let i = 0; i < groups.length; i += 50) {
    const r = await aws('Auto Scaling DescribeAutoScalingGroups', () =>
      session.autoScaling().send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: groups.slice(i, i + 50), MaxRecords: 100 })),
    );
    for (const g of r.AutoScalingGroups ?? []) {
      const live = (g.Instances ?? []).filter((x) => x.InstanceId && !/^Terminat/.test(x.LifecycleState ?? '')).map((x) => x.InstanceId as string);
      found.set(g.AutoScalingGroupName ?? '', live);
    }
  }
  return configs.map((config) => {
    const group = groupName(sweep, config);
    return { config, group, exists: found.has(group), instances: found.get(group) ?? [], stateBefore: 'UNKNOWN' };
  });
}

/** Merges state STOPPED into status.json, keeping every other field. */
async function markStopped(store: BucketStore, key: string, message: string): Promise<void> {
  const current = parseObject(await store.read(key), 'status.json').value ?? {};
  const interrupted = typeof current.message === 'string' && /interrupted/.test(current.message);
  const doc = { ...current, state: 'STOPPED', message: interrupted ? current.message : message, updatedAt: new Date().toISOString() };
  await store.write(key, `${JSON.stringify(doc, null, 2)}\n`);
}

async function signal(session: AwsSession, sweep: string, t: Target, waitSeconds: number): Promise<void> {
  const { SendCommandCommand } = await import('@aws-sdk/client-ssm');
  try {
    // AWS-RunShellScript takes `commands` and `executionTimeout` (seconds, as strings).
    // @see https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_SendCommand.html
    const r = await session.ssm().send(
      new SendCommandCommand({
        DocumentName: 'AWS-RunShellScript',
        InstanceIds: [...t.instances],
        Comment: `spot-sweep stop ${sweep}/${t.config}`,
        Parameters: { commands: [stopScript(waitSeconds)], executionTimeout: [String(Math.ceil(waitSeconds) + 60)] },
      }),
    );
    t.commandId = r.Command?.CommandId;
  } catch (err) {
    const e = err as Error;
    t.signalProblem = `could not signal the job (${e.name}: ${e.message.split('\n')[0]}); it stops without a last checkpoint, the periodic ones are kept`;
    if (e instanceof AwsSetupError) t.signalProblem = e.message;
  }
}

/** Waits until every sent command has finished on every instance, or until `deadline`. */
async function waitForCommands(session: AwsSession, targets: Target[], deadline: number): Promise<void> {
  const { ListCommandsCommand } = await import('@aws-sdk/client-ssm');
  const started = Date.now();
  let pending = targets.filter((t) => t.commandId !== undefined);
  while (pending.length > 0) {
    const still: Target[] = [];
    for (const t of pending) {
      let status = '';
      try {
        // The command's overall status; it ends when it has ended on every instance.
        status = (await session.ssm().send(new ListCommandsCommand({ CommandId: t.commandId }))).Commands?.[0]?.Status ?? '';
      } catch {
        status = '';
      }
      if (COMMAND_DONE.has(status)) {
        const outcome = status === 'Success' ? 'the job checkpointed and exited' : `the stop command ended ${status}`;
        t.waited = `${outcome} after ${Math.round((Date.now() - started) / 1000)} s`;
      } else {
        still.push(t);
      }
    }
    pending = still;
    if (pending.length === 0) return;
    if (Date.now() >= deadline) {
      for (const t of pending) t.waited = `the job had not exited after ${Math.round((Date.now() - started) / 1000)} s (--wait); scaling to zero anyway (its last periodic checkpoint is kept)`;
      return;
    }
    await sleep(Math.min(POLL_MS, Math.max(0, deadline - Date.now())));
  }
}

function report(t: Target): string {
  if (!t.exists) return `${t.config}: no Auto Scaling group ${t.group}; deploy the sweep stack, or check the spec's name`;
  const parts: string[] = [];
  if (t.instances.length === 0) parts.push(`no instance running (${t.stateBefore})`);
  else if (t.signalProblem) parts.push(`${t.instances.join(', ')}: ${t.signalProblem}`);
  else parts.push(`asked the job on ${t.instances.join(', ')} to checkpoint and stop (SIGTERM); ${t.waited ?? 'no answer'}`);
  parts.push(t.scaled ? `scaled ${t.group} to 0` : `could not scale ${t.group} to 0: ${t.scaleProblem}`);
  parts.push(t.stateAfter === 'STOPPED' ? 'status STOPPED' : `status stays ${t.stateAfter}`);
  return `${t.config}: ${parts.join('; ')}`;
}
