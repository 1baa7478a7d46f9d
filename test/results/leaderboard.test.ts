import { buildLeaderboard, formatLeaderboard } from '../../lib/results/leaderboard';

const results = (mean: number, std: number, folds: number[], extra: Record<string, unknown> = {}): string =>
  JSON.stringify({
    version: 1,
    folds: folds.map((ndcg10, fold) => ({ fold, ndcg10 })),
    ndcg10: { mean, std, ddof: 1 },
    examplesPerSecond: 12345.6,
    totalSeconds: 75,
    hardware: { device: 'cuda' },
    ...extra,
  });
const status = (state: string, extra: Record<string, unknown> = {}): string => JSON.stringify({ state, attempts: 1, interruptions: 0, ...extra });

describe('leaderboard', () => {
  test('ranks succeeded configs by mean nDCG@10, best first, with spread, throughput and wall time', () => {
    const board = buildLeaderboard([
      { config: 'o', resultsText: results(0.41, 0.02, [0.4, 0.42]), statusText: status('SUCCEEDED') },
      { config: 'p', resultsText: results(0.45, 0.01, [0.44, 0.46]), statusText: status('SUCCEEDED', { interruptions: 2 }) },
    ]);
    expect(board.rows.map((r) => r.config)).toEqual(['p', 'o']);
    expect(board.problems).toEqual([]);
    const text = formatLeaderboard(board);
    expect(text).toMatch(/^1\s+p\s+SUCCEEDED\s+0\.4500 ± 0\.0100\s+12,346\s+75 s\s+2 interruption\(s\) survived$/m);
    expect(text).toMatch(/^2\s+o\s+SUCCEEDED\s+0\.4100 ± 0\.0200/m);
  });

  test('a failed config is listed unranked with its failure message, never with a score', () => {
    const board = buildLeaderboard([
      { config: 'bad', statusText: status('FAILED', { message: 'pairs.csv row 7: relevance -1 is negative' }) },
      { config: 'ok', resultsText: results(0.3, 0, [0.3, 0.3]), statusText: status('SUCCEEDED') },
    ]);
    expect(board.rows.map((r) => [r.config, r.ndcgMean])).toEqual([
      ['ok', 0.3],
      ['bad', undefined],
    ]);
    expect(formatLeaderboard(board)).toMatch(/^-\s+bad\s+FAILED\s+-\s+-\s+-\s+pairs\.csv row 7: relevance -1 is negative$/m);
  });

  test('a malformed results file is reported, not fatal, and the other configs still rank', () => {
    const board = buildLeaderboard([
      { config: 'broken', resultsText: '{"ndcg10": ', statusText: status('SUCCEEDED') },
      { config: 'nofolds', resultsText: JSON.stringify({ ndcg10: { mean: 0.5 } }) },
      { config: 'good', resultsText: results(0.2, 0.1, [0.1, 0.3]) },
    ]);
    expect(board.rows[0].config).toBe('good');
    expect(board.rows[0].state).toBe('SUCCEEDED');
    expect(board.problems).toHaveLength(2);
    expect(board.problems[0]).toMatch(/^broken\/results\.json: not valid JSON/);
    expect(board.problems[1]).toMatch(/^nofolds\/results\.json: missing ndcg10\.mean/);
    expect(formatLeaderboard(board)).toContain('Problems:');
  });

  test('a config still training shows its state and no score', () => {
    const board = buildLeaderboard([{ config: 'r', statusText: status('TRAINING') }]);
    expect(board.rows[0]).toMatchObject({ config: 'r', state: 'TRAINING', problem: 'no results.json yet' });
  });
});
