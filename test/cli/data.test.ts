import { mkdtempSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CreateBucketCommand, CreateMultipartUploadCommand, GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { EXIT } from '../../lib/cli/main';
import { cli, Moto, s3Client, startMoto } from './aws-fixture';

/** data push against moto_server; data import through the repo's Python (the .venv). */
jest.setTimeout(90_000);

let moto: Moto;
const BUCKET = 'spot-sweep-data-push';
const MIB = 2 ** 20;

beforeAll(async () => {
  moto = await startMoto();
  const s3 = s3Client(moto);
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  s3.destroy();
}, 120_000);
afterAll(async () => moto?.stop());

function dataset(big = 11 * MIB): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'spot-sweep-push-'));
  writeFileSync(path.join(dir, 'pairs.csv'), 'query_id,doc_id,relevance\nq1,d1,1\n');
  writeFileSync(path.join(dir, 'queries.csv'), 'query_id,text\nq1,hello\n');
  const blob = Buffer.alloc(big);
  for (let i = 0; i < big; i += 1) blob[i] = (i * 7 + (i >> 12)) & 0xff;
  writeFileSync(path.join(dir, 'docs.csv'), blob);
  return dir;
}

async function body(key: string): Promise<Buffer> {
  const s3 = s3Client(moto);
  try {
    return Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body!.transformToByteArray());
  } finally {
    s3.destroy();
  }
}

const push = (dir: string, uri: string, extra: string[] = []) => cli(moto.env, ['data', 'push', dir, uri, '--part-mib', '5', ...extra]);

test('push uploads every file with its sha256, a rerun skips them all, a changed file alone is sent again', async () => {
  const dir = dataset();
  const first = await push(dir, `s3://${BUCKET}/ds1/`);
  expect(first.stderr).toBe('');
  expect(first.code).toBe(EXIT.ok);
  expect(first.stdout).toContain('docs.csv (11.0 MiB): uploaded in 3 parts');
  expect(first.stdout).toContain('3 uploaded, 0 unchanged');
  expect((await body('ds1/docs.csv')).equals(readFileSync(path.join(dir, 'docs.csv')))).toBe(true);
  const s3 = s3Client(moto);
  const meta = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'ds1/pairs.csv' }));
  s3.destroy();
  expect(meta.Metadata?.sha256).toMatch(/^[0-9a-f]{64}$/);

  const again = await push(dir, `s3://${BUCKET}/ds1`);
  expect(again.code).toBe(EXIT.ok);
  expect(again.stdout).toContain('0 uploaded, 3 unchanged');

  writeFileSync(path.join(dir, 'pairs.csv'), 'query_id,doc_id,relevance\nq1,d1,2\n');
  const changed = await push(dir, `s3://${BUCKET}/ds1/`);
  expect(changed.stdout).toContain('pairs.csv (0.0 MiB): uploaded');
  expect(changed.stdout).toContain('1 uploaded, 2 unchanged');
  expect((await body('ds1/pairs.csv')).toString()).toContain('q1,d1,2');
});

test('an interrupted multipart upload is continued from the parts already uploaded', async () => {
  const dir = dataset();
  const file = readFileSync(path.join(dir, 'docs.csv'));
  const key = 'ds2/docs.csv';
  const s3 = s3Client(moto);
  // What a push killed after its first part leaves behind: an open upload with part 1, and a stale one.
  const stale = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
  const open = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
  await s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId: open.UploadId, PartNumber: 1, Body: file.subarray(0, 5 * MIB) }));
  const r = await push(dir, `s3://${BUCKET}/ds2/`);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(EXIT.ok);
  expect(r.stdout).toContain('docs.csv (11.0 MiB): resumed: 1 of 3 parts were already there');
  expect((await body(key)).equals(file)).toBe(true);
  const left = await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: 'ds2/' }));
  s3.destroy();
  expect((left.Uploads ?? []).map((u) => u.UploadId)).not.toContain(stale.UploadId);
  expect(left.Uploads ?? []).toHaveLength(0);
});

test('a terminal gets a progress bar', async () => {
  const dir = dataset(1024);
  const r = await cli(moto.env, ['data', 'push', dir, `s3://${BUCKET}/ds3/`], { isTTY: true });
  expect(r.code).toBe(EXIT.ok);
  expect(r.stdout).toMatch(/\r\[#+\] 100%/);
});

test('fails when the directory, the URI, the bucket or the credentials are wrong, naming each and the fix', async () => {
  const dir = dataset(1024);
  const noDir = await push(path.join(dir, 'nope'), `s3://${BUCKET}/x/`);
  expect(noDir.code).toBe(EXIT.usage);
  expect(noDir.stderr).toContain('nope: no such directory');
  const badUri = await push(dir, `https://${BUCKET}/x/`);
  expect(badUri.code).toBe(EXIT.usage);
  expect(badUri.stderr).toContain('is not an s3:// URI; give s3://bucket/prefix/');
  const noBucket = await push(dir, 's3://no-such-bucket-here/x/');
  expect(noBucket.code).toBe(EXIT.aws);
  expect(noBucket.stderr).toContain('the bucket no-such-bucket-here does not exist');
  expect(noBucket.stderr).toContain('aws s3 mb s3://no-such-bucket-here');
  const noCreds = await cli({ PATH: process.env.PATH, HOME: mkdtempSync(path.join(os.tmpdir(), 'home-')), AWS_REGION: 'us-east-1' }, ['data', 'push', dir, `s3://${BUCKET}/x/`]);
  expect(noCreds.code).toBe(EXIT.aws);
  expect(noCreds.stderr).toContain('no AWS credentials');
});

test('data import runs the Python importer and the result is a dataset directory', async () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'spot-sweep-import-'));
  writeFileSync(path.join(tmp, 'in.csv'), 'q,d,label,score\nwhat is a cat,a cat is a feline,1,\nwhat is a cat,dogs bark,0,\nwhat is a dog,dogs bark,1,0.73\n');
  const out = path.join(tmp, 'ds');
  const r = await cli(process.env, ['data', 'import', path.join(tmp, 'in.csv'), '--out', out, '--query', 'q', '--doc', 'd', '--weak-score', 'score']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(EXIT.ok);
  expect(r.stdout).toContain('imported 3 rows (1 weak)');
  expect(readFileSync(path.join(out, 'pairs.csv'), 'utf8').split('\n')[3]).toMatch(/,1,1,0\.73$/);
  const bad = await cli(process.env, ['data', 'import', path.join(tmp, 'in.csv'), '--out', path.join(tmp, 'ds2'), '--query', 'q', '--doc', 'd', '--label', 'score']);
  expect(bad.code).toBe(EXIT.usage);
  expect(bad.stderr).toContain('column score: the label is empty');
  expect(existsSync(path.join(tmp, 'ds2'))).toBe(false);
  const noSub = await cli(process.env, ['data']);
  expect(noSub.code).toBe(EXIT.usage);
  expect(noSub.stderr).toContain('give one of: data import, data push');
});
