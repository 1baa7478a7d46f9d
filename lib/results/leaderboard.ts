import { ACTION, contractProblems, FINAL_STATES, MODE, ResultsJson, STATE } from '../contract';
import { describeRequest, parseControl } from '../store/control';
import type { HistoryArtifact } from './history';

/**
 * The sweep leaderboard: one row per config, merging what the config's files say: results.json
 * (the score; checked against training/contract/results.schema.json), status.json (the state, as the
 * job runner alone writes it) and control.json (a request not yet obeyed). Plain TypeScript, no AWS and
 * no CDK, so the CLI (`local`, `results`) and the results Lambda share it.
 */

/** What one config left in its store; any file may be missing or malformed. */
export interface ConfigArtifacts {
  readonly config: string;
  /** Raw text of results.json, or undefined when there is none. */
  readonly resultsText?: string;
  /** Raw text of status.json, or undefined when there is none. */
  readonly statusText?: string;
  /** Raw text of control.json, or undefined when there is none (nobody asked anything). */
  readonly controlText?: string;
  /** Results of earlier job.json versions (history/<digest>/results.json): listed apart, never ranked. @default [] */
  readonly history?: readonly HistoryArtifact[];
}

export type ResultsMode = ResultsJson['mode'];

/** The built-in trainer's metric, under its one canonical name: script metrics named so rank with it. */
export const BUILT_IN_METRIC = 'ndcg@10';

/**
 * The name a metric ranks under: lower case, and every spelling of nDCG@10 (`nDCG@10`, `ndcg10`, `NDCG_10`,
 * `ndcg-10`) as {@link BUILT_IN_METRIC}. Configs whose canonical names (and directions) match rank together.
 */
export function canonicalMetricName(name: string): string {
  const lower = name.trim().toLowerCase();
  return /^ndcg[@_-]?10$/.test(lower) ? BUILT_IN_METRIC : lower;
}

/** A config's score: the built-in trainer's nDCG@10, or the metric a script declared. */
export interface Score {
  /** Canonical ({@link canonicalMetricName}): rows with the same name and direction rank together. */
  readonly name: string;
  readonly higherIsBetter: boolean;
  readonly mean: number;
  /** Over the folds, ddof 1; undefined with fewer than two fold values. */
  readonly std?: number;
  readonly folds?: readonly number[];
}

export interface LeaderboardRow {
  readonly config: string;
  /** SUCCEEDED, FAILED, TRAINING, ... from status.json; `UNKNOWN` when it is missing. */
  readonly state: string;
  /** results.json's mode: `train` (scored by nDCG@10) or `script` (the user's files, scored by the metric it declares). */
  readonly mode?: ResultsMode;
  /** The score, built-in or the script's declared metric; undefined when there is none. */
  readonly score?: Score;
  /** 1 = best among the rows scored by the same metric (name and direction); undefined for unscored rows. */
  readonly rank?: number;
  /** Mean nDCG@10 over folds: a train-mode results.json's, or a script's metric named nDCG@10 (higher is better). */
  readonly ndcgMean?: number;
  /** Standard deviation of nDCG@10 over folds (ddof 1, as results.json records). */
  readonly ndcgStd?: number;
  readonly folds?: readonly number[];
  readonly examplesPerSecond?: number;
  readonly totalSeconds?: number;
  readonly device?: string;
  readonly attempts?: number;
  /** Spot interruptions the job survived: status.json's count (every attempt), else results.json job's. */
  readonly interruptions?: number;
  /** The instance type of the last attempt (status.json, else results.json job); `local` off EC2. */
  readonly instanceType?: string;
  /** spot or on-demand of the last attempt (status.json, else results.json job); `local` off EC2. */
  readonly market?: string;
  /**
   * The final model the config kept (results.json `model`: train.finalModel): its store key
   * (`sweeps/<sweep>/<config>/model/`) and the SHA-256 of its model.safetensors; undefined when none.
   */
  readonly model?: { readonly key: string; readonly sha256: string };
  /** Script mode: the result files the job collected (under the config's results/). */
  readonly resultFiles?: readonly string[];
  /** Who stopped the job (status.json `stoppedBy`), for a STOPPED config. */
  readonly stoppedBy?: string;
  /** Said about a row that is as it should be: a script config's files, a pending stop request. */
  readonly note?: string;
  /** Why the row has no score when it should or might: the failure message, no or a broken results.json. */
  readonly problem?: string;
}

export interface Leaderboard {
  /**
   * Scored rows first, by metric (nDCG@10 first, then the other metric names in order), each metric's rows
   * best first as its direction says; then succeeded script rows without a metric; then the others; ties by name.
   */
  readonly rows: readonly LeaderboardRow[];
  /** One line per malformed file, naming the file and field: reported, never fatal. */
  readonly problems: readonly string[];
}

type Json = Record<string, unknown>;

function parse(text: string | undefined, what: string, problems: string[]): Json | undefined {
  if (text === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as Json;
    problems.push(`${what}: not a JSON object; the job runner writes an object, so the file was replaced by something else: run the config again.`);
  } catch (err) {
    problems.push(`${what}: not valid JSON (${(err as Error).message}); run the config again to rewrite it.`);
  }
  return undefined;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const SUCCEEDED = STATE.SUCCEEDED;
const TRAIN_MODE = MODE.train;
const SCRIPT_MODE = MODE.script;

/** Builds the leaderboard; malformed files are listed in `problems` and their rows left unscored. */
export function buildLeaderboard(artifacts: readonly ConfigArtifacts[]): Leaderboard {
  const problems: string[] = [];
  const rows = artifacts.map((a): LeaderboardRow => {
    const status = parse(a.statusText, `${a.config}/status.json`, problems);
    const raw = parse(a.resultsText, `${a.config}/results.json`, problems);
    const { control } = parseControl(a.controlText);
    const invalid = raw ? contractProblems('results', raw, 5) : [];
    const results = raw && invalid.length === 0 ? (raw as unknown as ResultsJson) : undefined;
    const resultsDigest = results?.job.jobDigest;
    const statusDigest = str(status?.jobDigest);
    // The job runner writes results.json only when the job SUCCEEDED: without a status.json, that is the
    // state. It uploads results.json, then writes SUCCEEDED, so a reader in between (the collector fires on
    // results.json) sees the job's own results (same digest) before the state: the results decide.
    const ownResults = resultsDigest !== undefined && resultsDigest === statusDigest;
    const state = ownResults ? SUCCEEDED : (str(status?.state) ?? (raw ? SUCCEEDED : 'UNKNOWN'));
    const job = (raw?.job ?? {}) as Json;
    const stoppedBy = str(status?.stoppedBy);
    const pendingStop = control?.action === ACTION.stop && !FINAL_STATES.has(state) ? describeRequest(control) : undefined;
    const base = {
      config: a.config,
      state,
      attempts: num(status?.attempts) ?? num(job.attempts),
      interruptions: num(status?.interruptions) ?? num(job.interruptions),
      instanceType: str(status?.instanceType) ?? str(job.instanceType),
      market: str(status?.market) ?? str(job.market),
      ...(stoppedBy ? { stoppedBy } : {}),
      ...(pendingStop ? { note: pendingStop } : {}),
    };
    const message = str(status?.message);
    const unscored = (): string =>
      stoppedBy ? `stopped by ${stoppedBy}${message ? `: ${message}` : ''}` : (message ?? (a.resultsText === undefined ? 'no results.json yet' : 'results.json unreadable'));
    if (!raw) return { ...base, problem: unscored() };
    if (!results) {
      problems.push(
        `${a.config}/results.json does not fit training/contract/results.schema.json: ${invalid.join('; ')}. ` +
          'It was written by another version of the job runner or edited by hand: run the config again to rewrite it.',
      );
      return { ...base, problem: 'results.json does not fit its schema (see Problems)' };
    }
    if (resultsDigest !== undefined && statusDigest !== undefined && !ownResults) {
      // The config's job.json changed since these results (the runner moves them to history/ when it starts
      // over): they are another job's, never ranked as this one's.
      return { ...base, problem: `results.json is of an earlier job.json (${resultsDigest.slice(0, 19)}…), not of the job now ${state}; not ranked` };
    }
    if (results.mode === SCRIPT_MODE) {
      const files = results.files;
      if (state !== SUCCEEDED) return { ...base, mode: SCRIPT_MODE, resultFiles: files, problem: unscored() };
      const metric = results.metric;
      // No metric declared: its files are the result. Unscored but not a problem.
      if (!metric) return { ...base, mode: SCRIPT_MODE, resultFiles: files, note: base.note ?? `script: ${files.length} result file(s), no metric declared` };
      const score: Score = {
        name: canonicalMetricName(metric.name),
        higherIsBetter: metric.higherIsBetter,
        mean: metric.mean,
        ...(metric.std !== null ? { std: metric.std } : {}),
        ...(metric.folds !== null ? { folds: metric.folds } : {}),
      };
      // Named nDCG@10 (and higher is better): the built-in's metric, so the script ranks and charts beside it.
      const builtIn = score.name === BUILT_IN_METRIC && score.higherIsBetter;
      return {
        ...base,
        mode: SCRIPT_MODE,
        resultFiles: files,
        score,
        ...(builtIn ? { ndcgMean: score.mean, ndcgStd: score.std, folds: score.folds } : {}),
        note: base.note ?? `script: ${metric.name} from ${metric.file}`,
      };
    }
    return {
      ...base,
      mode: TRAIN_MODE,
      score: { name: BUILT_IN_METRIC, higherIsBetter: true, mean: results.ndcg10.mean, std: results.ndcg10.std, folds: results.folds.map((f) => f.ndcg10) },
      ndcgMean: results.ndcg10.mean,
      ndcgStd: results.ndcg10.std,
      folds: results.folds.map((f) => f.ndcg10),
      examplesPerSecond: results.examplesPerSecond,
      totalSeconds: results.totalSeconds,
      device: results.hardware.device,
      ...(results.model ? { model: { key: results.model.key, sha256: results.model.sha256 } } : {}),
    };
  });
  const tier = (r: LeaderboardRow): number => (r.score !== undefined ? 0 : r.mode === SCRIPT_MODE && r.state === SUCCEEDED ? 1 : 2);
  rows.sort((x, y) => tier(x) - tier(y) || (tier(x) === 0 ? byScore(x.score!, y.score!) : 0) || x.config.localeCompare(y.config));
  const ranks = new Map<string, number>();
  const ranked = rows.map((r): LeaderboardRow => {
    if (!r.score) return r;
    const group = scoreGroup(r.score);
    const rank = (ranks.get(group) ?? 0) + 1;
    ranks.set(group, rank);
    return { ...r, rank };
  });
  return { rows: ranked, problems };
}

/** Rows rank together when their metric has the same name and direction. */
function scoreGroup(s: Score): string {
  return `${s.name}\u0000${s.higherIsBetter ? 'max' : 'min'}`;
}

/** The built-in's metric first, then the others by name (higher-is-better first); within one, best first. */
function byScore(x: Score, y: Score): number {
  const gx = scoreGroup(x);
  const gy = scoreGroup(y);
  if (gx !== gy) {
    const builtIn = `${BUILT_IN_METRIC}\u0000max`;
    return gx === builtIn ? -1 : gy === builtIn ? 1 : gx.localeCompare(gy);
  }
  return x.higherIsBetter ? y.mean - x.mean : x.mean - y.mean;
}

/** A score cell: `0.4482 ± 0.0100` for nDCG@10, `rmse (lower is better) 0.3100 ± 0.0200` for another metric. */
export function formatScore(s: Score | undefined): string {
  if (!s) return '-';
  const value = `${s.mean.toFixed(4)} ± ${s.std === undefined ? '-' : s.std.toFixed(4)}`;
  if (s.name === BUILT_IN_METRIC && s.higherIsBetter) return value;
  return `${s.name}${s.higherIsBetter ? '' : ' (lower is better)'} ${value}`;
}

function duration(seconds: number | undefined): string {
  if (seconds === undefined) return '-';
  if (seconds < 90) return `${seconds.toFixed(0)} s`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(2)} h`;
}

export interface FormatOptions {
  /**
   * Paints a state cell (already padded to the column width): the CLI colours states on a terminal.
   * @default - plain text
   */
  readonly paintState?: (state: string, cell: string) => string;
}

/** The leaderboard as an aligned text table, with the problems below it. */
export function formatLeaderboard(board: Leaderboard, options: FormatOptions = {}): string {
  const header = ['rank', 'config', 'state', 'nDCG@10 (mean ± std)', 'examples/s', 'wall time', 'note'];
  const lines = board.rows.map((r) => [
    r.rank !== undefined ? String(r.rank) : '-',
    r.config,
    r.state,
    formatScore(r.score),
    r.examplesPerSecond !== undefined ? Math.round(r.examplesPerSecond).toLocaleString('en-US') : '-',
    duration(r.totalSeconds),
    [r.problem, r.note].filter(Boolean).join('; ') || (r.interruptions ? `${r.interruptions} interruption(s) survived` : ''),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const paint = options.paintState ?? ((_state: string, cell: string) => cell);
  const fmt = (cells: string[], state?: string): string =>
    cells
      .map((c, i) => (i === 2 && state !== undefined ? paint(state, c.padEnd(widths[i])) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  const out = [fmt(header), ...lines.map((l, i) => fmt(l, board.rows[i].state))];
  if (board.problems.length > 0) out.push('', 'Problems:', ...board.problems.map((p) => `  - ${p}`));
  return `${out.join('\n')}\n`;
}

/**
 * One line per config that kept a final model, where it is (`describe` turns the store key into a path or
 * an s3:// URI), for what `python -m two_tower.encode --model` takes; '' when no config has one.
 */
export function formatModels(board: Leaderboard, describe: (key: string) => string): string {
  return board.rows
    .filter((r) => r.model !== undefined)
    .map((r) => `Model of ${r.config}: ${describe(r.model!.key)}\n`)
    .join('');
}
