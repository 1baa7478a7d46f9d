import type { ResolvedConfig, SweepSpec } from '../spec/types';
import { INSTANCES, InstanceInfo } from './instances';
import { THROUGHPUT, examplesPerSecond } from './throughput';

/** Spot prices found live, USD per hour by instance type; types missing here use the table. */
export type SpotPrices = ReadonlyMap<string, number>;
/** On-demand prices found live for the deploy region (the AWS Price List API), USD per hour; types missing here use the table. */
export type OnDemandPrices = ReadonlyMap<string, number>;

/** The estimate of one config on one instance type. */
export interface InstanceEstimate {
  readonly instance: InstanceInfo;
  readonly runtimeHours: number;
  readonly spotUsd: number;
  readonly onDemandUsd: number;
  /** Spot price used, USD/h, and whether it came from the live lookup. */
  readonly spotUsdPerHour: number;
  readonly spotPriceLive: boolean;
  /** On-demand price used, USD/h, and whether it came from the live lookup (else the us-east-1 table). */
  readonly onDemandUsdPerHour: number;
  readonly onDemandPriceLive: boolean;
}

export interface ConfigEstimate {
  readonly config: ResolvedConfig;
  /** Training example-passes: examples x epochs x (folds - 1), i.e. folds x epochs x the (folds-1)/folds training share. */
  readonly examplePasses: number | null;
  /** One entry per listed instance type, in the spec's order; empty when examples is unknown. */
  readonly byInstance: readonly InstanceEstimate[];
  /**
   * What the config is expected to cost at its market on the dearest listed type (the Auto Scaling
   * group may get any of them): spot price for `spot`, on-demand for `on-demand` and, as the worst
   * case, for `spot-then-on-demand`. `null` when examples is unknown.
   */
  readonly budgetUsd: number | null;
  /** Longest runtime over the listed types, hours. */
  readonly runtimeHours: number | null;
}

export interface SweepEstimate {
  readonly configs: readonly ConfigEstimate[];
  /** Sum of the configs' budgetUsd (configs without an estimate count as 0). */
  readonly totalUsd: number;
  readonly budgetUsd: number;
  readonly overBudget: boolean;
  /** Names of configs that could not be estimated (no `examples`). */
  readonly unestimated: readonly string[];
  /**
   * Hours from the deploy until the last config ends: the longest config when every config runs at once, or with
   * maxParallel the makespan of starting configs in spec order as slots free up (what lambda/scheduler does).
   * Configs without an estimate count 0 h. `null` when no config has an estimate.
   */
  readonly wallHours: number | null;
  /** The spec's maxParallel (null: no cap). */
  readonly maxParallel: number | null;
}

/**
 * The makespan of running jobs of these durations, in this order, on `slots` parallel slots (greedy: each job
 * takes the slot that frees first). `slots` null or at least the number of jobs: the longest job.
 */
export function makespanHours(durations: readonly number[], slots: number | null): number {
  if (durations.length === 0) return 0;
  const n = slots === null ? durations.length : Math.max(1, Math.min(slots, durations.length));
  const free = new Array<number>(n).fill(0);
  for (const d of durations) {
    let first = 0;
    for (let i = 1; i < n; i++) if (free[i] < free[first]) first = i;
    free[first] += d;
  }
  return Math.max(...free);
}

/** Estimates runtime and cost of one config on each of its instance types. */
export function estimateConfig(config: ResolvedConfig, spotPrices: SpotPrices = new Map(), onDemandPrices: OnDemandPrices = new Map()): ConfigEstimate {
  if (config.examples === null) {
    return { config, examplePasses: null, byInstance: [], budgetUsd: null, runtimeHours: null };
  }
  const { folds, epochs } = config.train;
  const examplePasses = config.examples * folds * epochs * ((folds - 1) / folds);
  const byInstance = config.instanceTypes.map((type) => {
    const instance = INSTANCES.get(type);
    if (!instance) throw new Error(`instance type ${type} is not in the table; validate the spec first.`);
    const rate = examplesPerSecond(instance.gpuModel, config.gpus, config.train.precision);
    const runtimeHours = THROUGHPUT[instance.gpuModel].setupMinutes / 60 + examplePasses / rate / 3600;
    const live = spotPrices.get(type);
    const spotUsdPerHour = live ?? instance.spotUsdPerHour;
    const liveOnDemand = onDemandPrices.get(type);
    const onDemandUsdPerHour = liveOnDemand ?? instance.onDemandUsdPerHour;
    return {
      instance,
      runtimeHours,
      spotUsd: runtimeHours * spotUsdPerHour,
      onDemandUsd: runtimeHours * onDemandUsdPerHour,
      spotUsdPerHour,
      spotPriceLive: live !== undefined,
      onDemandUsdPerHour,
      onDemandPriceLive: liveOnDemand !== undefined,
    };
  });
  const atMarket = (e: InstanceEstimate): number => (config.market === 'spot' ? e.spotUsd : e.onDemandUsd);
  return {
    config,
    examplePasses,
    byInstance,
    budgetUsd: Math.max(...byInstance.map(atMarket)),
    runtimeHours: Math.max(...byInstance.map((e) => e.runtimeHours)),
  };
}

/** Estimates every config of a sweep and compares the total with the budget. */
export function estimateSweep(spec: SweepSpec, spotPrices: SpotPrices = new Map(), onDemandPrices: OnDemandPrices = new Map()): SweepEstimate {
  const configs = spec.configs.map((c) => estimateConfig(c, spotPrices, onDemandPrices));
  const totalUsd = configs.reduce((sum, c) => sum + (c.budgetUsd ?? 0), 0);
  return {
    configs,
    totalUsd,
    budgetUsd: spec.budgetUsd,
    overBudget: totalUsd > spec.budgetUsd,
    unestimated: configs.filter((c) => c.budgetUsd === null).map((c) => c.config.name),
    wallHours: configs.every((c) => c.runtimeHours === null) ? null : makespanHours(configs.map((c) => c.runtimeHours ?? 0), spec.maxParallel ?? null),
    maxParallel: spec.maxParallel ?? null,
  };
}
