import { REQUESTERS } from '../../lib/contract';
import { buildLeaderboard, canonicalMetricName, formatLeaderboard } from '../../lib/results/leaderboard';
import { controlDoc, scriptMetricResults, scriptResults, statusDoc, text, trainResults } from './fixtures';

const S = 'board';
const status = (config: string, state: Parameters<typeof statusDoc>[2], extra: Parameters<typeof statusDoc>[3] = {}): string => text(statusDoc(S, config, state, extra));
const train = (config: string, folds: number[], extra: Parameters<typeof trainResults>[3] = {}): string =>
  text(trainResults(S, config, folds, { examplesPerSecond: 12345.6, totalSeconds: 75, ...extra }));

describe('leaderboard', () => {
  test('ranks succeeded configs by mean nDCG@10, best first, with spread, throughput and wall time', () => {
    const board = buildLeaderboard([
      { config: 'o', resultsText: train('o', [0.4, 0.42], { std: 0.02 }), statusText: status('o', 'SUCCEEDED') },
      { config: 'p', resultsText: train('p', [0.44, 0.46], { std: 0.01 }), statusText: status('p', 'SUCCEEDED', { interruptions: 2 }) },
    ]);
    expect(board.rows.map((r) => r.config)).toEqual(['p', 'o']);
    expect(board.rows[0]).toMatchObject({ mode: 'train', device: 'cuda', folds: [0.44, 0.46] });
    expect(board.problems).toEqual([]);
    const out = formatLeaderboard(board);
    expect(out).toMatch(/^1\s+p\s+SUCCEEDED\s+0\.4500 ± 0\.0100\s+12,346\s+75 s\s+2 interruption\(s\) survived$/m);
    expect(out).toMatch(/^2\s+o\s+SUCCEEDED\s+0\.4100 ± 0\.0200/m);
  });

  test("results.json of the job that status.json names counts as SUCCEEDED even before the runner's SUCCEEDED lands", () => {
    // The runner uploads results.json, then writes SUCCEEDED; the collector fires on results.json in between.
    const digest = `sha256:${'1'.repeat(64)}`;
    const results = { ...trainResults(S, 'o', [0.4, 0.5]), job: { ...trainResults(S, 'o', [0.4, 0.5]).job, jobDigest: digest } };
    const board = buildLeaderboard([{ config: 'o', resultsText: text(results), statusText: status('o', 'TRAINING', { jobDigest: digest }) }]);
    expect(board.rows[0]).toMatchObject({ config: 'o', state: 'SUCCEEDED', ndcgMean: 0.45 });
    expect(board.rows[0].problem).toBeUndefined();
  });

  test('fails when results.json belongs to an earlier job.json: never ranked beside the job that now FAILED', () => {
    const results = { ...trainResults(S, 'o', [0.9, 0.9]), job: { ...trainResults(S, 'o', [0.9, 0.9]).job, jobDigest: `sha256:${'1'.repeat(64)}` } };
    const board = buildLeaderboard([
      { config: 'o', resultsText: text(results), statusText: status('o', 'FAILED', { jobDigest: `sha256:${'2'.repeat(64)}`, message: 'the trainer crashed' }) },
      { config: 'p', resultsText: train('p', [0.4, 0.4]), statusText: status('p', 'SUCCEEDED') },
    ]);
    expect(board.rows.map((r) => r.config)).toEqual(['p', 'o']);
    expect(board.rows[1].ndcgMean).toBeUndefined();
    expect(board.rows[1].problem).toMatch(/results\.json is of an earlier job\.json .* not of the job now FAILED; not ranked/);
  });

  test('a failed config is listed unranked with its failure message, never with a score', () => {
    const board = buildLeaderboard([
      { config: 'bad', statusText: status('bad', 'FAILED', { message: 'pairs.csv row 7: relevance -1 is negative' }) },
      { config: 'ok', resultsText: train('ok', [0.3, 0.3]), statusText: status('ok', 'SUCCEEDED') },
    ]);
    expect(board.rows.map((r) => [r.config, r.ndcgMean])).toEqual([
      ['ok', 0.3],
      ['bad', undefined],
    ]);
    expect(formatLeaderboard(board)).toMatch(/^-\s+bad\s+FAILED\s+-\s+-\s+-\s+pairs\.csv row 7: relevance -1 is negative$/m);
  });

  test('a script-mode config that SUCCEEDED is a row without a score, after the scored ones, and never a problem', () => {
    const board = buildLeaderboard([
      { config: 'a-script', resultsText: text(scriptResults(S, 'a-script')), statusText: status('a-script', 'SUCCEEDED', { mode: 'script' }) },
      { config: 'z-failed', statusText: status('z-failed', 'FAILED', { message: 'The script train.py exited with code 1' }) },
      { config: 'scored', resultsText: train('scored', [0.2, 0.3]), statusText: status('scored', 'SUCCEEDED') },
    ]);
    expect(board.rows.map((r) => r.config)).toEqual(['scored', 'a-script', 'z-failed']);
    expect(board.rows[1]).toMatchObject({ state: 'SUCCEEDED', mode: 'script', resultFiles: ['results/metrics.json', 'results/notes.txt'], note: 'script: 2 result file(s), no metric declared' });
    expect(board.rows[1].problem).toBeUndefined();
    expect(board.rows[1].ndcgMean).toBeUndefined();
    expect(board.problems).toEqual([]);
    const out = formatLeaderboard(board);
    expect(out).toMatch(/^1\s+scored\s+SUCCEEDED/m);
    expect(out).toMatch(/^-\s+a-script\s+SUCCEEDED\s+-\s+-\s+-\s+script: 2 result file\(s\), no metric declared$/m);
    expect(out).not.toContain('Problems:');
  });

  test('a script whose metric is nDCG@10 (any spelling) ranks among the built-in trainer\'s configs, by its mean', () => {
    const board = buildLeaderboard([
      { config: 'builtin', resultsText: train('builtin', [0.3, 0.32]), statusText: status('builtin', 'SUCCEEDED') },
      { config: 'mine', resultsText: text(scriptMetricResults(S, 'mine', { name: 'nDCG@10', folds: [0.35, 0.37, 0.36] })), statusText: status('mine', 'SUCCEEDED', { mode: 'script' }) },
      { config: 'alias', resultsText: text(scriptMetricResults(S, 'alias', { name: 'ndcg10', folds: [0.1, 0.12] })), statusText: status('alias', 'SUCCEEDED', { mode: 'script' }) },
    ]);
    expect(board.rows.map((r) => [r.config, r.rank, r.score?.name])).toEqual([
      ['mine', 1, 'ndcg@10'],
      ['builtin', 2, 'ndcg@10'],
      ['alias', 3, 'ndcg@10'],
    ]);
    expect(board.rows[0].ndcgMean).toBeCloseTo(0.36, 10);
    expect(board.rows[0]).toMatchObject({ mode: 'script', folds: [0.35, 0.37, 0.36], note: 'script: nDCG@10 from results/metrics.json' });
    expect(board.rows[0].ndcgStd).toBeCloseTo(0.01, 10);
    expect(board.problems).toEqual([]);
    const out = formatLeaderboard(board);
    expect(out).toMatch(/^1\s+mine\s+SUCCEEDED\s+0\.3600 ± 0\.0100/m);
    expect(out).toMatch(/^2\s+builtin\s+SUCCEEDED\s+0\.3100 ± 0\.0141/m);
  });

  test('another metric ranks apart, after nDCG@10, best first as its direction says; lower-is-better is named', () => {
    const board = buildLeaderboard([
      { config: 'builtin', resultsText: train('builtin', [0.3, 0.32]), statusText: status('builtin', 'SUCCEEDED') },
      { config: 'loss-a', resultsText: text(scriptMetricResults(S, 'loss-a', { name: 'Val-Loss', folds: [0.5, 0.7], higherIsBetter: false })), statusText: status('loss-a', 'SUCCEEDED', { mode: 'script' }) },
      { config: 'loss-b', resultsText: text(scriptMetricResults(S, 'loss-b', { name: 'val-loss', folds: [0.2], higherIsBetter: false })), statusText: status('loss-b', 'SUCCEEDED', { mode: 'script' }) },
      { config: 'unscored', resultsText: text(scriptResults(S, 'unscored')), statusText: status('unscored', 'SUCCEEDED', { mode: 'script' }) },
    ]);
    expect(board.rows.map((r) => [r.config, r.rank])).toEqual([
      ['builtin', 1],
      ['loss-b', 1],
      ['loss-a', 2],
      ['unscored', undefined],
    ]);
    expect(board.rows[1].ndcgMean).toBeUndefined();
    expect(board.rows[1].score).toEqual({ name: 'val-loss', higherIsBetter: false, mean: 0.2, folds: [0.2] });
    const out = formatLeaderboard(board);
    expect(out).toMatch(/^1\s+loss-b\s+SUCCEEDED\s+val-loss \(lower is better\) 0\.2000 ± -/m);
    expect(out).toMatch(/^2\s+loss-a\s+SUCCEEDED\s+val-loss \(lower is better\) 0\.6000 ± 0\.1414/m);
    expect(out).not.toContain('Problems:');
  });

  test('canonicalMetricName: every spelling of nDCG@10 is the built-in\'s name; others are lower-cased', () => {
    expect(['nDCG@10', 'NDCG10', 'ndcg_10', ' ndcg-10 '].map(canonicalMetricName)).toEqual(['ndcg@10', 'ndcg@10', 'ndcg@10', 'ndcg@10']);
    expect(canonicalMetricName('MRR@100')).toBe('mrr@100');
    expect(canonicalMetricName('ndcg@100')).toBe('ndcg@100');
  });

  test('fails when a results file is malformed or does not fit the schema: a problem naming the file and field, the other configs still rank', () => {
    const noJob = { ...trainResults(S, 'nojob', [0.5, 0.5]) } as Record<string, unknown>;
    delete noJob.job;
    const board = buildLeaderboard([
      { config: 'broken', resultsText: '{"ndcg10": ', statusText: status('broken', 'SUCCEEDED') },
      { config: 'nojob', resultsText: JSON.stringify(noJob), statusText: status('nojob', 'SUCCEEDED') },
      { config: 'good', resultsText: train('good', [0.1, 0.3]) },
    ]);
    expect(board.rows[0]).toMatchObject({ config: 'good', state: 'SUCCEEDED' });
    expect(board.problems).toHaveLength(2);
    expect(board.problems[0]).toMatch(/^broken\/results\.json: not valid JSON/);
    expect(board.problems[1]).toMatch(/^nojob\/results\.json does not fit training\/contract\/results\.schema\.json: \(top level\): must have required property 'job'\. .*run the config again/);
    expect(board.rows.find((r) => r.config === 'nojob')).toMatchObject({ problem: 'results.json does not fit its schema (see Problems)' });
    expect(formatLeaderboard(board)).toContain('Problems:');
  });

  test('a config still training shows its state and no score; a stop request it has not obeyed is noted', () => {
    const board = buildLeaderboard([
      {
        config: 'r',
        statusText: status('r', 'TRAINING'),
        controlText: text(controlDoc('stop', REQUESTERS.budgetGuard, 'the sweep reached its budget of $40.00', '2026-11-28T11:00:00Z')),
      },
    ]);
    expect(board.rows[0]).toMatchObject({
      config: 'r',
      state: 'TRAINING',
      problem: 'no results.json yet',
      note: 'stop requested by budget-guard at 2026-11-28T11:00:00Z: the sweep reached its budget of $40.00',
    });
  });

  test('a STOPPED config says who stopped it and why', () => {
    const board = buildLeaderboard([
      { config: 's', statusText: status('s', 'STOPPED', { stoppedBy: REQUESTERS.cli, message: 'stopped with spot-sweep stop' }) },
    ]);
    expect(board.rows[0]).toMatchObject({ state: 'STOPPED', stoppedBy: 'spot-sweep stop', problem: 'stopped by spot-sweep stop: stopped with spot-sweep stop' });
  });

  test('paints the state cell only when asked (the CLI does on a terminal)', () => {
    const board = buildLeaderboard([{ config: 'ok', resultsText: train('ok', [0.3, 0.3]), statusText: status('ok', 'SUCCEEDED') }]);
    expect(formatLeaderboard(board)).not.toMatch(/\x1b\[/);
    expect(formatLeaderboard(board, { paintState: (state, cell) => `<${state}>${cell}</>` })).toMatch(/^1\s+ok\s+<SUCCEEDED>SUCCEEDED<\/>/m);
  });
});
