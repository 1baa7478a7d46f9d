import * as path from 'node:path';
import { EXIT_CODES } from '../../contract';
import { ConfigEstimate, estimateSweep, SweepEstimate } from '../../cost/estimate';
import { PRICE_SOURCE } from '../../cost/instances';
import { loadSpec } from '../../spec/load';
import { SweepSpec, sweepStackName } from '../../spec/types';
import { Command, OptionTable } from '../args';
import { lookupOnDemandPrices, ON_DEMAND_FROM_TABLE, OnDemandLookup, tableRegionWarning } from '../on-demand-prices';
import { hasAwsCredentials, lookupSpotPrices } from '../spot-prices';
import { AwsSession } from '../aws';
import type { Check } from '../doctor/types';

const usd = (x: number): string => `$${x.toFixed(2)}`;
const hours = (h: number): string => (h < 1 ? `${Math.round(h * 60)} min` : `${h.toFixed(1)} h`);

/** Lines warning about prices of another region, configs that would overrun maxRuntimeHours or could not be estimated. */
function planWarnings(estimate: SweepEstimate, priceWarnings: readonly string[]): string[] {
  const warnings: string[] = [...priceWarnings];
  for (const c of estimate.configs) {
    if (c.runtimeHours !== null && c.runtimeHours > c.config.maxRuntimeHours) {
      warnings.push(
        `config "${c.config.name}": estimated ${hours(c.runtimeHours)} exceeds maxRuntimeHours ${c.config.maxRuntimeHours}; the run would be stopped first: raise maxRuntimeHours (at most 48), use more GPUs, or fewer examples.`,
      );
    }
  }
  if (estimate.unestimated.length > 0) {
    warnings.push(
      `not estimated (examples not set, so the data set size is unknown): ${estimate.unestimated.join(', ')}; set "examples" to count them against the budget.`,
    );
  }
  return warnings;
}

/** The text `spot-sweep plan` prints: one block per config, the total and the verdict. */
export function formatPlan(spec: SweepSpec, estimate: SweepEstimate, priceNote: string, priceWarnings: readonly string[] = [], account?: AccountChecks): string {
  const file = spec.specFile ? path.relative(process.cwd(), spec.specFile) : 'spec';
  const out: string[] = [];
  out.push(
    `Sweep "${spec.name}" (${file}, stack ${sweepStackName(spec.name)}): ${spec.configs.length} config${spec.configs.length === 1 ? '' : 's'}, budget ${usd(spec.budgetUsd)}`,
  );
  out.push(`Prices: ${priceNote} Table: ${PRICE_SOURCE.region}, recorded ${PRICE_SOURCE.recordedOn}.`);
  out.push('Runtime: assumed throughput per GPU model (lib/cost/throughput.ts), to be calibrated from measured runs.');
  out.push('');

  const header = ['config', 'examples', 'market', 'instance type', 'GPUs', 'runtime', 'spot', 'on-demand'];
  const rows: string[][] = [header];
  for (const c of estimate.configs) rows.push(...configRows(c));
  const widths = header.map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const right = new Set([1, 5, 6, 7]);
  for (const r of rows) {
    out.push(r.map((cell, i) => (right.has(i) ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join('  ').trimEnd());
  }
  out.push('');
  const retried = retriesNote(spec);
  if (retried) out.push(retried, '');

  const warnings = planWarnings(estimate, priceWarnings);
  for (const w of warnings) out.push(`Warning: ${w}`);
  if (warnings.length > 0) out.push('');

  if (account) {
    if (account.skipped) out.push(`Account checks (AMI parameters, vCPU quotas): skipped, ${account.skipped}; spot-sweep doctor ${file} runs them and more.`);
    else {
      out.push(`Account checks in ${account.region} (spot-sweep doctor ${file} runs these and more):`);
      for (const c of account.checks) out.push(`  ${c.result === 'blocker' ? 'BLOCKER' : c.result.padEnd(7)}  ${c.name}: ${c.finding}${c.fix ? ` Fix: ${c.fix}` : ''}`);
    }
    out.push('');
  }

  out.push(wallTimeLine(estimate));
  const share = spec.budgetUsd > 0 ? Math.round((estimate.totalUsd / spec.budgetUsd) * 100) : 0;
  out.push(
    `Total: ${usd(estimate.totalUsd)} of the ${usd(spec.budgetUsd)} budget (${share}%), each config at its market ` +
      '(spot-then-on-demand counted at on-demand) on its dearest listed instance type.',
  );
  if (estimate.overBudget) {
    out.push(
      `Over budget: the estimate ${usd(estimate.totalUsd)} exceeds budgetUsd ${usd(spec.budgetUsd)} by ${usd(estimate.totalUsd - spec.budgetUsd)}. ` +
        'Lower examples, epochs or folds, move configs to spot or cheaper instance types, or raise budgetUsd.',
    );
  } else {
    out.push('Within budget.');
  }
  return out.join('\n') + '\n';
}

/** The configs that restart after a failure (`retries.max` > 0), as one line; undefined when none does. */
function retriesNote(spec: SweepSpec): string | undefined {
  const retried = spec.configs.filter((c) => c.retries.max > 0);
  if (retried.length === 0) return undefined;
  const each = retried.map((c) => {
    const codes = c.retries.onExitCodes.length > 0 ? `exit codes ${c.retries.onExitCodes.join(', ')}` : 'any failing exit code';
    return `${c.name} up to ${c.retries.max}x (${codes})`;
  });
  // A retry reruns from the last checkpoint, so it costs at most one more run: the estimate counts one.
  return `Retries after a failure: ${each.join('; ')}. Each may cost up to one more run, not in the estimate.`;
}

/** How long the whole sweep takes, and why (every config at once, or maxParallel's queue). */
function wallTimeLine(estimate: SweepEstimate): string {
  const n = estimate.configs.length;
  if (estimate.wallHours === null) return 'Wall time: unknown (no config has an estimate).';
  const capped = estimate.maxParallel !== null && estimate.maxParallel < n;
  const how = capped
    ? `maxParallel ${estimate.maxParallel}: at most ${estimate.maxParallel} of the ${n} configs at once, the next in spec order starting as one ends`
    : 'every config at once: the longest config';
  return `Wall time: ${hours(estimate.wallHours)} (${how}${estimate.unestimated.length > 0 ? '; configs without an estimate counted as 0' : ''}).`;
}

function configRows(c: ConfigEstimate): string[][] {
  const cfg = c.config;
  const examples = cfg.examples === null ? 'all' : cfg.examples.toLocaleString('en-US');
  if (c.byInstance.length === 0) {
    return cfg.instanceTypes.map((t, i) => [i === 0 ? cfg.name : '', i === 0 ? examples : '', i === 0 ? cfg.market : '', t, `${cfg.gpus}`, '?', '?', '?']);
  }
  return c.byInstance.map((e, i) => [
    i === 0 ? cfg.name : '',
    i === 0 ? examples : '',
    i === 0 ? cfg.market : '',
    e.instance.instanceType,
    `${cfg.gpus}x ${e.instance.gpuModel}${cfg.gpus < e.instance.gpuCount ? ` (of ${e.instance.gpuCount})` : ''}`,
    hours(e.runtimeHours),
    usd(e.spotUsd) + (e.spotPriceLive ? '*' : ''),
    usd(e.onDemandUsd) + (e.onDemandPriceLive ? '*' : ''),
  ]);
}

/** `plan --json`: the estimate per config and in total, the budget and the verdict. */
export interface PlanJson {
  readonly sweep: string;
  readonly stack: string;
  readonly budgetUsd: number;
  /** Sum of the configs' `estimateUsd` (unestimated configs count 0). */
  readonly totalUsd: number;
  readonly overBudget: boolean;
  /** Hours until the last config ends (with maxParallel: the makespan in spec order); null when nothing is estimated. */
  readonly wallHours: number | null;
  /** The spec's maxParallel; null when every config starts at once. */
  readonly maxParallel: number | null;
  /** Where the spot prices came from, as a sentence. */
  readonly prices: string;
  readonly configs: readonly {
    readonly config: string;
    readonly market: string;
    readonly examples: number | null;
    readonly gpus: number;
    /** At its market on the dearest listed type; null when `examples` is not set. */
    readonly estimateUsd: number | null;
    readonly runtimeHours: number | null;
    readonly maxRuntimeHours: number;
    /** Restarts after a failure (the spec's `retries`; max 0: none). */
    readonly retries: { readonly max: number; readonly onExitCodes: readonly number[] };
    readonly instances: readonly {
      readonly instanceType: string;
      readonly gpuModel: string;
      readonly runtimeHours: number;
      readonly spotUsd: number;
      readonly onDemandUsd: number;
      readonly spotPriceLive: boolean;
      /** Whether the on-demand price is the deploy region's from the AWS Price List API (else the us-east-1 table). */
      readonly onDemandPriceLive: boolean;
    }[];
  }[];
  readonly unestimated: readonly string[];
  readonly warnings: readonly string[];
  /** The AMI and quota checks (lib/cli/doctor), or why they were skipped. */
  readonly accountChecks?: AccountChecks;
}

/** plan's share of `spot-sweep doctor`: the AMI and quota checks, run when AWS credentials exist. */
export interface AccountChecks {
  readonly region?: string;
  readonly checks: readonly Check[];
  /** Why they did not run (no credentials, --offline, no answer); absent when they ran. */
  readonly skipped?: string;
}

export function planJson(spec: SweepSpec, estimate: SweepEstimate, priceNote: string, priceWarnings: readonly string[] = [], account?: AccountChecks): PlanJson {
  return {
    sweep: spec.name,
    stack: sweepStackName(spec.name),
    budgetUsd: spec.budgetUsd,
    totalUsd: estimate.totalUsd,
    overBudget: estimate.overBudget,
    wallHours: estimate.wallHours,
    maxParallel: estimate.maxParallel,
    prices: priceNote,
    configs: estimate.configs.map((c) => ({
      config: c.config.name,
      market: c.config.market,
      examples: c.config.examples,
      gpus: c.config.gpus,
      estimateUsd: c.budgetUsd,
      runtimeHours: c.runtimeHours,
      maxRuntimeHours: c.config.maxRuntimeHours,
      retries: c.config.retries,
      instances: c.byInstance.map((e) => ({
        instanceType: e.instance.instanceType,
        gpuModel: e.instance.gpuModel,
        runtimeHours: e.runtimeHours,
        spotUsd: e.spotUsd,
        onDemandUsd: e.onDemandUsd,
        spotPriceLive: e.spotPriceLive,
        onDemandPriceLive: e.onDemandPriceLive,
      })),
    })),
    unestimated: estimate.unestimated,
    warnings: planWarnings(estimate, priceWarnings),
    ...(account ? { accountChecks: account } : {}),
  };
}

/** Give up on the account checks after this long: `plan` must never hang on a slow or absent network. */
const ACCOUNT_CHECKS_TIMEOUT_MS = 10_000;

/**
 * The AMI and quota checks of `spot-sweep doctor`, when AWS credentials exist (judged as for the price
 * lookups: environment and shared files only). Never throws: a failure is the reason they were skipped.
 */
export async function accountChecks(spec: SweepSpec, env: NodeJS.ProcessEnv, offline: boolean, timeoutMs = ACCOUNT_CHECKS_TIMEOUT_MS): Promise<AccountChecks> {
  if (offline) return { checks: [], skipped: '--offline given' };
  if (!hasAwsCredentials(env)) return { checks: [], skipped: 'no AWS credentials found' };
  let session: AwsSession;
  try {
    session = await AwsSession.open({}, env);
  } catch (err) {
    return { checks: [], skipped: (err as Error).message.replace(/\.$/, '') };
  }
  // Loaded only here: the checks pull in SDK clients an offline plan never needs.
  const { sessionDeps } = require('../doctor/types') as typeof import('../doctor/types');
  const { amiChecks } = require('../doctor/ami') as typeof import('../doctor/ami');
  const { quotaLines } = require('../doctor/run') as typeof import('../doctor/run');
  const deps = sessionDeps(session, env);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
  try {
    const run = Promise.all([amiChecks(deps, spec).catch((err: Error) => [{ name: 'ami', result: 'warn' as const, finding: err.message, fix: '' }]), quotaLines(deps, spec)]);
    const r = await Promise.race([run, timeout]);
    if (r === 'timeout') return { region: session.region, checks: [], skipped: `no answer from AWS within ${timeoutMs / 1000} s` };
    return { region: session.region, checks: r.flat() };
  } finally {
    clearTimeout(timer);
    session.close();
  }
}

const options = {
  offline: { type: 'boolean', help: 'use the built-in price table (us-east-1); do not ask EC2 for spot prices or the Price List API for on-demand prices' },
  json: { type: 'boolean', help: 'print the estimate as one JSON document (per config, total, budget, overBudget) and nothing else' },
} as const satisfies OptionTable;

export const plan: Command<typeof options> = {
  name: 'plan',
  summary: 'validate the sweep spec and estimate runtime and cost',
  description: `
Checks the whole spec and lists every problem at once (JSON path, value, fix). Prints, per config,
the instance types, GPU model and count, market, estimated runtime and cost on spot and on-demand,
and the sweep total against budgetUsd. With AWS credentials configured it asks EC2 for current spot
prices (5 s timeout) and, when AWS_REGION is not us-east-1, the AWS Price List API for that region's
on-demand prices; otherwise, or with --offline, it uses the built-in us-east-1 price table and says so,
with a warning when the sweep deploys to another region. With credentials (and without --offline) it also
runs doctor's AMI-parameter and vCPU-quota checks and prints their lines; it says when it skipped them.
Spec reference: sweeps/README.md`,
  positionals: [{ name: 'spec.json', help: 'the sweep spec, e.g. sweeps/demo.json', required: true }],
  options,
  exits: [
    ['ok', 'the plan is printed and within budget'],
    'specError',
    'usage',
    'overBudget',
  ],
  async run({ positionals, options: o }, io) {
    const spec = loadSpec(positionals[0]);
    const types = [...new Set(spec.configs.flatMap((c) => c.instanceTypes))];
    const [spot, onDemand] = o.offline
      ? [{ prices: new Map<string, number>(), note: 'built-in table (typical spot); --offline given, so no live spot lookup.' }, offlineOnDemand(io.env)]
      : await Promise.all([lookupSpotPrices(types, io.env), lookupOnDemandPrices(types, io.env)]);
    const estimate = estimateSweep(spec, spot.prices, onDemand.prices);
    const note = `${spot.note} ${onDemand.note}`;
    const warnings = onDemand.warning ? [onDemand.warning] : [];
    const account = await accountChecks(spec, io.env, o.offline);
    io.out(o.json ? `${JSON.stringify(planJson(spec, estimate, note, warnings, account), null, 2)}\n` : formatPlan(spec, estimate, note, warnings, account));
    return estimate.overBudget ? EXIT_CODES.cli.overBudget : EXIT_CODES.cli.ok;
  },
};

/** `--offline`: the built-in table, with the warning when AWS_REGION names another region than the table's. */
function offlineOnDemand(env: NodeJS.ProcessEnv): OnDemandLookup {
  const region = env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  return {
    prices: new Map(),
    note: ON_DEMAND_FROM_TABLE,
    ...(region !== undefined && region !== PRICE_SOURCE.region ? { warning: tableRegionWarning(region, '--offline was given') } : {}),
  };
}
