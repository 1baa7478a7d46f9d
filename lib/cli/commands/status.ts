import type { Instance } from '@aws-sdk/client-ec2';
import { ACTION, CONFIG_FILES, contractProblems, ControlJson, EXIT_CODES, FINAL_STATES, groupName, RUNNING_STATES, SpendJson, STATE, StatusJson, storeKeys, SWEEP_FILES, sweepStackName, TAGS } from '../../contract';
import { loadSpec } from '../../spec/load';
import { SweepSpec } from '../../spec/types';
import { describeRequest, parseControl, SweepStore } from '../../store';
import { Command, OptionTable, UsageError } from '../args';
import { aws, AwsSession, openStore, sleep } from '../aws';
import { Paint, paintState, painter, wantsColour } from '../io';
import { describeLaunchProblem, LaunchProblem, launchProblem, ScalingActivity } from '../launch-problems';

/** A running (or starting, or stopping) instance of a config. */
export interface InstanceView {
  readonly id: string;
  readonly type: string;
  /** `spot` or `on-demand`, from EC2's InstanceLifecycle. */
  readonly market: string;
  readonly state: string;
}

/** A control.json request the job has not acted on yet. */
export interface PendingRequest {
  readonly action: ControlJson['action'];
  readonly by: string;
  readonly at: string;
  readonly reason: string;
}

/**
 * Everything `status` shows about one config: status.json (the job runner's), control.json (the
 * requesters'), the config's spend from spend.json (the budget guard's), and its instances and group.
 */
export interface ConfigView {
  readonly config: string;
  /** status.json's state; `UNKNOWN` when there is none (or it is unreadable). */
  readonly state: string;
  /** Whether the state is final (names.json states.final). */
  readonly final: boolean;
  /** status.json as stored (fold and epoch are its 0-based indexes); undefined when missing or not JSON. */
  readonly status?: Partial<StatusJson>;
  /** The latest request in control.json; undefined when nobody asked anything. */
  readonly control?: ControlJson;
  /** A stop the job has not obeyed yet (state not final), or a start on a STOPPED job. */
  readonly pendingRequest?: PendingRequest;
  /** Who stopped a STOPPED job (status.json stoppedBy). */
  readonly stoppedBy?: string;
  /** spend.json `configs[<config>].usd`; undefined until the guard has priced an instance of it. */
  readonly spendUsd?: number;
  readonly instances: readonly InstanceView[];
  /** The config's Auto Scaling group capacity; undefined when the group does not exist. */
  readonly group?: { readonly desired: number; readonly min: number; readonly max: number };
  /** Why the group has no instance although it wants one: its recent launches failed (lib/cli/launch-problems.ts). */
  readonly launch?: LaunchProblem;
}

/** The merged view `status` prints, and `status --json` prints as it is. */
export interface SweepView {
  readonly sweep: string;
  readonly stack: string;
  readonly region: string;
  readonly bucket: string;
  /** When the view was read (ISO 8601). */
  readonly at: string;
  readonly budgetUsd: number;
  /** spend.json `totalUsd`; undefined until the guard has written it. */
  readonly spendUsd?: number;
  readonly spendUpdatedAt?: string;
  readonly configs: readonly ConfigView[];
  /** Sentences worth reading: failures, requests, stops, files that do not fit their schema. */
  readonly notes: readonly string[];
}

type Json = Record<string, unknown>;
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const STOPPED = STATE.STOPPED;
const SUCCEEDED = STATE.SUCCEEDED;

/** Parses a JSON object; a reason instead when it is not one. */
export function parseObject(text: string | undefined, what: string): { value?: Json; problem?: string } {
  if (text === undefined) return { problem: `no ${what} yet` };
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? { value: value as Json } : { problem: `${what} is not a JSON object` };
  } catch (err) {
    return { problem: `${what} is not valid JSON (${(err as Error).message})` };
  }
}

/** The texts of one config's files and of the sweep's spend.json, as read from the store. */
export interface StoredFiles {
  readonly status: readonly (string | undefined)[];
  readonly control: readonly (string | undefined)[];
  readonly spend?: string;
}

/** Reads every config's status.json and control.json and the sweep's spend.json. */
export async function readFiles(store: SweepStore, spec: SweepSpec): Promise<StoredFiles> {
  const names = spec.configs.map((c) => c.name);
  const [status, control, spend] = await Promise.all([
    Promise.all(names.map((c) => store.read(storeKeys.configFile(spec.name, c, 'status')))),
    Promise.all(names.map((c) => store.read(storeKeys.configFile(spec.name, c, 'control')))),
    store.read(storeKeys.sweepFile(spec.name, 'spend')),
  ]);
  return { status, control, spend };
}

export interface AwsFacts {
  readonly region: string;
  readonly bucket: string;
  readonly instances: ReadonlyMap<string, readonly InstanceView[]>;
  readonly groups: ReadonlyMap<string, { desired: number; min: number; max: number }>;
  /** Recent scaling activities (newest first) of each group that wants an instance and has none, by group name. */
  readonly activities?: ReadonlyMap<string, readonly ScalingActivity[]>;
  /** Sentences for groups whose activities could not be read (e.g. autoscaling:DescribeScalingActivities denied). */
  readonly activityProblems?: readonly string[];
}

/**
 * Merges the files (and what EC2 and Auto Scaling say) into one view per config. Pure, so the
 * display rules are tested without AWS.
 */
export function mergeView(spec: SweepSpec, files: StoredFiles, facts: AwsFacts, now: Date = new Date()): SweepView {
  const notes: string[] = [];
  const spendDoc = parseObject(files.spend, SWEEP_FILES.spend).value as Partial<SpendJson> | undefined;
  if (files.spend !== undefined) {
    const problems = spendDoc ? contractProblems('spend', spendDoc, 3) : ['not a JSON object'];
    if (problems.length > 0) notes.push(`${storeKeys.sweepFile(spec.name, 'spend')} does not fit spend.schema.json (${problems.join('; ')}); the budget guard rewrites it every few minutes.`);
  }
  const configs = spec.configs.map((c, i): ConfigView => {
    const config = c.name;
    const parsed = parseObject(files.status[i], CONFIG_FILES.status);
    const status = parsed.value as Partial<StatusJson> | undefined;
    const state = str(status?.state) ?? 'UNKNOWN';
    const final = FINAL_STATES.has(state);
    if (parsed.problem) notes.push(`${config}: ${parsed.problem}${files.status[i] === undefined ? ' (its instance has not started the job)' : ''}`);
    else {
      const problems = contractProblems('status', status, 3);
      if (problems.length > 0) notes.push(`${config}: status.json does not fit status.schema.json (${problems.join('; ')}); the job runner of this version rewrites it on its next update.`);
    }
    const { control, problem: controlProblem } = parseControl(files.control[i]);
    if (controlProblem) notes.push(`${config}: ${controlProblem}; a new request (spot-sweep stop, spot-sweep local) replaces it.`);
    const pending =
      control && ((control.action === ACTION.stop && !final) || (control.action === ACTION.start && state === STOPPED))
        ? { action: control.action, by: control.by, at: control.at, reason: control.reason }
        : undefined;
    const stoppedBy = state === STOPPED ? str(status?.stoppedBy) : undefined;
    const message = str(status?.message);
    if (state === STOPPED) notes.push(`${config}: stopped by ${stoppedBy ?? 'an unnamed requester'}${message ? `: ${message}` : ''}`);
    else if (message) notes.push(`${config}: ${message}`);
    if (pending) {
      const after = pending.action === ACTION.start ? '; the job runs again when an instance of its group starts' : '';
      notes.push(`${config}: ${describeRequest(pending)}${after}`);
    }
    const group = facts.groups.get(groupName(spec.name, config));
    const instances = facts.instances.get(config) ?? [];
    const launch =
      !final && group && group.desired > 0 && instances.length === 0 ? launchProblem(groupName(spec.name, config), facts.activities?.get(groupName(spec.name, config)) ?? [], now) : undefined;
    if (launch) notes.push(describeLaunchProblem(config, launch));
    return {
      config,
      state,
      final,
      ...(status ? { status } : {}),
      ...(control ? { control } : {}),
      ...(pending ? { pendingRequest: pending } : {}),
      ...(stoppedBy ? { stoppedBy } : {}),
      spendUsd: num(spendDoc?.configs?.[config]?.usd),
      instances,
      group,
      ...(launch ? { launch } : {}),
    };
  });
  notes.push(...(facts.activityProblems ?? []));
  const noGroup = configs.filter((c) => !c.group).map((c) => c.config);
  if (noGroup.length === configs.length) notes.push(`no Auto Scaling group ${groupName(spec.name, '<config>')} exists: deploy the sweep stack again to create them`);
  else for (const c of noGroup) notes.push(`${c}: no Auto Scaling group ${groupName(spec.name, c)} (deploy the sweep stack again to create it)`);
  return {
    sweep: spec.name,
    stack: sweepStackName(spec.name),
    region: facts.region,
    bucket: facts.bucket,
    at: now.toISOString(),
    budgetUsd: spec.budgetUsd,
    spendUsd: num(spendDoc?.totalUsd),
    ...(str(spendDoc?.updatedAt) ? { spendUpdatedAt: spendDoc?.updatedAt } : {}),
    configs,
    notes,
  };
}

/** Every live instance of the sweep (by the config tag the sweep stack propagates) and every group. */
async function awsFacts(session: AwsSession, bucket: string, spec: SweepSpec): Promise<AwsFacts> {
  const { DescribeInstancesCommand } = await import('@aws-sdk/client-ec2');
  const { DescribeAutoScalingGroupsCommand } = await import('@aws-sdk/client-auto-scaling');
  const instances = new Map<string, InstanceView[]>();
  let token: string | undefined;
  do {
    const page = await aws('EC2 DescribeInstances', () =>
      session.ec2().send(
        new DescribeInstancesCommand({
          Filters: [
            { Name: `tag:${TAGS.sweep}`, Values: [spec.name] },
            { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'shutting-down'] },
          ],
          NextToken: token,
        }),
      ),
    );
    for (const i of (page.Reservations ?? []).flatMap((r) => r.Instances ?? [])) {
      const config = tag(i, TAGS.config);
      if (config !== undefined) instances.set(config, [...(instances.get(config) ?? []), viewInstance(i)]);
    }
    token = page.NextToken || undefined;
  } while (token);

  const groups = new Map<string, { desired: number; min: number; max: number }>();
  const wanted = spec.configs.map((c) => groupName(spec.name, c.name));
  for (let i = 0; i < wanted.length; i += 50) {
    // At most 50 names per call. @see https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DescribeAutoScalingGroups.html
    const r = await aws('Auto Scaling DescribeAutoScalingGroups', () =>
      session.autoScaling().send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: wanted.slice(i, i + 50), MaxRecords: 100 })),
    );
    for (const g of r.AutoScalingGroups ?? []) {
      groups.set(g.AutoScalingGroupName ?? '', { desired: g.DesiredCapacity ?? 0, min: g.MinSize ?? 0, max: g.MaxSize ?? 0 });
    }
  }
  // Only a group that wants an instance and has none needs its activities read: that is where Auto Scaling
  // says why its launches fail.
  const { DescribeScalingActivitiesCommand } = await import('@aws-sdk/client-auto-scaling');
  const activities = new Map<string, readonly ScalingActivity[]>();
  const waiting = spec.configs.filter((c) => (groups.get(groupName(spec.name, c.name))?.desired ?? 0) > 0 && !instances.has(c.name));
  const activityProblems: string[] = [];
  await Promise.all(
    waiting.map(async (c) => {
      const name = groupName(spec.name, c.name);
      try {
        const r = await aws('Auto Scaling DescribeScalingActivities', () => session.autoScaling().send(new DescribeScalingActivitiesCommand({ AutoScalingGroupName: name, MaxRecords: 20 })));
        activities.set(name, r.Activities ?? []);
      } catch (err) {
        // Why a group has no instance is worth a note, never the whole status.
        activityProblems.push(`${c.name}: why its group has no instance is unknown: ${(err as Error).message.split('\n')[0]}`);
      }
    }),
  );
  return { region: session.region, bucket, instances, groups, activities, activityProblems };
}

function tag(i: Instance, key: string): string | undefined {
  return i.Tags?.find((t) => t.Key === key)?.Value;
}

function viewInstance(i: Instance): InstanceView {
  return {
    id: i.InstanceId ?? '?',
    type: i.InstanceType ?? '?',
    // EC2 sets InstanceLifecycle to "spot" for spot instances and leaves it out for on-demand ones.
    // @see https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Instance.html
    market: i.InstanceLifecycle === 'spot' ? 'spot' : 'on-demand',
    state: i.State?.Name ?? '?',
  };
}

/** `[#########...........]  45%`: 20 cells. */
export function progressBar(progress: number | undefined): string {
  if (progress === undefined) return '-';
  const p = Math.min(1, Math.max(0, progress));
  const filled = Math.round(p * 20);
  return `[${'#'.repeat(filled)}${'.'.repeat(20 - filled)}] ${(p * 100).toFixed(0).padStart(3)}%`;
}

/** `45 s`, `12 min`, `3 h 05 min`. */
export function formatEta(s: number | undefined): string {
  if (s === undefined || s < 0) return '-';
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  const h = Math.floor(s / 3600);
  return `${h} h ${String(Math.round((s - h * 3600) / 60)).padStart(2, '0')} min`;
}

const usd = (v: number | undefined): string => (v === undefined ? '-' : `$${v.toFixed(2)}`);

function instanceCell(c: ConfigView): string {
  if (c.instances.length > 0) return c.instances.map((i) => `${i.type} ${i.market}${i.state === 'running' ? '' : ` (${i.state})`}`).join(', ');
  if (c.launch) return c.launch.overdue ? `launch failing ${c.launch.waitingMinutes} min` : 'launch failing';
  if (c.group && c.group.desired > 0 && !c.final) return 'launching';
  const type = str(c.status?.instanceType);
  const last = type !== undefined && type !== 'local' ? `${type} ${str(c.status?.market) ?? ''}`.trim() : '';
  return last ? `none (last: ${last})` : 'none';
}

/**
 * `fold 2/3 ep 1/2`, counting from 1: status.json holds the trainer's 0-based indexes (fold 1 is the
 * second fold); `final model ep 1/2` during the final model's pass. A SUCCEEDED job has done every fold
 * and epoch, whatever its last update said.
 */
export function foldCell(s: Partial<StatusJson> | undefined, state: string): string {
  const folds = num(s?.folds);
  const epochs = num(s?.epochs);
  const done = state === SUCCEEDED;
  const position = (index: number | undefined, count: number | undefined): string | undefined =>
    count === undefined ? undefined : done ? `${count}/${count}` : index === undefined ? undefined : `${Math.min(index + 1, count)}/${count}`;
  const epoch = position(num(s?.epoch), epochs);
  // fold == folds: the final model's pass after the folds (train.finalModel, train-settings.schema.json).
  const index = num(s?.fold);
  if (!done && index !== undefined && folds !== undefined && index >= folds) return ['final model', epoch ? `ep ${epoch}` : ''].filter(Boolean).join(' ');
  const fold = position(index, folds);
  return [fold ? `fold ${fold}` : '', epoch ? `ep ${epoch}` : ''].filter(Boolean).join(' ') || '-';
}

/** The terminal width `status` lays its table out for, when nothing says otherwise. */
export const DEFAULT_COLUMNS = 80;

/**
 * The status as text: one row per config, the spend against the budget, then notes. The table fits
 * `columns` (a terminal's width; 80 when unknown): the widest layout that fits is used — with a
 * progress bar and attempts and interruptions apart; else short headers, a percentage and
 * `attempts/interruptions` in one column; else, in addition, each config's instance on a line of its
 * own under its row.
 */
export function formatStatus(v: SweepView, paint: Paint = painter(false), columns: number = DEFAULT_COLUMNS): string {
  const cells = v.configs.map((c) => {
    const st = c.status;
    const running = RUNNING_STATES.has(c.state);
    const eps = num(st?.examplesPerSecond);
    const progress = num(st?.progress) ?? (c.state === SUCCEEDED ? 1 : undefined);
    return {
      config: c.config,
      state: c.state,
      // A config that restarted after a failure (spec `retries`) says how many of its retries it used.
      stateText: st?.retries && st.retries.used > 0 ? `${c.state} retry ${st.retries.used}/${st.retries.max}` : c.state,
      instance: instanceCell(c),
      bar: progressBar(progress),
      percent: progress === undefined ? '-' : `${(Math.min(1, Math.max(0, progress)) * 100).toFixed(0)}%`,
      fold: foldCell(st, c.state),
      eps: running && eps !== undefined ? Math.round(eps).toLocaleString('en-US') : '-',
      eta: running ? formatEta(num(st?.etaSeconds)) : '-',
      attempts: String(num(st?.attempts) ?? '-'),
      interruptions: String(num(st?.interruptions) ?? '-'),
      spend: usd(c.spendUsd),
    };
  });
  type Cells = (typeof cells)[number];
  type Column = readonly [string, (c: Cells) => string];
  const config: Column = ['config', (c) => c.config];
  const state: Column = ['state', (c) => c.stateText];
  const instance: Column = ['instance', (c) => c.instance];
  const rest = (compact: boolean): Column[] => [
    compact ? ['done', (c) => c.percent] : ['progress', (c) => c.bar],
    [compact ? 'fold/ep' : 'fold/epoch', (c) => c.fold],
    [compact ? 'ex/s' : 'examples/s', (c) => c.eps],
    ['ETA', (c) => c.eta],
    ...(compact ? [['att/int', (c: Cells) => `${c.attempts}/${c.interruptions}`] as Column] : [['attempts', (c: Cells) => c.attempts] as Column, ['interruptions', (c: Cells) => c.interruptions] as Column]),
    ['spend', (c) => c.spend],
  ];
  const layouts: { columns: Column[]; instanceLine: boolean }[] = [
    { columns: [config, state, instance, ...rest(false)], instanceLine: false },
    { columns: [config, state, instance, ...rest(true)], instanceLine: false },
    { columns: [config, state, ...rest(true)], instanceLine: true },
  ];
  const table = (layout: { columns: Column[]; instanceLine: boolean }): { lines: string[]; width: number } => {
    const rows = cells.map((c) => layout.columns.map(([, cell]) => cell(c)));
    const widths = layout.columns.map(([h], i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const fmt = (row: string[], st?: string): string =>
      row
        .map((cell, i) => (i === 1 && st !== undefined ? paintState(paint, st, cell.padEnd(widths[i])) : cell.padEnd(widths[i])))
        .join('  ')
        .trimEnd();
    const lines = [fmt(layout.columns.map(([h]) => h))];
    rows.forEach((row, i) => {
      lines.push(fmt(row, cells[i].state));
      if (layout.instanceLine) lines.push(`  instance: ${cells[i].instance}`);
    });
    // Every line's length without colour codes: the table's padded columns, and the instance lines.
    const width = Math.max(widths.reduce((sum, w) => sum + w, 0) + 2 * (widths.length - 1), ...(layout.instanceLine ? cells.map((c) => `  instance: ${c.instance}`.length) : []));
    return { lines, width };
  };
  const laid = layouts.map(table);
  const chosen = laid.find((t) => t.width <= columns) ?? laid[laid.length - 1];
  const stamp = v.at.replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  const out = [`Sweep "${v.sweep}" (stack ${v.stack}, ${v.region}, bucket ${v.bucket}) at ${stamp}`, '', ...chosen.lines, ''];
  if (v.spendUsd !== undefined) {
    const pct = v.budgetUsd > 0 ? ` (${((v.spendUsd / v.budgetUsd) * 100).toFixed(0)}%)` : '';
    out.push(`Spend: ${usd(v.spendUsd)} of the ${usd(v.budgetUsd)} budget${pct}; at the budget every config is stopped and scaled to zero.`);
  } else {
    out.push(`Spend: not computed yet (the budget guard writes ${storeKeys.sweepFile(v.sweep, 'spend')} every few minutes); budget ${usd(v.budgetUsd)}.`);
  }
  if (v.notes.length > 0) out.push('', 'Notes:', ...v.notes.map((n) => `  - ${n}`));
  return `${out.join('\n')}\n`;
}

/** The width to lay `status` out for: $COLUMNS, else the terminal's, else {@link DEFAULT_COLUMNS}. */
export function terminalColumns(env: NodeJS.ProcessEnv, isTTY: boolean | undefined): number {
  const fromEnv = Number(env.COLUMNS);
  if (Number.isInteger(fromEnv) && fromEnv > 0) return fromEnv;
  return (isTTY && process.stdout.columns) || DEFAULT_COLUMNS;
}

const options = {
  watch: { type: 'boolean', help: 'refresh every --interval seconds until every config has finished; Ctrl-C ends it' },
  interval: { type: 'seconds', default: 30, min: 1, help: 'seconds between refreshes with --watch' },
  json: { type: 'boolean', help: 'print the merged view (status.json, control.json, spend.json, instances, groups) as one JSON document' },
} as const satisfies OptionTable;

export const status: Command<typeof options> = {
  name: 'status',
  summary: 'per config: state, instance, progress, fold/epoch, examples/s, ETA, spend',
  description: `
Per config of a deployed sweep: state, instance type and market, progress, fold and epoch (counted
from 1), examples/s, ETA, attempts, interruptions and spend (from the budget guard's spend.json); the
sweep's spend against budgetUsd; notes on failures, stop or start requests not yet obeyed, who
stopped a STOPPED config, and why a group that wants an instance has none (its scaling activities:
a vCPU quota, no spot capacity, a refused launch template), flagged after 15 minutes. With --json: the same, merged from status.json (fold and epoch as its
0-based indexes), control.json and spend.json, as one JSON document.
The bucket comes from the foundation stack's ArtifactBucketName output (or --bucket); the region from
--region, AWS_REGION, AWS_DEFAULT_REGION or your profile; AWS_ENDPOINT_URL is honoured.`,
  positionals: [{ name: 'spec.json', help: 'the sweep spec the sweep was deployed from', required: true }],
  options,
  aws: true,
  exits: [['ok', 'the status was printed (whatever the configs\' states)'], 'specError', 'usage', 'aws'],
  async run({ positionals, options: o }, io) {
    if (o.watch && o.json) throw new UsageError('--json prints one document; it does not go with --watch (run it in a loop instead).');
    const spec = loadSpec(positionals[0]);
    const session = await AwsSession.open(o, io.env);
    const paint = painter(wantsColour(io, o.json));
    try {
      await session.requireSweepStack(spec);
      const { bucket, store } = await openStore(session, o);
      for (;;) {
        const [files, facts] = await Promise.all([readFiles(store, spec), awsFacts(session, bucket, spec)]);
        const view = mergeView(spec, files, facts);
        if (o.json) {
          io.out(`${JSON.stringify(view, null, 2)}\n`);
          return EXIT_CODES.cli.ok;
        }
        const text = formatStatus(view, paint, terminalColumns(io.env, io.isTTY));
        // Clear the screen only on a terminal: piped output gets one block per refresh.
        if (o.watch && io.isTTY) io.out(`\x1b[2J\x1b[H${text}`);
        else io.out(o.watch ? `${text}\n` : text);
        if (!o.watch) return EXIT_CODES.cli.ok;
        if (view.configs.every((c) => c.final)) {
          io.out('Every config has finished: stopping --watch.\n');
          return EXIT_CODES.cli.ok;
        }
        await sleep(o.interval * 1000, io.signal);
        if (io.signal?.aborted) return EXIT_CODES.cli.ok;
      }
    } finally {
      session.close();
    }
  },
};
