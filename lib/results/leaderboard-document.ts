import { SWEEP_FILES } from '../contract';
import { buildHistory, HistoryRow } from './history';
import { buildLeaderboard, ConfigArtifacts, LeaderboardRow } from './leaderboard';

/** The sweep-level files the collector reads besides each config's results.json, status.json and control.json. */
export interface SweepSpend {
  readonly totalUsd?: number;
  readonly budgetUsd?: number;
  /** Per config, from the guard's spend.json. */
  readonly byConfig: Readonly<Record<string, number>>;
}

export interface LeaderboardEntry extends LeaderboardRow {
  /** Spend so far, from the guard's spend.json (status.json is the job runner's and carries no spend). */
  readonly spendUsd?: number;
}

/** The sweep's leaderboard.json (lib/contract `storeKeys.sweepFile(sweep, 'leaderboard')`). */
export interface LeaderboardDocument {
  readonly version: 1;
  readonly sweep: string;
  readonly generatedAt: string;
  readonly totalSpendUsd?: number;
  readonly budgetUsd?: number;
  readonly rows: readonly LeaderboardEntry[];
  /** Results of earlier job.json versions of the configs (lib/results/history.ts): never ranked, never in `rows`. */
  readonly history: readonly HistoryRow[];
  /** Malformed files, one line each: reported, never fatal. */
  readonly problems: readonly string[];
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** The spend figures of the guard's ledger; an unreadable ledger is a problem, not a failure. */
export function parseSpend(text: string | undefined, problems: string[]): SweepSpend {
  if (text === undefined) return { byConfig: {} };
  try {
    const ledger = JSON.parse(text) as { totalUsd?: unknown; budgetUsd?: unknown; configs?: Record<string, { usd?: unknown }> };
    const byConfig: Record<string, number> = {};
    for (const [config, c] of Object.entries(ledger.configs ?? {})) {
      const usd = num(c?.usd);
      if (usd !== undefined) byConfig[config] = usd;
    }
    return { totalUsd: num(ledger.totalUsd), budgetUsd: num(ledger.budgetUsd), byConfig };
  } catch (err) {
    problems.push(`${SWEEP_FILES.spend}: not valid JSON (${(err as Error).message})`);
    return { byConfig: {} };
  }
}

/** The leaderboard document: lib/results/leaderboard.ts's rows, ranked, with each config's spend. */
export function buildLeaderboardDocument(
  sweep: string,
  artifacts: readonly ConfigArtifacts[],
  spendText: string | undefined,
  generatedAt: string,
): LeaderboardDocument {
  const board = buildLeaderboard(artifacts);
  const problems = [...board.problems];
  const spend = parseSpend(spendText, problems);
  // Each row's rank is within its metric (lib/results/leaderboard.ts): a script's own metric ranks apart.
  const rows = board.rows.map((r): LeaderboardEntry => ({ ...r, spendUsd: spend.byConfig[r.config] }));
  return { version: 1, sweep, generatedAt, totalSpendUsd: spend.totalUsd, budgetUsd: spend.budgetUsd, rows, history: buildHistory(artifacts), problems };
}
