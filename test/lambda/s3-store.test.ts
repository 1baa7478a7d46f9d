import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { REQUESTERS, storeKeys } from '../../lib/contract';
import { isPreconditionFailed, readControl, requestControl, s3Store, SweepStore } from '../../lib/store';
import { clientConfig, Moto, MOTO_START_TIMEOUT_MS, MOTO_TEST_TIMEOUT_MS, startMoto } from './moto';

/**
 * The store both Lambdas use (lib/store s3Store, with their S3Client) against moto_server's S3: missing
 * keys, conditional writes (what the guard's stop requests rely on) and content types.
 */
jest.setTimeout(MOTO_TEST_TIMEOUT_MS);
let moto: Moto;
let s3: S3Client;
let store: SweepStore;
const BUCKET = 'artifacts';
const statusKey = storeKeys.configFile('demo', 'a', 'status');

beforeAll(async () => {
  moto = await startMoto();
  s3 = new S3Client({ ...clientConfig(moto.endpoint), forcePathStyle: true });
  store = s3Store({ client: s3, bucket: BUCKET });
}, MOTO_START_TIMEOUT_MS);
afterAll(async () => {
  await moto?.stop();
}, MOTO_START_TIMEOUT_MS);
beforeEach(async () => {
  await moto.reset();
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
});

const body = async (key: string) => (await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body!.transformToString();

test('a missing key reads as undefined; a conditional write loses to a newer object with PreconditionFailed', async () => {
  expect(await store.read(statusKey)).toBeUndefined();
  expect(await store.size(statusKey)).toBeUndefined();
  await store.write(statusKey, '{"state":"TRAINING"}', { ifMatch: 'absent' });
  const first = await store.readObject(statusKey);
  expect(first?.text).toBe('{"state":"TRAINING"}');
  expect(isPreconditionFailed(await store.write(statusKey, '{}', { ifMatch: 'absent' }).catch((err: unknown) => err))).toBe(true);
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: statusKey, Body: '{"state":"TRAINING","fold":2}' }));
  const lost = await store.write(statusKey, '{}', { ifMatch: first!.etag }).catch((err: unknown) => err);
  expect(isPreconditionFailed(lost)).toBe(true);
  expect(await body(statusKey)).toBe('{"state":"TRAINING","fold":2}');
});

test('JSON and HTML objects get their content types', async () => {
  await store.write(storeKeys.sweepFile('demo', 'spend'), '{}');
  await store.write(storeKeys.sweepFile('demo', 'report'), '<html></html>');
  const type = async (key: string) => (await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }))).ContentType;
  expect(await type(storeKeys.sweepFile('demo', 'spend'))).toBe('application/json');
  expect(await type(storeKeys.sweepFile('demo', 'report'))).toBe('text/html; charset=utf-8');
});

test('a stop request is written conditionally, and retried when another requester wrote control.json in between', async () => {
  const controlKey = storeKeys.configFile('demo', 'a', 'control');
  const first = await requestControl(store, 'demo', 'a', { action: 'stop', by: REQUESTERS.budgetGuard, reason: 'Stopped by the sweep budget.' });
  expect(JSON.parse(await body(controlKey))).toEqual(first);

  // Another requester writes between the guard's read and its write: the conditional write fails, the retry wins.
  let raced = false;
  let writes = 0;
  const racing: SweepStore = {
    ...store,
    async write(key, text, options) {
      writes += 1;
      if (!raced) {
        raced = true;
        await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: JSON.stringify({ ...first, action: 'start', id: 'other' }) }));
      }
      return store.write(key, text, options);
    },
  };
  const second = await requestControl(racing, 'demo', 'a', { action: 'stop', by: REQUESTERS.budgetGuard, reason: 'Again.' });
  expect([raced, writes]).toEqual([true, 2]);
  expect((await readControl(store, 'demo', 'a')).control).toEqual(second);
});
