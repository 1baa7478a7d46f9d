import { BUILT_IN_METRIC, canonicalMetricName, ConfigArtifacts } from './leaderboard';

/**
 * The sweep's history: results of earlier job.json versions of a config. When a config's job.json changes
 * (edited and deployed again under the same name), the job runner starts over and first moves the old
 * results.json to <config>/history/<first 16 hex digits of the old job digest>/results.json
 * (training/spot_runner/job.py start_over). They are another job's results: listed, never ranked.
 *
 * Read leniently (any JSON with the fields), not against today's schema: results of an older runner or
 * trainer stay listable although they lack fields added since (folds[].epochLosses, job.finishedAt).
 */

/** One earlier job's results.json, as read from the store. */
export interface HistoryArtifact {
  /** The history folder's name: the first 16 hex digits of the old job's digest (`unknown` when it had none). */
  readonly digest: string;
  /** Raw text of history/<digest>/results.json, or undefined when it could not be read. */
  readonly resultsText?: string;
}

/** One entry of leaderboard.json `history`. */
export interface HistoryRow {
  readonly config: string;
  /** The earlier job's digest (results.json job.jobDigest), else the history folder's name. */
  readonly jobDigest: string;
  /** Its nDCG@10 over the folds (train mode, or a script's metric named nDCG@10); undefined without. */
  readonly ndcg10?: { readonly mean: number; readonly std?: number };
  readonly folds?: number;
  /** When the job runner wrote those results (results.json job.finishedAt); undefined for older runners. */
  readonly finishedAt?: string;
  /** Why there is no score: unreadable, or a script without an nDCG@10 metric. */
  readonly note?: string;
}

type Json = Record<string, unknown>;
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const obj = (v: unknown): Json | undefined => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined);

/** One history row per earlier results.json, by config (in the artifacts' order), then newest first. */
export function buildHistory(artifacts: readonly ConfigArtifacts[]): HistoryRow[] {
  return artifacts.flatMap((a) => {
    const rows = (a.history ?? []).map((h) => historyRow(a.config, h));
    return rows.sort((x, y) => (y.finishedAt ?? '').localeCompare(x.finishedAt ?? '') || x.jobDigest.localeCompare(y.jobDigest));
  });
}

function historyRow(config: string, h: HistoryArtifact): HistoryRow {
  let doc: Json | undefined;
  try {
    doc = obj(JSON.parse(h.resultsText ?? ''));
  } catch {
    // Listed as unreadable below: a history file is kept, never ranked, so nothing depends on it.
  }
  if (!doc) return { config, jobDigest: h.digest, note: 'results.json unreadable' };
  const job = obj(doc.job) ?? {};
  const base = { config, jobDigest: str(job.jobDigest) ?? h.digest, ...(str(job.finishedAt) ? { finishedAt: str(job.finishedAt) } : {}) };
  const folds = Array.isArray(doc.folds) ? doc.folds.length : undefined;
  const ndcg = obj(doc.ndcg10);
  const mean = num(ndcg?.mean);
  if (doc.mode !== 'script' && mean !== undefined) return { ...base, ndcg10: { mean, std: num(ndcg?.std) }, folds };
  const metric = obj(doc.metric);
  const metricMean = num(metric?.mean);
  if (doc.mode === 'script' && metric && str(metric.name) && canonicalMetricName(str(metric.name)!) === BUILT_IN_METRIC && metric.higherIsBetter === true && metricMean !== undefined) {
    const perFold = Array.isArray(metric.folds) ? metric.folds.length : undefined;
    return { ...base, ndcg10: { mean: metricMean, std: num(metric.std) }, folds: perFold };
  }
  return { ...base, note: doc.mode === 'script' ? 'script mode: no nDCG@10 metric' : 'no nDCG@10 in results.json' };
}
