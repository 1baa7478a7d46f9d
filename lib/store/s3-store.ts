import { GetObjectCommand, HeadObjectCommand, NoSuchKey, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { contentTypeOf, PreconditionFailed, StoredText, SweepStore, WriteOptions } from './types';

export interface S3StoreOptions {
  readonly client: S3Client;
  readonly bucket: string;
  /** Environment the job runner needs to reach the same bucket (e.g. `AWS_ENDPOINT_URL`). @default {} */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Turns an SDK error into the error to throw (the CLI makes sentences of them); a missing key and a
   * lost conditional write are handled before this is called.
   * @default - the SDK error as it is
   */
  readonly explain?: (err: unknown, call: string) => Error;
}

/** True when S3 answered that the key does not exist. */
export function isMissing(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err instanceof NoSuchKey || e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
}

/**
 * True when a conditional write lost a race: S3 answers 412 PreconditionFailed (If-Match, or
 * If-None-Match on an existing key) or 409 ConditionalRequestConflict (a concurrent conditional write).
 * @see https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
 */
export function isPreconditionFailed(err: unknown): boolean {
  if (err instanceof PreconditionFailed) return true;
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return (
    (err instanceof S3ServiceException || e.name !== undefined) &&
    (e.name === 'PreconditionFailed' || e.name === 'ConditionalRequestConflict' || e.$metadata?.httpStatusCode === 412)
  );
}

/**
 * A store in an S3 bucket. A missing key reads as undefined: S3 answers 404 NoSuchKey for it only to a
 * caller allowed s3:ListBucket on the bucket, else 403 AccessDenied, which is thrown (through `explain`).
 * @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html
 */
export function s3Store(options: S3StoreOptions): SweepStore {
  const { client, bucket } = options;
  const explain = options.explain ?? ((err: unknown) => err as Error);
  const where = (key: string): string => `s3://${bucket}/${key}`;
  const readObject = async (key: string): Promise<StoredText | undefined> => {
    try {
      const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return { text: (await r.Body?.transformToString('utf8')) ?? '', etag: r.ETag ?? '' };
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw explain(err, `S3 GetObject ${where(key)}`);
    }
  };
  return {
    root: `s3://${bucket}`,
    env: options.env ?? {},
    read: async (key) => (await readObject(key))?.text,
    readObject,
    async write(key: string, body: string, opts: WriteOptions = {}) {
      try {
        await client.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: key,
            Body: body,
            ContentType: opts.contentType ?? contentTypeOf(key),
            ...(opts.ifMatch === 'absent' ? { IfNoneMatch: '*' } : opts.ifMatch !== undefined ? { IfMatch: opts.ifMatch } : {}),
          }),
        );
      } catch (err) {
        if (opts.ifMatch !== undefined && isPreconditionFailed(err)) throw new PreconditionFailed(where(key));
        throw explain(err, `S3 PutObject ${where(key)}`);
      }
    },
    async size(key) {
      try {
        return (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ContentLength;
      } catch (err) {
        if (isMissing(err)) return undefined;
        throw explain(err, `S3 HeadObject ${where(key)}`);
      }
    },
    async readFrom(key, start) {
      try {
        const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${start}-` }));
        return Buffer.from((await r.Body?.transformToByteArray()) ?? new Uint8Array());
      } catch (err) {
        throw explain(err, `S3 GetObject ${where(key)}`);
      }
    },
    describe: where,
  };
}
