import { contractProblems, ResultsJson } from '../contract';
import { tQuantile, tTwoSidedP } from './stats';

/**
 * Which config wins, and whether the win is real: every config against one baseline, paired fold by
 * fold. Folds share their test queries when the configs share the data, the seed, the folds count and
 * the examples (the trainer assigns queries to folds from those alone), so the per-fold difference
 * removes the folds' own difficulty and a paired t test on it says whether the mean difference is
 * more than noise. Configs whose folds differ are never paired: they are "not comparable", with why.
 * Plain TypeScript (no AWS, no CDK): the results collector and the CLI share it.
 */

/** Significance level of the verdicts and 1 - the confidence of the intervals. */
export const ALPHA = 0.05;

export type Verdict = 'better' | 'worse' | 'no difference shown' | 'not comparable' | 'baseline';

/** One config's readable train-mode results.json, by config name. */
export interface ConfigResults {
  readonly config: string;
  readonly results: Extract<ResultsJson, { mode: 'train' }>;
}

export interface Comparison {
  readonly config: string;
  readonly verdict: Verdict;
  /** Mean nDCG@10 over folds and its std (ddof 1), as results.json records them. */
  readonly mean: number;
  readonly std: number;
  readonly folds: number;
  /** Test queries per fold; one number when every fold has the same count. */
  readonly testQueries: readonly number[];
  /** Paired against the baseline; absent for the baseline and for configs that are not comparable. */
  readonly paired?: PairedDelta;
  /** Why the config is not comparable with the baseline (sentences). */
  readonly why?: string;
  /** Settings whose value differs from the baseline's: key -> [this config's, the baseline's], as text. */
  readonly differs: Readonly<Record<string, readonly [string, string]>>;
  readonly instanceType: string;
  readonly market: string;
  readonly interruptions: number;
  readonly trainLosses: readonly number[];
  /** Mean train loss per epoch over the folds (folds[].epochLosses), epoch 1 first; [] when results.json has none. */
  readonly epochLosses: readonly number[];
  readonly totalSeconds: number;
}

/** The paired per-fold difference (config - baseline) of nDCG@10. */
export interface PairedDelta {
  readonly n: number;
  readonly meanDelta: number;
  readonly stdDelta: number;
  /** 95% confidence interval of the mean difference (Student t, n - 1 df). */
  readonly ciLow: number;
  readonly ciHigh: number;
  readonly t: number;
  /** Two-sided p-value of the paired t test. */
  readonly p: number;
}

export interface SweepComparison {
  readonly baseline: string;
  /** The baseline first, then the others by mean nDCG@10, best first. */
  readonly rows: readonly Comparison[];
  /** Keys of the settings that differ between any two configs (train settings, examples, instance type, market). */
  readonly differingKeys: readonly string[];
  /** Configs left out (no readable train-mode results), one sentence each. */
  readonly notes: readonly string[];
  /** Script-mode configs (their own script: no per-fold scores or train losses the report can read). @default [] */
  readonly scriptConfigs?: readonly string[];
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const sampleStd = (xs: readonly number[]): number => {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
};

/** A paired t test of `a - b` over aligned samples; undefined below 2 pairs. */
export function pairedDelta(a: readonly number[], b: readonly number[]): PairedDelta | undefined {
  const d = a.map((x, i) => x - b[i]);
  const n = d.length;
  if (n < 2) return undefined;
  const m = mean(d);
  const s = sampleStd(d);
  const se = s / Math.sqrt(n);
  const half = tQuantile(1 - ALPHA / 2, n - 1) * se;
  // Identical scores on every fold: no difference at all (t = 0, p = 1); a constant non-zero one is certain.
  const t = se === 0 ? (m === 0 ? 0 : Math.sign(m) * Infinity) : m / se;
  return { n, meanDelta: m, stdDelta: s, ciLow: m - half, ciHigh: m + half, t, p: tTwoSidedP(t, n - 1) };
}

/** The settings of a config that explain a ranking, as text, keyed by the name a user writes in a spec. */
export function settingsOf(r: ConfigResults['results']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(r.config)) {
    if (key === 'maxExamples') out.examples = value === null ? 'all' : String(value);
    else out[`train.${key}`] = JSON.stringify(value);
  }
  out.instanceType = r.job.instanceType;
  out.market = r.job.market;
  return out;
}

const queriesText = (qs: readonly number[]): string => (new Set(qs).size === 1 ? String(qs[0]) : qs.join('/'));

/** Why two configs' folds are not the same test sets; empty when they are. */
export function foldMismatch(c: ConfigResults, base: ConfigResults): string[] {
  const why: string[] = [];
  const cq = c.results.folds.map((f) => f.testQueries);
  const bq = base.results.folds.map((f) => f.testQueries);
  const cIds = c.results.folds.map((f) => f.fold).join(',');
  const bIds = base.results.folds.map((f) => f.fold).join(',');
  if (cIds !== bIds) why.push(`${c.config} has folds ${cIds}, ${base.config} has folds ${bIds}`);
  else if (cq.some((q, i) => q !== bq[i])) {
    why.push(`${c.config} is scored on ${queriesText(cq)} test queries per fold, ${base.config} on ${queriesText(bq)}`);
  }
  const cs = settingsOf(c.results);
  const bs = settingsOf(base.results);
  if (cs.examples !== bs.examples) why.push(`${c.config} uses ${cs.examples} examples, ${base.config} ${bs.examples}`);
  for (const key of ['train.folds', 'train.seed'] as const) {
    if (cs[key] !== bs[key]) why.push(`${key} is ${cs[key]} in ${c.config}, ${bs[key]} in ${base.config} (the folds are drawn from the seed and the folds count)`);
  }
  const files = [...new Set([...Object.keys(c.results.data), ...Object.keys(base.results.data)])].sort();
  const otherData = files.filter((f) => c.results.data[f] !== base.results.data[f]);
  if (otherData.length > 0) why.push(`${c.config} and ${base.config} read different data (${otherData.join(', ')} differ)`);
  return why;
}

export interface CompareInput {
  /** Each config's results.json text (undefined when it has none), in the spec's order. */
  readonly configs: readonly { readonly config: string; readonly resultsText?: string; readonly interruptions?: number }[];
  /**
   * The config the others are compared with (spec key `baseline`).
   * @default - the first config with results, in the spec's order
   */
  readonly baseline?: string;
}

/** Compares every config with the baseline; configs without readable train-mode results are noted, not compared. */
export function compareConfigs(input: CompareInput): SweepComparison {
  const notes: string[] = [];
  const scriptConfigs: string[] = [];
  const usable: ConfigResults[] = [];
  for (const c of input.configs) {
    if (c.resultsText === undefined) {
      notes.push(`${c.config}: no results.json yet.`);
      continue;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(c.resultsText);
    } catch {
      notes.push(`${c.config}: results.json is not valid JSON (see Problems).`);
      continue;
    }
    if (contractProblems('results', raw, 1).length > 0) {
      notes.push(`${c.config}: results.json does not fit its schema (see Problems).`);
      continue;
    }
    const results = raw as ResultsJson;
    if (results.mode !== 'train') {
      scriptConfigs.push(c.config);
      notes.push(`${c.config}: a script-mode config without per-fold scores; not compared.`);
      continue;
    }
    usable.push({ config: c.config, results });
  }
  const requested = input.baseline;
  let base = usable.find((u) => u.config === (requested ?? usable[0]?.config));
  if (requested !== undefined && base === undefined) {
    notes.push(`The baseline "${requested}" has no results yet: the configs are compared with ${usable[0]?.config ?? 'nothing'} until it has.`);
    base = usable[0];
  }
  if (!base) return { baseline: requested ?? '', rows: [], differingKeys: [], notes, scriptConfigs };
  const interruptions = new Map(input.configs.map((c) => [c.config, c.interruptions]));
  const baseSettings = settingsOf(base.results);
  const allSettings = usable.map((u) => settingsOf(u.results));
  const keys = [...new Set(allSettings.flatMap((s) => Object.keys(s)))];
  const differingKeys = keys.filter((k) => new Set(allSettings.map((s) => s[k])).size > 1);
  const rows = usable.map((u): Comparison => {
    const settings = settingsOf(u.results);
    const differs = Object.fromEntries(differingKeys.filter((k) => settings[k] !== baseSettings[k]).map((k) => [k, [settings[k] ?? '–', baseSettings[k] ?? '–'] as const]));
    const common = {
      config: u.config,
      mean: u.results.ndcg10.mean,
      std: u.results.ndcg10.std,
      folds: u.results.folds.length,
      testQueries: u.results.folds.map((f) => f.testQueries),
      differs,
      instanceType: u.results.job.instanceType,
      market: u.results.job.market,
      interruptions: interruptions.get(u.config) ?? u.results.job.interruptions,
      trainLosses: u.results.folds.map((f) => f.trainLoss),
      epochLosses: meanPerEpoch(u.results.folds.map((f) => f.epochLosses)),
      totalSeconds: u.results.totalSeconds,
    };
    if (u === base) return { ...common, verdict: 'baseline' };
    const why = foldMismatch(u, base!);
    if (why.length > 0) return { ...common, verdict: 'not comparable', why: `${why.join('; ')}.` };
    const paired = pairedDelta(
      u.results.folds.map((f) => f.ndcg10),
      base!.results.folds.map((f) => f.ndcg10),
    );
    if (!paired) return { ...common, verdict: 'not comparable', why: 'one fold only: a paired test needs at least 2.' };
    const verdict: Verdict = paired.p >= ALPHA ? 'no difference shown' : paired.meanDelta > 0 ? 'better' : 'worse';
    return { ...common, verdict, paired };
  });
  rows.sort((x, y) => (x.verdict === 'baseline' ? -1 : y.verdict === 'baseline' ? 1 : y.mean - x.mean || x.config.localeCompare(y.config)));
  return { baseline: base.config, rows, differingKeys, notes, scriptConfigs };
}

/**
 * Each epoch's mean over the folds that recorded it. A fold resumed from a checkpoint of a trainer before
 * epochLosses holds only the epochs from the resume on, so the lists line up at their last (final) epoch.
 */
function meanPerEpoch(perFold: readonly (readonly number[] | undefined)[]): number[] {
  const epochs = Math.max(0, ...perFold.map((l) => l?.length ?? 0));
  return Array.from({ length: epochs }, (_, i) =>
    mean(perFold.flatMap((l) => {
      const at = i - (epochs - (l?.length ?? 0));
      return l && at >= 0 ? [l[at]] : [];
    })),
  );
}
