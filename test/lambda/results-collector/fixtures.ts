import { ConfigArtifacts } from '../../../lib/results/leaderboard';

/** A results.json as the trainer writes it (.ci/CONTRACTS.md), with the given fold scores. */
export function results(folds: number[], extra: { device?: string; examplesPerSecond?: number; totalSeconds?: number } = {}): string {
  const mean = folds.reduce((a, b) => a + b, 0) / folds.length;
  const std = Math.sqrt(folds.reduce((a, f) => a + (f - mean) ** 2, 0) / (folds.length - 1));
  return JSON.stringify({
    version: 1,
    config: { epochs: 3, batchSize: 1024 },
    folds: folds.map((ndcg10, fold) => ({ fold, ndcg10, trainLoss: 2.1, trainExamples: 78840, testQueries: 120, seconds: 300 })),
    ndcg10: { mean, std, ddof: 1 },
    totalSeconds: extra.totalSeconds ?? 3000,
    examplesPerSecond: extra.examplesPerSecond ?? 2600,
    hardware: { device: extra.device ?? 'cuda', gpuName: 'NVIDIA A10G', gpuCount: 1, precision: 'bf16' },
    software: { torch: '2.9.1', cuda: '12.8', python: '3.12.3' },
    data: {},
  });
}

/** Four configs: two scored, one with a malformed results.json, one failed; strings meant to break HTML. */
export const ARTIFACTS: ConfigArtifacts[] = [
  {
    config: 'o',
    resultsText: results([0.4482, 0.4401, 0.4563, 0.4519, 0.4447, 0.4488, 0.4392, 0.4575, 0.4471, 0.4512], { device: 'cuda', totalSeconds: 25200, examplesPerSecond: 1200 }),
    statusText: JSON.stringify({ state: 'SUCCEEDED', attempts: 2, interruptions: 1, spendUsd: 2.1 }),
  },
  {
    config: 'p',
    resultsText: results([0.4611, 0.4702, 0.4655, 0.4588, 0.4690], { device: '<img src=x onerror=alert(1)> & "gpu"', totalSeconds: 4100, examplesPerSecond: 5400 }),
    statusText: JSON.stringify({ state: 'SUCCEEDED', attempts: 1, interruptions: 0 }),
  },
  { config: 'q', resultsText: '{"version": 1, "folds": [', statusText: JSON.stringify({ state: 'SUCCEEDED', attempts: 1 }) },
  { config: 'r', statusText: JSON.stringify({ state: 'FAILED', attempts: 3, message: 'CUDA out of memory <script>alert("x")</script>' }) },
];

/** The guard's ledger: per-config spend (p's comes from here; o's status.json figure is overridden). */
export const SPEND = JSON.stringify({ version: 1, sweep: 'seed-plan', budgetUsd: 40, totalUsd: 9.25, configs: { o: { usd: 2.25 }, p: { usd: 6.5 }, r: { usd: 0.5 } }, instances: {} });
