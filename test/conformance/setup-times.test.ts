/**
 * results.json `job.setup` (the attempt's measured setup: training/spot_runner/setup_times.py) is part of the
 * typed contract: the TypeScript type and validator take it, results without it (older runners) still fit,
 * and the results readers rank a config whose results carry it.
 */
import { contractProblems, ResultsJson } from '../../lib/contract';
import { buildLeaderboard } from '../../lib/results/leaderboard';
import { statusDoc, text, trainResults } from '../results/fixtures';

type Setup = NonNullable<Extract<ResultsJson, { mode: 'train' }>['job']['setup']>;

const SETUP: Setup = {
  phases: [
    { name: 'driver', seconds: 41.25 },
    { name: 'python', seconds: 3.5 },
    { name: 'fetch-data', seconds: 12.75 },
    { name: 'fetch-checkpoint', seconds: 0.25 },
  ],
  bootedAt: '2026-11-28T09:50:00Z',
  firstStepAt: '2026-11-28T09:56:30Z',
  bootToFirstStepSeconds: 390,
};

function withSetup(setup: unknown): ResultsJson {
  const results = trainResults('s', 'o', [0.4, 0.5]);
  return { ...results, job: { ...results.job, setup } } as ResultsJson;
}

describe('results.json job.setup', () => {
  test('fits the schema, with figures or with nulls, and results without it still do', () => {
    expect(contractProblems('results', withSetup(SETUP))).toEqual([]);
    expect(contractProblems('results', withSetup({ phases: [], bootedAt: null, firstStepAt: null, bootToFirstStepSeconds: null }))).toEqual([]);
    expect(contractProblems('results', trainResults('s', 'o', [0.4, 0.5]))).toEqual([]);
  });

  test('fails when a figure is negative, a field is missing or a time is not a date-time', () => {
    expect(contractProblems('results', withSetup({ ...SETUP, phases: [{ name: 'driver', seconds: -1 }] }))).not.toEqual([]);
    expect(contractProblems('results', withSetup({ ...SETUP, bootToFirstStepSeconds: -5 }))).not.toEqual([]);
    const { firstStepAt: _dropped, ...missing } = SETUP;
    expect(contractProblems('results', withSetup(missing))).not.toEqual([]);
    expect(contractProblems('results', withSetup({ ...SETUP, bootedAt: 'yesterday' }))).not.toEqual([]);
  });

  test('a config whose results carry it is ranked like any other', () => {
    const board = buildLeaderboard([{ config: 'o', resultsText: text(withSetup(SETUP)), statusText: text(statusDoc('s', 'o', 'SUCCEEDED')) }]);
    expect(board.problems).toEqual([]);
    expect(board.rows[0]).toMatchObject({ config: 'o', state: 'SUCCEEDED', ndcgMean: 0.45 });
  });
});
