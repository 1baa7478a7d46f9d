import { ControlJson, contractProblems, ResultsJson, StatusJson, TRAIN_PROPERTIES } from '../../lib/contract';

/**
 * Store files as the parts of the system write them, each checked against its schema in
 * training/contract/ when built, so a test never passes on a document the real writer could not produce.
 */

const AT = '2026-11-28T10:00:00Z';

function checked<T>(schema: 'status' | 'control' | 'results', doc: T): T {
  const problems = contractProblems(schema, doc);
  if (problems.length > 0) throw new Error(`test fixture does not fit ${schema}.schema.json: ${problems.join('; ')}`);
  return doc;
}

/** A status.json as the job runner writes it. */
export function statusDoc(sweep: string, config: string, state: StatusJson['state'], extra: Partial<StatusJson> = {}): StatusJson {
  return checked('status', {
    version: 1,
    state,
    history: [{ state, at: AT, attempt: extra.attempts ?? 1 }],
    updatedAt: AT,
    sweep,
    config,
    attempts: 1,
    interruptions: 0,
    ...extra,
  } as StatusJson);
}

/** A control.json as a requester writes it. */
export function controlDoc(action: ControlJson['action'], by: string, reason: string, at = AT): ControlJson {
  return checked('control', { version: 1, action, by, reason, at, id: `req-${action}-${by.replace(/\W+/g, '-')}` });
}

const job = (sweep: string, config: string) => ({ sweep, config, instanceType: 'g5.xlarge', market: 'spot', attempts: 1, interruptions: 0 });

/** A train-mode results.json (the trainer's results plus the runner's `job`) with these fold scores. */
export function trainResults(
  sweep: string,
  config: string,
  folds: readonly number[],
  extra: { device?: 'cpu' | 'cuda' | 'mps'; examplesPerSecond?: number; totalSeconds?: number; std?: number } = {},
): ResultsJson {
  const mean = folds.reduce((a, b) => a + b, 0) / folds.length;
  const std = extra.std ?? (folds.length > 1 ? Math.sqrt(folds.reduce((a, f) => a + (f - mean) ** 2, 0) / (folds.length - 1)) : 0);
  const settings = Object.fromEntries(Object.entries(TRAIN_PROPERTIES).map(([k, p]) => [k, p.default]));
  return checked('results', {
    version: 1,
    mode: 'train',
    config: { ...settings, folds: folds.length, maxExamples: null },
    folds: folds.map((ndcg10, fold) => ({ fold, ndcg10, trainLoss: 2.1, epochLosses: [2.9, 2.4, 2.1], trainExamples: 9000, testQueries: 100, seconds: 60 })),
    ndcg10: { mean, std, ddof: 1 },
    totalSeconds: extra.totalSeconds ?? 600,
    examplesPerSecond: extra.examplesPerSecond ?? 15000,
    hardware: { device: extra.device ?? 'cuda', gpuName: 'NVIDIA A10G', gpuCount: 1, precision: 'bf16' },
    software: { torch: '2.9.1', cuda: '12.8', python: '3.12.3' },
    data: {},
    job: job(sweep, config),
  } as unknown as ResultsJson);
}

/** A script-mode results.json: the files the results glob collected, no metric. */
export function scriptResults(sweep: string, config: string, files: readonly string[] = ['results/metrics.json', 'results/notes.txt']): ResultsJson {
  return checked('results', { version: 1, mode: 'script', files: [...files], results: null, job: job(sweep, config) } as unknown as ResultsJson);
}

/** A script-mode results.json whose script declared a metric: as the job runner reads it (std ddof 1 of the folds). */
export function scriptMetricResults(
  sweep: string,
  config: string,
  metric: { name: string; folds: readonly number[]; higherIsBetter?: boolean; mean?: number },
): ResultsJson {
  const folds = [...metric.folds];
  const mean = metric.mean ?? folds.reduce((a, b) => a + b, 0) / folds.length;
  const avg = folds.reduce((a, b) => a + b, 0) / folds.length;
  const std = folds.length > 1 ? Math.sqrt(folds.reduce((a, f) => a + (f - avg) ** 2, 0) / (folds.length - 1)) : null;
  const file = 'results/metrics.json';
  return checked('results', {
    version: 1,
    mode: 'script',
    files: [file],
    results: { score: mean, folds },
    metric: { name: metric.name, higherIsBetter: metric.higherIsBetter ?? true, mean, std, folds, file },
    job: job(sweep, config),
  } as unknown as ResultsJson);
}

export const text = (doc: unknown): string => JSON.stringify(doc);
