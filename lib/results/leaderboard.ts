/**
 * The sweep leaderboard: one row per config, built from each config's results.json and
 * status.json (the contracts in README "Contracts"). Plain TypeScript, no AWS and no CDK, so
 * the CLI (`local`, `results`) and the results Lambda share it.
 */

/** What one config left in its store; either file may be missing or malformed. */
export interface ConfigArtifacts {
  readonly config: string;
  /** Raw text of results.json, or undefined when there is none. */
  readonly resultsText?: string;
  /** Raw text of status.json, or undefined when there is none. */
  readonly statusText?: string;
}

export interface LeaderboardRow {
  readonly config: string;
  /** SUCCEEDED, FAILED, TRAINING, ... from status.json; `UNKNOWN` when it is missing. */
  readonly state: string;
  /** Mean nDCG@10 over folds; undefined unless the config succeeded with a valid results.json. */
  readonly ndcgMean?: number;
  /** Standard deviation of nDCG@10 over folds (the ddof recorded in results.json). */
  readonly ndcgStd?: number;
  readonly folds?: readonly number[];
  readonly examplesPerSecond?: number;
  readonly totalSeconds?: number;
  readonly device?: string;
  readonly attempts?: number;
  readonly interruptions?: number;
  /** Why the row has no score: the failure message, or what is wrong with results.json. */
  readonly problem?: string;
}

export interface Leaderboard {
  /** Best first: scored rows by mean nDCG@10 descending, then the others by name. */
  readonly rows: readonly LeaderboardRow[];
  /** One line per malformed file: reported, never fatal. */
  readonly problems: readonly string[];
}

type Json = Record<string, unknown>;

function parse(text: string | undefined, what: string, problems: string[]): Json | undefined {
  if (text === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as Json;
    problems.push(`${what}: not a JSON object`);
  } catch (err) {
    problems.push(`${what}: not valid JSON (${(err as Error).message})`);
  }
  return undefined;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const obj = (v: unknown): Json | undefined => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined);

/** Builds the leaderboard; malformed files are listed in `problems` and their rows left unscored. */
export function buildLeaderboard(artifacts: readonly ConfigArtifacts[]): Leaderboard {
  const problems: string[] = [];
  const rows = artifacts.map((a): LeaderboardRow => {
    const status = parse(a.statusText, `${a.config}/status.json`, problems);
    const results = parse(a.resultsText, `${a.config}/results.json`, problems);
    const state = typeof status?.state === 'string' ? status.state : results ? 'SUCCEEDED' : 'UNKNOWN';
    const base = {
      config: a.config,
      state,
      attempts: num(status?.attempts),
      interruptions: num(status?.interruptions),
    };
    if (!results) {
      const message = typeof status?.message === 'string' ? status.message : undefined;
      return { ...base, problem: message ?? (a.resultsText === undefined ? 'no results.json yet' : 'results.json unreadable') };
    }
    const ndcg = obj(results.ndcg10);
    const mean = num(ndcg?.mean);
    const folds = Array.isArray(results.folds) ? results.folds.map((f) => num(obj(f)?.ndcg10)) : [];
    if (mean === undefined || folds.length === 0 || folds.some((f) => f === undefined)) {
      const why = `${a.config}/results.json: missing ndcg10.mean or a fold's ndcg10`;
      problems.push(why);
      return { ...base, problem: why };
    }
    return {
      ...base,
      ndcgMean: mean,
      ndcgStd: num(ndcg?.std),
      folds: folds as number[],
      examplesPerSecond: num(results.examplesPerSecond),
      totalSeconds: num(results.totalSeconds),
      device: typeof obj(results.hardware)?.device === 'string' ? (obj(results.hardware)?.device as string) : undefined,
    };
  });
  rows.sort((x, y) => {
    if (x.ndcgMean !== undefined && y.ndcgMean !== undefined) return y.ndcgMean - x.ndcgMean;
    if (x.ndcgMean !== undefined) return -1;
    if (y.ndcgMean !== undefined) return 1;
    return x.config.localeCompare(y.config);
  });
  return { rows, problems };
}

function duration(seconds: number | undefined): string {
  if (seconds === undefined) return '-';
  if (seconds < 90) return `${seconds.toFixed(0)} s`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(2)} h`;
}

/** The leaderboard as an aligned text table, with the problems below it. */
export function formatLeaderboard(board: Leaderboard): string {
  const header = ['rank', 'config', 'state', 'nDCG@10 (mean ± std)', 'examples/s', 'wall time', 'note'];
  let rank = 0;
  const lines = board.rows.map((r) => [
    r.ndcgMean !== undefined ? String(++rank) : '-',
    r.config,
    r.state,
    r.ndcgMean !== undefined ? `${r.ndcgMean.toFixed(4)} ± ${(r.ndcgStd ?? 0).toFixed(4)}` : '-',
    r.examplesPerSecond !== undefined ? Math.round(r.examplesPerSecond).toLocaleString('en-US') : '-',
    duration(r.totalSeconds),
    r.problem ?? (r.interruptions ? `${r.interruptions} interruption(s) survived` : ''),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  const out = [fmt(header), ...lines.map(fmt)];
  if (board.problems.length > 0) out.push('', 'Problems:', ...board.problems.map((p) => `  - ${p}`));
  return `${out.join('\n')}\n`;
}
