import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { downloadSweep, localPath } from '../../lib/results/download';
import { SweepStore } from '../../lib/store';

/** A store in memory: keys chosen by the test, hostile ones included (a bucket's keys are anyone's data). */
function memoryStore(objects: Record<string, string | Buffer>): SweepStore {
  const body = (key: string): Buffer | undefined => (key in objects ? Buffer.from(objects[key]) : undefined);
  return {
    root: 's3://mem',
    env: {},
    read: async (key) => body(key)?.toString(),
    readObject: async (key) => (body(key) ? { text: body(key)!.toString(), etag: 'e' } : undefined),
    write: async () => undefined,
    size: async (key) => body(key)?.length,
    readFrom: async (key, start) => {
      if (body(key) === undefined) throw new Error(`NoSuchKey: ${key}`);
      if (body(key)!.length === 0) throw new Error('InvalidRange: an empty object has no byte 0');
      return body(key)!.subarray(start);
    },
    list: async (prefix) => Object.keys(objects).filter((k) => k.startsWith(prefix)).sort(),
    describe: (key) => `s3://mem/${key}`,
  };
}

const weights = Buffer.from([0, 1, 2, 253, 254, 255]);
const objects = {
  'sweeps/s/a/results.json': '{"a":1}',
  'sweeps/s/a/train.log': 'line\n',
  'sweeps/s/a/model/model.safetensors': weights,
  'sweeps/s/a/model/model.json': '{}',
  'sweeps/s/a/checkpoints/fold-0.pt': 'ckpt',
  'sweeps/s/a/history/0123/results.json': '{"old":1}',
  'sweeps/s/a/empty.txt': '',
  'sweeps/s/a/../../../escape.txt': 'evil',
  'sweeps/s/a//double.txt': 'evil',
  'sweeps/s/b/status.json': '{"state":"FAILED"}',
  'sweeps/s/leaderboard.json': '{}',
  'sweeps/s/report.html': '<html></html>',
  'sweeps/other/a/results.json': 'not ours',
};

test("copies each config's files and the sweep's, bytes intact, checkpoints left out; says which configs have a model", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'download-'));
  const out = path.join(dir, 'out');
  const got = await downloadSweep(memoryStore(objects), 's', ['a', 'b', 'c'], out);
  expect(readFileSync(path.join(out, 'a', 'model', 'model.safetensors'))).toEqual(weights);
  expect(readFileSync(path.join(out, 'a', 'results.json'), 'utf8')).toBe('{"a":1}');
  expect(readFileSync(path.join(out, 'a', 'history', '0123', 'results.json'), 'utf8')).toBe('{"old":1}');
  expect(readFileSync(path.join(out, 'a', 'empty.txt'), 'utf8')).toBe('');
  expect(readFileSync(path.join(out, 'report.html'), 'utf8')).toBe('<html></html>');
  expect(existsSync(path.join(out, 'a', 'checkpoints'))).toBe(false);
  expect(existsSync(path.join(out, '..', 'escape.txt'))).toBe(false);
  expect(existsSync(path.join(dir, 'escape.txt'))).toBe(false);
  expect(got.refused).toEqual(['sweeps/s/a/../../../escape.txt', 'sweeps/s/a//double.txt']);
  expect(got.configs).toEqual([
    { config: 'a', files: 6, model: true },
    { config: 'b', files: 1, model: false },
    { config: 'c', files: 0, model: false },
  ]);
  expect(got.bytes).toBe(got.files.reduce((n, f) => n + f.bytes, 0));
  // Every write went through a rename: no temporary file is left behind.
  expect(readdirSync(path.join(out, 'a', 'model'))).toEqual(['model.json', 'model.safetensors']);
});

test('with checkpoints: true the checkpoints come too', async () => {
  const out = mkdtempSync(path.join(os.tmpdir(), 'download-'));
  await downloadSweep(memoryStore(objects), 's', ['a'], out, { checkpoints: true });
  expect(readFileSync(path.join(out, 'a', 'checkpoints', 'fold-0.pt'), 'utf8')).toBe('ckpt');
});

test('fails to place a key outside the directory, whatever the segments', () => {
  const dir = path.resolve('/tmp/dl');
  expect(localPath(dir, 'sweeps/s/', 'sweeps/s/a/model/m.json')).toBe(path.join(dir, 'a', 'model', 'm.json'));
  for (const bad of ['sweeps/s/../x', 'sweeps/s/a/./b', 'sweeps/s/a\\..\\b', 'sweeps/s/', 'sweeps/t/a', 'sweeps/s/a/\0b']) {
    expect(localPath(dir, 'sweeps/s/', bad)).toBeUndefined();
  }
});

test('a second download replaces each config folder: a model the store no longer holds does not stay beside the new results', async () => {
  const out = mkdtempSync(path.join(os.tmpdir(), 'download-'));
  await downloadSweep(memoryStore(objects), 's', ['a'], out);
  expect(existsSync(path.join(out, 'a', 'model', 'model.safetensors'))).toBe(true);
  // The job changed: the runner moved the old model to history/, the new job kept none (finalModel false).
  const changed: Record<string, string | Buffer> = { 'sweeps/s/a/results.json': '{"new":1}', 'sweeps/s/a/history/0123/model/model.safetensors': weights };
  const got = await downloadSweep(memoryStore(changed), 's', ['a'], out);
  expect(got.configs).toEqual([{ config: 'a', files: 2, model: false }]);
  expect(existsSync(path.join(out, 'a', 'model'))).toBe(false);
  expect(readFileSync(path.join(out, 'a', 'results.json'), 'utf8')).toBe('{"new":1}');
  expect(readdirSync(out).filter((f) => f.startsWith('.'))).toEqual([]);
});

test('a key that vanishes between the listing and the copy is skipped and named, not fatal', async () => {
  const live = memoryStore(objects);
  const listed = live.list.bind(live);
  // Listed, then rotated away before its read, as a running sweep rotates its checkpoints.
  const racing: SweepStore = { ...live, list: async (prefix) => [...(await listed(prefix)), 'sweeps/s/a/checkpoints/ckpt-9.pt'] };
  const out = mkdtempSync(path.join(os.tmpdir(), 'download-'));
  const got = await downloadSweep(racing, 's', ['a'], out, { checkpoints: true });
  expect(got.vanished).toEqual(['sweeps/s/a/checkpoints/ckpt-9.pt']);
  expect(readFileSync(path.join(out, 'a', 'results.json'), 'utf8')).toBe('{"a":1}');
});
