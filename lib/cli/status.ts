import type { Instance } from '@aws-sdk/client-ec2';
import { SweepSpec } from '../spec/types';
import { aws, AwsOptions, AwsSession, bucketStore, FINAL_STATES, groupName, JOB_TAG, loadSweep, parseArgs, seconds, sleep, UsageError } from './aws';
import { SweepStore } from './store';

export const STATUS_USAGE = 'spot-sweep status <spec.json> [--watch [SECONDS]] [--region R] [--bucket NAME]';

/** Seconds between refreshes with `--watch` when none are given. */
const DEFAULT_WATCH_SECONDS = 30;

type Json = Record<string, unknown>;

/** A running (or starting, or stopping) instance of a config. */
export interface InstanceView {
  readonly id: string;
  readonly type: string;
  /** `spot` or `on-demand`, from EC2's InstanceLifecycle. */
  readonly market: string;
  readonly state: string;
}

/** Everything `status` shows about one config. */
export interface ConfigStatus {
  readonly config: string;
  /** status.json's state; `UNKNOWN` when there is none (or it is unreadable). */
  readonly state: string;
  /** status.json as stored; undefined when missing or malformed. */
  readonly status?: Json;
  /** Why there is no status: missing, or not JSON. */
  readonly problem?: string;
  readonly instances: readonly InstanceView[];
  /** The config's Auto Scaling group capacity; undefined when the group does not exist. */
  readonly group?: { readonly desired: number; readonly min: number; readonly max: number };
}

export interface SweepStatus {
  readonly sweep: string;
  readonly region: string;
  readonly bucket: string;
  readonly budgetUsd: number;
  /** The guard's total from spend.json; undefined until the guard has written it. */
  readonly spendUsd?: number;
  readonly configs: readonly ConfigStatus[];
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const obj = (v: unknown): Json | undefined => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined);

/** Parses a JSON object; a reason instead when it is not one. */
export function parseObject(text: string | undefined, what: string): { value?: Json; problem?: string } {
  if (text === undefined) return { problem: `no ${what} yet` };
  try {
    const value = obj(JSON.parse(text));
    return value ? { value } : { problem: `${what} is not a JSON object` };
  } catch (err) {
    return { problem: `${what} is not valid JSON (${(err as Error).message})` };
  }
}

/** The sweep's spend so far: `totalUsd` of the budget guard's spend.json (lambda/budget-guard/ledger.ts). */
export function spendTotal(spend: Json | undefined): number | undefined {
  return num(spend?.totalUsd);
}

/** Reads the store, EC2 and Auto Scaling for every config of the sweep. */
export async function collectStatus(session: AwsSession, store: SweepStore, bucket: string, spec: SweepSpec): Promise<SweepStatus> {
  const { DescribeInstancesCommand } = await import('@aws-sdk/client-ec2');
  const { DescribeAutoScalingGroupsCommand } = await import('@aws-sdk/client-auto-scaling');
  const names = spec.configs.map((c) => c.name);

  const texts = Promise.all(names.map((c) => store.read(`sweeps/${spec.name}/${c}/status.json`)));
  const spendText = store.read(`sweeps/${spec.name}/spend.json`);

  // Every live instance of the sweep in one call, grouped by the job tag the sweep stack propagates.
  const instances = new Map<string, InstanceView[]>();
  let token: string | undefined;
  do {
    const page = await aws('EC2 DescribeInstances', () =>
      session.ec2().send(
        new DescribeInstancesCommand({
          Filters: [
            { Name: 'tag:spot-sweep:sweep', Values: [spec.name] },
            { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'shutting-down'] },
          ],
          NextToken: token,
        }),
      ),
    );
    for (const i of (page.Reservations ?? []).flatMap((r) => r.Instances ?? [])) {
      const job = tag(i, JOB_TAG);
      if (!job?.startsWith(`${spec.name}/`)) continue;
      const config = job.slice(spec.name.length + 1);
      instances.set(config, [...(instances.get(config) ?? []), viewInstance(i)]);
    }
    token = page.NextToken || undefined;
  } while (token);

  const groups = new Map<string, { desired: number; min: number; max: number }>();
  const wanted = names.map((c) => groupName(spec.name, c));
  for (let i = 0; i < wanted.length; i += 50) {
    // At most 50 names per call. @see https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DescribeAutoScalingGroups.html
    const r = await aws('Auto Scaling DescribeAutoScalingGroups', () =>
      session.autoScaling().send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: wanted.slice(i, i + 50), MaxRecords: 100 })),
    );
    for (const g of r.AutoScalingGroups ?? []) {
      groups.set(g.AutoScalingGroupName ?? '', { desired: g.DesiredCapacity ?? 0, min: g.MinSize ?? 0, max: g.MaxSize ?? 0 });
    }
  }

  const statusTexts = await texts;
  const configs = names.map((config, i): ConfigStatus => {
    const { value, problem } = parseObject(statusTexts[i], 'status.json');
    return {
      config,
      state: typeof value?.state === 'string' ? value.state : 'UNKNOWN',
      ...(value ? { status: value } : { problem }),
      instances: instances.get(config) ?? [],
      group: groups.get(groupName(spec.name, config)),
    };
  });
  const spend = parseObject(await spendText, 'spend.json').value;
  return { sweep: spec.name, region: session.region, bucket, budgetUsd: spec.budgetUsd, spendUsd: spendTotal(spend), configs };
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

function instanceCell(c: ConfigStatus): string {
  if (c.instances.length > 0) return c.instances.map((i) => `${i.type} ${i.market}${i.state === 'running' ? '' : ` (${i.state})`}`).join(', ');
  if (c.group && c.group.desired > 0 && !FINAL_STATES.has(c.state)) return 'launching';
  const last = typeof c.status?.instanceType === 'string' && c.status.instanceType !== 'local' ? `${c.status.instanceType} ${c.status.market ?? ''}`.trim() : '';
  return last ? `none (last: ${last})` : 'none';
}

function foldCell(s: Json | undefined): string {
  const fold = num(s?.fold);
  const folds = num(s?.folds);
  const epoch = num(s?.epoch);
  const epochs = num(s?.epochs);
  const parts = [fold !== undefined && folds !== undefined ? `fold ${fold}/${folds}` : '', epoch !== undefined && epochs !== undefined ? `ep ${epoch}/${epochs}` : ''];
  return parts.filter(Boolean).join(' ') || '-';
}

/** The status as text: one row per config, the spend against the budget, then notes. */
export function formatStatus(s: SweepStatus, now: Date = new Date()): string {
  const header = ['config', 'state', 'instance', 'progress', 'fold/epoch', 'examples/s', 'ETA', 'attempts', 'interruptions', 'spend'];
  const rows = s.configs.map((c) => {
    const st = c.status;
    const running = c.state === 'TRAINING' || c.state === 'BOOTSTRAPPING';
    const eps = num(st?.examplesPerSecond);
    return [
      c.config,
      c.state,
      instanceCell(c),
      progressBar(num(st?.progress) ?? (c.state === 'SUCCEEDED' ? 1 : undefined)),
      foldCell(st),
      running && eps !== undefined ? Math.round(eps).toLocaleString('en-US') : '-',
      running ? formatEta(num(st?.etaSeconds)) : '-',
      String(num(st?.attempts) ?? '-'),
      String(num(st?.interruptions) ?? '-'),
      usd(num(st?.spendUsd)),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  const stamp = now.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  const out = [`Sweep "${s.sweep}" (stack SpotSweep-${s.sweep}, ${s.region}, bucket ${s.bucket}) at ${stamp}`, '', fmt(header), ...rows.map(fmt), ''];
  if (s.spendUsd !== undefined) {
    const pct = s.budgetUsd > 0 ? ` (${((s.spendUsd / s.budgetUsd) * 100).toFixed(0)}%)` : '';
    out.push(`Spend: ${usd(s.spendUsd)} of the ${usd(s.budgetUsd)} budget${pct}; at the budget every config is scaled to zero.`);
  } else {
    out.push(`Spend: not computed yet (the budget guard writes sweeps/${s.sweep}/spend.json every few minutes); budget ${usd(s.budgetUsd)}.`);
  }
  const notes: string[] = [];
  for (const c of s.configs) {
    const message = typeof c.status?.message === 'string' ? c.status.message : undefined;
    if (c.problem) notes.push(`${c.config}: ${c.problem}${c.problem.startsWith('no ') ? ' (its instance has not started the job)' : ''}`);
    else if (message) notes.push(`${c.config}: ${message}`);
  }
  const noGroup = s.configs.filter((c) => !c.group).map((c) => c.config);
  if (noGroup.length === s.configs.length) notes.push(`no Auto Scaling group SpotSweep-${s.sweep}-<config> exists: deploy the sweep stack again to create them`);
  else for (const c of noGroup) notes.push(`${c}: no Auto Scaling group ${groupName(s.sweep, c)} (deploy the sweep stack again to create it)`);
  if (notes.length > 0) out.push('', 'Notes:', ...notes.map((n) => `  - ${n}`));
  return `${out.join('\n')}\n`;
}

export interface StatusIo {
  readonly out: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
  /** Clear the screen between refreshes. @default false */
  readonly isTTY?: boolean;
  /** Ends `--watch` (the CLI aborts it on Ctrl-C). */
  readonly signal?: AbortSignal;
}

/**
 * `spot-sweep status`: prints the status once, or with `--watch` every SECONDS until every config
 * has finished (SUCCEEDED, FAILED or STOPPED) or `signal` aborts. Returns the exit code (0).
 */
export async function runStatus(args: readonly string[], io: StatusIo): Promise<number> {
  const parsed = parseArgs(args, { optional: { '--watch': (next) => /^\d+(\.\d+)?$/.test(next) } });
  if (parsed.positional.length > 1) throw new UsageError(`one spec file expected, got ${parsed.positional.length}.`);
  const watch = parsed.flags.has('--watch');
  const every = seconds('--watch', parsed.values.get('--watch'), DEFAULT_WATCH_SECONDS, 1);
  const spec = loadSweep(parsed.positional[0], STATUS_USAGE);
  const options: AwsOptions = { region: parsed.values.get('--region'), bucket: parsed.values.get('--bucket') };
  const session = await AwsSession.open(options, io.env);
  try {
    await session.requireSweepStack(spec);
    const bucket = await session.bucket(options);
    const store = await bucketStore(session, bucket);
    for (;;) {
      const view = await collectStatus(session, store, bucket, spec);
      const text = formatStatus(view);
      if (watch && io.isTTY) io.out(`\x1b[2J\x1b[H${text}`);
      else io.out(watch ? `${text}\n` : text);
      if (!watch) return 0;
      if (view.configs.every((c) => FINAL_STATES.has(c.state))) {
        io.out('Every config has finished: stopping --watch.\n');
        return 0;
      }
      await sleep(every * 1000, io.signal);
      if (io.signal?.aborted) return 0;
    }
  } finally {
    session.close();
  }
}
