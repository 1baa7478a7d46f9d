import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileStore } from '../../lib/store';

/** The local store's listing (`spot-sweep local`): the keys an S3 listing of the same layout would give. */
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'file-store-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test('lists every key under a prefix, nested ones too, sorted, with / separators', async () => {
  const store = fileStore(dir);
  await store.write('sweeps/s/a/history/ffff/results.json', '{}');
  await store.write('sweeps/s/a/history/0000/results.json', '{}');
  await store.write('sweeps/s/a/results.json', '{}');
  await store.write('sweeps/s/ab/results.json', '{}');
  expect(await store.list('sweeps/s/a/history/')).toEqual(['sweeps/s/a/history/0000/results.json', 'sweeps/s/a/history/ffff/results.json']);
  // A prefix is a string prefix, as in S3: not only a folder.
  expect(await store.list('sweeps/s/a')).toEqual([
    'sweeps/s/a/history/0000/results.json',
    'sweeps/s/a/history/ffff/results.json',
    'sweeps/s/a/results.json',
    'sweeps/s/ab/results.json',
  ]);
});

test('lists nothing under a prefix that does not exist, and skips a write still in progress', async () => {
  const store = fileStore(dir);
  expect(await store.list('sweeps/none/')).toEqual([]);
  await store.write('sweeps/s/a/results.json', '{}');
  writeFileSync(path.join(dir, 'sweeps/s/a/.status.json.123.part'), '{');
  expect(await store.list('sweeps/s/a/')).toEqual(['sweeps/s/a/results.json']);
});
