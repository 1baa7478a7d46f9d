import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { storeKeys } from '../../lib/contract';
import { readArtifacts, rebuildSweepFiles } from '../../lib/results/sweep-files';
import { fileStore, SweepStore } from '../../lib/store';
import { LeaderboardDocument } from '../../lib/results/leaderboard-document';
import { scriptResults, statusDoc, text, trainResults } from './fixtures';

/**
 * Results of earlier job.json versions (the job runner moves them to <config>/history/<digest>/ when a
 * changed job starts over): read from the store, listed in leaderboard.json and the report's History,
 * never ranked, never in the comparison.
 */
const S = 'hist';
const OLD = 'sha256:' + 'ab'.repeat(32);
let dir: string;
let store: SweepStore;
const history = (config: string, digest: string): string => `${storeKeys.configFile(S, config, 'history')}${digest}/results.json`;

beforeEach(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'history-'));
  store = fileStore(dir);
  for (const [config, folds] of [['a', [0.5, 0.51, 0.5]], ['b', [0.52, 0.53, 0.52]]] as const) {
    await store.write(storeKeys.configFile(S, config, 'results'), text(trainResults(S, config, folds)));
    await store.write(storeKeys.configFile(S, config, 'status'), text(statusDoc(S, config, 'SUCCEEDED')));
  }
  // a's earlier job scored far higher than today's leader b: it must not take rank 1.
  const earlier = trainResults(S, 'a', [0.9, 0.91, 0.9]);
  await store.write(history('a', 'abababababababab'), text({ ...earlier, job: { ...earlier.job, jobDigest: OLD, finishedAt: '2026-11-27T09:00:00Z' } }));
  await store.write(history('a', '0123456789abcdef'), '{ not json');
  await store.write(history('b', 'fedcba9876543210'), text(scriptResults(S, 'b')));
  // history/ also keeps unreadable status.json copies (training/spot_runner/status_board.py): not results.
  await store.write(`${storeKeys.configFile(S, 'a', 'history')}status.json.unreadable-1`, '{');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test('readArtifacts reads each config\'s history/<digest>/results.json and nothing else from history/', async () => {
  const [a, b] = await readArtifacts(store, S, ['a', 'b']);
  expect(a.history!.map((h) => h.digest)).toEqual(['0123456789abcdef', 'abababababababab']);
  expect(b.history!.map((h) => h.digest)).toEqual(['fedcba9876543210']);
});

test('an earlier job with a higher score is listed as history in leaderboard.json and the report, never ranked', async () => {
  const { reportKey, leaderboardKey } = await rebuildSweepFiles(store, S, await readArtifacts(store, S, ['a', 'b']), { baseline: 'a', now: new Date('2026-12-02T10:00:00Z') });
  const doc = JSON.parse((await store.read(leaderboardKey))!) as LeaderboardDocument;
  expect(doc.rows.map((r) => [r.config, r.rank])).toEqual([
    ['b', 1],
    ['a', 2],
  ]);
  expect(doc.history).toEqual([
    { config: 'a', jobDigest: OLD, ndcg10: { mean: expect.closeTo(0.9033, 4), std: expect.closeTo(0.0058, 4) }, folds: 3, finishedAt: '2026-11-27T09:00:00Z' },
    { config: 'a', jobDigest: '0123456789abcdef', note: 'results.json unreadable' },
    { config: 'b', jobDigest: 'fedcba9876543210', note: 'script mode: no nDCG@10 metric' },
  ]);
  const html = (await store.read(reportKey))!;
  const at = html.indexOf('<h2>History</h2>');
  expect(at).toBeGreaterThan(html.indexOf('<h2>Configs</h2>'));
  const section = html.slice(at);
  expect(section).toContain('<tr class="history"><td>a</td><td><code>abababababababab</code></td><td class="num">0.9033 ± 0.0058</td><td class="num">3</td><td>2026-11-27T09:00:00Z</td>');
  expect(section).toContain('never ranked');
  // The earlier score is nowhere above the History: not in the table, the verdicts or the charts.
  expect(html.slice(0, at)).not.toContain('0.9033');
  expect(html).not.toMatch(/<script\b/i);
  expect(html).not.toMatch(/https?:\/\//i);
});

test('a sweep without history has an empty history list and no History section', async () => {
  rmSync(path.join(dir, storeKeys.configFile(S, 'a', 'history')), { recursive: true });
  rmSync(path.join(dir, storeKeys.configFile(S, 'b', 'history')), { recursive: true });
  const { doc, reportKey } = await rebuildSweepFiles(store, S, await readArtifacts(store, S, ['a', 'b']), { baseline: 'a' });
  expect(doc.history).toEqual([]);
  expect(await store.read(reportKey)).not.toContain('<h2>History</h2>');
});
