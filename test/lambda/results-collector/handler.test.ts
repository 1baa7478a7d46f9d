import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type * as Handler from '../../../lambda/results-collector/index';
import { clientConfig, MOTO_TEST_TIMEOUT_MS, useMotoForHandler } from '../moto';
import { ARTIFACTS, SPEND } from './fixtures';

/** The deployed handler (lambda/results-collector/index.ts) against moto_server's S3. */
const moto = useMotoForHandler();

test('rebuilds leaderboard.json and report.html from every config, reporting the malformed results file', async () => {
  const s3 = new S3Client({ ...clientConfig(moto.endpoint), forcePathStyle: true });
  await s3.send(new CreateBucketCommand({ Bucket: 'artifacts' }));
  const put = (key: string, body: string) => s3.send(new PutObjectCommand({ Bucket: 'artifacts', Key: key, Body: body }));
  for (const a of ARTIFACTS) {
    if (a.resultsText !== undefined) await put(`sweeps/seed-plan/${a.config}/results.json`, a.resultsText);
    if (a.statusText !== undefined) await put(`sweeps/seed-plan/${a.config}/status.json`, a.statusText);
  }
  await put('sweeps/seed-plan/spend.json', SPEND);

  process.env = {
    ...moto.savedEnv,
    AWS_ENDPOINT_URL: moto.endpoint,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    SWEEP: 'seed-plan',
    BUCKET: 'artifacts',
    // `s` has no files yet: a row without a score, not an error.
    CONFIGS: JSON.stringify(['o', 'p', 'q', 'r', 's']),
  };
  // Required only now: the handler reads its environment and creates its clients when loaded.
  const { handler } = require('../../../lambda/results-collector/index') as typeof Handler;
  expect(await handler({ detail: { object: { key: 'sweeps/seed-plan/p/results.json' } } })).toEqual({ rows: 5, problems: 1 });

  const get = async (key: string) => s3.send(new GetObjectCommand({ Bucket: 'artifacts', Key: key }));
  const board = JSON.parse(await (await get('sweeps/seed-plan/leaderboard.json')).Body!.transformToString());
  expect(board.rows.map((r: { config: string; rank?: number }) => [r.config, r.rank ?? null])).toEqual([
    ['p', 1],
    ['o', 2],
    ['q', null],
    ['r', null],
    ['s', null],
  ]);
  expect(board.rows.find((r: { config: string }) => r.config === 's')).toMatchObject({ state: 'UNKNOWN', problem: 'no results.json yet' });
  expect(board.problems).toEqual([expect.stringMatching(/^q\/results\.json: not valid JSON/)]);
  const report = await get('sweeps/seed-plan/report.html');
  expect(report.ContentType).toBe('text/html; charset=utf-8');
  expect(await report.Body!.transformToString()).toContain('<h1>Sweep seed-plan</h1>');
}, MOTO_TEST_TIMEOUT_MS * 2);
