import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { AwsSetupError, explainAwsError } from '../../lib/cli/aws';
import { storeKeys } from '../../lib/contract';
import { S3AccessDenied, s3Store } from '../../lib/store';

/**
 * What the store says when S3 refuses a call (a stubbed S3 client): which permission is missing, on which ARN.
 * A read names s3:ListBucket too, because S3 answers a missing key with 403 instead of 404 to a caller that may
 * not list the bucket (GetObject's Permissions paragraph).
 */
const s3 = mockClient(S3Client);
afterEach(() => s3.reset());
afterAll(() => s3.restore());

const BUCKET = 'artifacts';
const key = storeKeys.configFile('demo', 'a', 'status');
/** An S3 error as the SDK raises it: GetObject/PutObject have a body (AccessDenied), HeadObject has none (Forbidden). */
const denied = (name: 'AccessDenied' | 'Forbidden') => Object.assign(new Error('Access Denied'), { name, $metadata: { httpStatusCode: 403 } });
const store = (explain?: (err: unknown, call: string) => Error) => s3Store({ client: new S3Client({ region: 'us-east-1' }), bucket: BUCKET, ...(explain ? { explain } : {}) });

test('fails when a read is denied: names s3:GetObject on the object and s3:ListBucket on the bucket, without an s3:prefix condition', async () => {
  s3.on(GetObjectCommand).rejects(denied('AccessDenied'));
  const err = await store().read(key).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(S3AccessDenied);
  expect((err as S3AccessDenied).missing).toEqual([`s3:GetObject on arn:aws:s3:::${BUCKET}/${key}`, `s3:ListBucket on arn:aws:s3:::${BUCKET}`]);
  expect((err as Error).message).toBe(
    `S3 GetObject s3://${BUCKET}/${key} was denied (AccessDenied): the caller needs s3:GetObject on arn:aws:s3:::${BUCKET}/${key}, and ` +
      `s3:ListBucket on arn:aws:s3:::${BUCKET} (without an s3:prefix condition: S3 answers a key that does not exist yet with 403, not 404, to a caller that may not list the bucket).`,
  );
});

test('fails when a size check (HeadObject, 403 without a body) or a write is denied: names the call and the permission', async () => {
  s3.on(HeadObjectCommand).rejects(denied('Forbidden'));
  s3.on(PutObjectCommand).rejects(denied('AccessDenied'));
  expect(((await store().size(key).catch((e: unknown) => e)) as Error).message).toMatch(
    new RegExp(`^S3 HeadObject s3://${BUCKET}/${key} was denied \\(AccessDenied\\): the caller needs s3:GetObject on arn:aws:s3:::${BUCKET}/${key}, and s3:ListBucket`),
  );
  expect(((await store().write(key, '{}').catch((e: unknown) => e)) as Error).message).toBe(
    `S3 PutObject s3://${BUCKET}/${key} was denied (AccessDenied): the caller needs s3:PutObject on arn:aws:s3:::${BUCKET}/${key}.`,
  );
});

test("the CLI's explanation keeps the permission and the ARN; other errors reach it as they are", async () => {
  s3.on(GetObjectCommand).rejects(denied('AccessDenied'));
  const err = await store(explainAwsError).read(key).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(AwsSetupError);
  expect((err as Error).message).toMatch(/was denied \(AccessDenied\): the caller needs s3:GetObject on arn:aws:s3:::artifacts\/sweeps\/demo\/a\/status\.json, and s3:ListBucket on arn:aws:s3:::artifacts .*Grant it to the identity you use/);

  s3.reset();
  const slow = Object.assign(new Error('Please reduce your request rate.'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } });
  s3.on(GetObjectCommand).rejects(slow);
  const seen: unknown[] = [];
  await store((e) => (seen.push(e), e as Error)).read(key).catch(() => undefined);
  expect(seen).toEqual([slow]);
});

test('a missing key still reads as undefined', async () => {
  s3.on(GetObjectCommand).rejects(Object.assign(new Error('The specified key does not exist.'), { name: 'NoSuchKey', $metadata: { httpStatusCode: 404 } }));
  expect(await store().read(key)).toBeUndefined();
});

test('lists every key under a prefix across ListObjectsV2 pages, following NextContinuationToken', async () => {
  const prefix = storeKeys.configFile('demo', 'a', 'history');
  s3.on(ListObjectsV2Command, { Bucket: BUCKET, Prefix: prefix, ContinuationToken: undefined }).resolves({ IsTruncated: true, NextContinuationToken: 't1', Contents: [{ Key: `${prefix}b/results.json` }] });
  s3.on(ListObjectsV2Command, { Bucket: BUCKET, Prefix: prefix, ContinuationToken: 't1' }).resolves({ IsTruncated: false, Contents: [{ Key: `${prefix}a/results.json` }] });
  expect(await store().list(prefix)).toEqual([`${prefix}a/results.json`, `${prefix}b/results.json`]);
  expect(s3.commandCalls(ListObjectsV2Command)).toHaveLength(2);
});

test('fails when a listing is denied: names s3:ListBucket on the bucket', async () => {
  s3.on(ListObjectsV2Command).rejects(denied('AccessDenied'));
  const prefix = storeKeys.configFile('demo', 'a', 'history');
  expect(((await store().list(prefix).catch((e: unknown) => e)) as Error).message).toBe(
    `S3 ListObjectsV2 s3://${BUCKET}/${prefix} was denied (AccessDenied): the caller needs s3:ListBucket on arn:aws:s3:::${BUCKET}.`,
  );
});
