import { ACTION, ControlJson, EXIT_CODES, FINAL_STATES, groupName, OUTCOMES, REQUESTERS, STATE, StatusJson } from '../../contract';
import { readStatus, requestControl } from '../../store';
import { Command, OptionTable, SPEC_AND_CONFIG, targetConfigs } from '../args';
import { aws, AwsSession, openStore, sleep } from '../aws';
import { CliIo } from '../io';

/*
 * Why `stop` only writes control.json and scales the group, and never signals the instance (no SSM
 * Run Command, no pkill) nor writes status.json: the job runner reads control.json at start and at
 * every sync tick (30 s) and obeys a stop itself (SIGTERM to the trainer, checkpoint, upload, status
 * STOPPED with the request's reason and `stoppedBy`, exit EXIT_CODES.runner.stopped; the instance
 * then removes itself). One writer per file: status.json is the runner's alone, so `stop` waits to
 * read the STOPPED it writes. Scaling the group to zero afterwards is an independent kill path for a
 * runner that cannot obey.
 */

const STOPPED = STATE.STOPPED;

/** Between reads of status.json while waiting: the runner polls control.json every 30 s anyway. */
const POLL_MS = 5000;

/** Auto Scaling lifecycle states of an instance on its way out (not worth waiting for). */
const LEAVING = new Set(['Terminating', 'Terminating:Wait', 'Terminating:Proceed', 'Terminated']);

interface Target {
  readonly config: string;
  readonly group: string;
  readonly exists: boolean;
  /** Live instances of the group when stop started. */
  readonly instances: readonly string[];
  stateBefore: string;
  /** The stop request written to control.json. */
  request?: ControlJson;
  requestProblem?: string;
  /** Whether stop waited for this config's job (a request written and an instance to obey it). */
  waited?: boolean;
  /** status.json once final: the state, when it was written, and who the job says stopped it. */
  after?: { readonly state: string; readonly at?: string; readonly stoppedBy?: string };
  scaled?: boolean;
  scaleProblem?: string;
}

const options = {
  wait: { type: 'seconds', default: 150, help: 'how long to wait for each job to checkpoint and end STOPPED before scaling to zero' },
  reason: { type: 'string', value: 'TEXT', default: 'stopped with spot-sweep stop', help: 'why, as a sentence: it becomes the STOPPED message' },
} as const satisfies OptionTable;

export const stop: Command<typeof options> = {
  name: 'stop',
  summary: "stop a config (or every config): checkpoint, STOPPED, group scaled to 0",
  description: `
Writes a stop request into control.json of each targeted config that has not SUCCEEDED or FAILED;
the job runner reads it within 30 s, checkpoints, uploads and ends STOPPED (with --reason and who
asked). stop waits for that, reading status.json every 5 s, up to --wait seconds, then scales the
config's Auto Scaling group to 0/0/0 anyway, and reports per config what happened. A STOPPED config
stays stopped until a start request (spot-sweep start, or spot-sweep local).`,
  positionals: SPEC_AND_CONFIG,
  options,
  aws: true,
  exits: [['ok', 'every targeted group is at zero'], 'specError', 'usage', ['aws', 'AWS: no credentials, no region, a stack not deployed, or a group left running']],
  async run({ positionals, options: o }, io) {
    const { spec, configs } = targetConfigs(positionals);
    const session = await AwsSession.open(o, io.env);
    try {
      await session.requireSweepStack(spec);
      const { store } = await openStore(session, o);
      const targets = await describeTargets(session, spec.name, configs);
      const statusOf = async (config: string): Promise<Partial<StatusJson> | undefined> => (await readStatus(store, spec.name, config)).status;

      for (const t of targets) {
        t.stateBefore = (await statusOf(t.config))?.state ?? 'UNKNOWN';
        // A finished job has nothing to stop; any other (even one not started) gets the request, so
        // a runner that starts later obeys it at start.
        if (OUTCOMES.has(t.stateBefore)) continue;
        try {
          t.request = await requestControl(store, spec.name, t.config, { action: ACTION.stop, by: REQUESTERS.cli, reason: o.reason });
        } catch (err) {
          t.requestProblem = (err as Error).message;
        }
        // Only a running instance can obey: waiting for a config without one would only cost --wait.
        t.waited = t.request !== undefined && t.instances.length > 0 && !FINAL_STATES.has(t.stateBefore);
      }

      await waitForStops(targets, statusOf, o.wait, io);

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
      }

      io.out(`Stopping "${spec.name}" in ${session.region}:\n${targets.map((t) => `  ${report(t, o.wait)}`).join('\n')}\n`);
      const failed = targets.filter((t) => !t.scaled);
      if (failed.length > 0) {
        io.err(`spot-sweep stop: ${failed.length} group(s) not scaled to zero: ${failed.map((t) => t.config).join(', ')}; see above.\n`);
        return EXIT_CODES.cli.aws;
      }
      return EXIT_CODES.cli.ok;
    } finally {
      session.close();
    }
  },
};

async function describeTargets(session: AwsSession, sweep: string, configs: readonly string[]): Promise<Target[]> {
  const { DescribeAutoScalingGroupsCommand } = await import('@aws-sdk/client-auto-scaling');
  const groups = configs.map((c) => groupName(sweep, c));
  const found = new Map<string, string[]>();
  for (let i = 0; i < groups.length; i += 50) {
    // At most 50 names per call. @see https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DescribeAutoScalingGroups.html
    const r = await aws('Auto Scaling DescribeAutoScalingGroups', () =>
      session.autoScaling().send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: groups.slice(i, i + 50), MaxRecords: 100 })),
    );
    for (const g of r.AutoScalingGroups ?? []) {
      const live = (g.Instances ?? []).filter((x) => x.InstanceId && !LEAVING.has(x.LifecycleState ?? '')).map((x) => x.InstanceId as string);
      found.set(g.AutoScalingGroupName ?? '', live);
    }
  }
  return configs.map((config) => {
    const group = groupName(sweep, config);
    return { config, group, exists: found.has(group), instances: found.get(group) ?? [], stateBefore: 'UNKNOWN' };
  });
}

/** Reads status.json of every config stop waits for until each is final, `waitSeconds` pass, or Ctrl-C. */
async function waitForStops(
  targets: Target[],
  readStatus: (config: string) => Promise<Partial<StatusJson> | undefined>,
  waitSeconds: number,
  io: Pick<CliIo, 'signal'>,
): Promise<void> {
  const deadline = Date.now() + waitSeconds * 1000;
  let pending = targets.filter((t) => t.waited);
  while (pending.length > 0) {
    for (const t of pending) {
      const s = await readStatus(t.config);
      if (s?.state !== undefined && FINAL_STATES.has(s.state)) {
        const last = [...(s.history ?? [])].reverse().find((h) => h.state === s.state);
        t.after = { state: s.state, at: last?.at ?? s.updatedAt, stoppedBy: s.stoppedBy };
      }
    }
    pending = pending.filter((t) => t.after === undefined);
    if (pending.length === 0 || Date.now() >= deadline || io.signal?.aborted) return;
    await sleep(Math.min(POLL_MS, Math.max(0, deadline - Date.now())), io.signal);
  }
}

/** One line per config: what the job did, and what happened to its group. */
function report(t: Target, waitSeconds: number): string {
  const parts: string[] = [];
  if (OUTCOMES.has(t.stateBefore)) parts.push(`already ${t.stateBefore}; nothing to stop`);
  else if (t.requestProblem) parts.push(`could not write the stop request (${t.requestProblem}); the job was not asked to checkpoint`);
  else if (!t.waited && FINAL_STATES.has(t.stateBefore)) parts.push(`already ${t.stateBefore}; stop request recorded, so it stays stopped until a start request`);
  else if (!t.waited) parts.push(`no instance running (${t.stateBefore}); stop request recorded, so the job does not run until a start request`);
  else if (t.after === undefined) parts.push(`stop requested; the job did not stop within --wait ${waitSeconds} s, scaled to zero anyway (its last periodic checkpoint is kept)`);
  else if (t.after.state === STOPPED) parts.push(`stopped by the job at ${t.after.at ?? 'an unknown time'}${t.after.stoppedBy && t.after.stoppedBy !== REQUESTERS.cli ? ` (obeying ${t.after.stoppedBy})` : ''}, checkpoint saved`);
  else parts.push(`the job ended ${t.after.state} at ${t.after.at ?? 'an unknown time'} before it obeyed the stop`);
  if (!t.exists) parts.push(`no Auto Scaling group ${t.group}; deploy the sweep stack, or check the spec's name`);
  else parts.push(t.scaled ? `scaled ${t.group} to 0` : `could not scale ${t.group} to 0: ${t.scaleProblem}`);
  return `${t.config}: ${parts.join('; ')}`;
}
