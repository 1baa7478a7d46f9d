import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { REQUESTERS } from '../../../lib/contract';
import type * as Handler from '../../../lambda/results-collector/index';
import { controlDoc, statusDoc, text, trainResults } from '../../results/fixtures';
import { clientConfig, MOTO_TEST_TIMEOUT_MS, useMotoForHandler } from '../moto';

/** The deployed handler (lambda/results-collector/index.ts) against moto_server's S3. */
const moto = useMotoForHandler();
const SWEEP = 'seed-plan';

test('rebuilds leaderboard.json and report.html from every config, with pending stop requests and the malformed results file', async () => {
  const s3 = new S3Client({ ...clientConfig(moto.endpoint), forcePathStyle: true });
  await s3.send(new CreateBucketCommand({ Bucket: 'artifacts' }));
  const put = (key: string, body: string) => s3.send(new PutObjectCommand({ Bucket: 'artifacts', Key: key, Body: body }));
  await put(`sweeps/${SWEEP}/o/results.json`, text(trainResults(SWEEP, 'o', [0.44, 0.45, 0.46])));
  await put(`sweeps/${SWEEP}/o/status.json`, text(statusDoc(SWEEP, 'o', 'SUCCEEDED')));
  await put(`sweeps/${SWEEP}/p/results.json`, text(trainResults(SWEEP, 'p', [0.47, 0.46, 0.48])));
  await put(`sweeps/${SWEEP}/q/results.json`, '{"version": 1, "folds": [');
  // o's earlier job.json scored higher than p: kept by the runner under history/, listed, never ranked.
  await put(`sweeps/${SWEEP}/o/history/0123456789abcdef/results.json`, text(trainResults(SWEEP, 'o', [0.9, 0.91, 0.92])));
  await put(`sweeps/${SWEEP}/r/status.json`, text(statusDoc(SWEEP, 'r', 'TRAINING')));
  // The budget guard asked r to stop; the job has not obeyed yet.
  await put(`sweeps/${SWEEP}/r/control.json`, text(controlDoc('stop', REQUESTERS.budgetGuard, 'Stopped by the sweep budget: the sweep has spent $40.10 of its budgetUsd $40.00.')));
  await put(`sweeps/${SWEEP}/spend.json`, JSON.stringify({ version: 1, sweep: SWEEP, budgetUsd: 40, totalUsd: 40.1, configs: { o: { usd: 2.25 }, p: { usd: 6.5 } }, instances: {} }));

  process.env = moto.handlerEnv({
    SWEEP,
    BUCKET: 'artifacts',
    // `s` has no files yet: a row without a score, not an error.
    CONFIGS: JSON.stringify(['o', 'p', 'q', 'r', 's']),
    BASELINE: 'o',
  });
  // Required only now: the handler reads its environment and creates its clients when loaded.
  const { handler } = require('../../../lambda/results-collector/index') as typeof Handler;
  expect(await handler({ detail: { object: { key: `sweeps/${SWEEP}/p/results.json` } } })).toEqual({ rows: 5, problems: 1 });

  const get = async (key: string) => s3.send(new GetObjectCommand({ Bucket: 'artifacts', Key: key }));
  const board = JSON.parse(await (await get(`sweeps/${SWEEP}/leaderboard.json`)).Body!.transformToString());
  expect(board.rows.map((r: { config: string; rank?: number }) => [r.config, r.rank ?? null])).toEqual([
    ['p', 1],
    ['o', 2],
    ['q', null],
    ['r', null],
    ['s', null],
  ]);
  expect(board).toMatchObject({ totalSpendUsd: 40.1, budgetUsd: 40 });
  expect(board.history).toEqual([{ config: 'o', jobDigest: '0123456789abcdef', ndcg10: { mean: expect.closeTo(0.91, 6), std: expect.closeTo(0.01, 6) }, folds: 3 }]);
  expect(board.rows.find((r: { config: string }) => r.config === 'p')).toMatchObject({ spendUsd: 6.5 });
  expect(board.rows.find((r: { config: string }) => r.config === 's')).toMatchObject({ state: 'UNKNOWN', problem: 'no results.json yet' });
  expect(board.rows.find((r: { config: string }) => r.config === 'r').note).toMatch(/^stop requested by budget-guard at .*: Stopped by the sweep budget/);
  expect(board.problems).toEqual([expect.stringMatching(/^q\/results\.json: not valid JSON/)]);
  const report = await get(`sweeps/${SWEEP}/report.html`);
  expect(report.ContentType).toBe('text/html; charset=utf-8');
  const html = await report.Body!.transformToString();
  expect(html).toContain(`<h1>Sweep ${SWEEP}</h1>`);
  // The decision section compares p with the baseline o, with the spend of each as its cost.
  expect(html).toContain('Each config against the baseline <b>o</b>');
  expect(html).toMatch(/<tr><td>p<\/td>.*\$6\.50/);
  expect(html.slice(html.indexOf('<h2>History</h2>'))).toContain('<td>o</td><td><code>0123456789abcdef</code></td><td class="num">0.9100 ± 0.0100</td>');
}, MOTO_TEST_TIMEOUT_MS * 2);
