import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, NoSuchKey, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { contentTypeOf, PreconditionFailed, StoredText, SweepStore, WriteOptions } from './types';

export interface S3StoreOptions {
  readonly client: S3Client;
  readonly bucket: string;
  /** Environment the job runner needs to reach the same bucket (e.g. `AWS_ENDPOINT_URL`). @default {} */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Turns an SDK error into the error to throw (the CLI makes sentences of them); a missing key and a
   * lost conditional write are handled before this is called, and an AccessDenied arrives as an
   * {@link S3AccessDenied} that names the missing permission.
   * @default - the error as it is
   */
  readonly explain?: (err: unknown, call: string) => Error;
  /**
   * Keys asked for per ListObjectsV2 page (MaxKeys); S3 returns at most 1,000 whatever is asked. Tests set
   * it low to go through several pages.
   * @default 1000
   */
  readonly listPageSize?: number;
}

/** True when S3 answered that the key does not exist. */
export function isMissing(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err instanceof NoSuchKey || e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
}

/**
 * S3 refused a call of the store (403 AccessDenied), said with the permission the caller lacks and on which
 * ARN. A read names both permissions it may lack: s3:GetObject on the object, and s3:ListBucket on the bucket,
 * without which S3 answers a key that does not exist yet with 403 instead of 404 ("If you don't have the
 * s3:ListBucket permission, Amazon S3 returns an HTTP status code 403 Access Denied error").
 * @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html
 * @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html
 */
export class S3AccessDenied extends Error {
  constructor(
    /** The call, e.g. `S3 GetObject s3://bucket/key`. */
    public readonly call: string,
    /** What the caller needs, e.g. `s3:GetObject on arn:aws:s3:::bucket/key`. */
    public readonly missing: readonly string[],
    cause: unknown,
  ) {
    const read = missing.length > 1;
    super(
      `${call} was denied (AccessDenied): the caller needs ${missing.join(', and ')}` +
        (read ? ' (without an s3:prefix condition: S3 answers a key that does not exist yet with 403, not 404, to a caller that may not list the bucket).' : '.'),
      { cause },
    );
    this.name = 'AccessDenied';
  }
}

/**
 * True when S3 answered 403 for lack of permission: AccessDenied, or for a HeadObject a bare 403 ("if the HEAD
 * request generates an error, it returns a generic code, such as ... 403 Forbidden"; the SDK names it after it).
 * @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html
 */
function isAccessDenied(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'AccessDenied' || (e.$metadata?.httpStatusCode === 403 && (e.name === 'Forbidden' || e.name === '403'));
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
  // ARNs as a policy names them, in the aws partition: arn:${Partition}:s3:::${BucketName}[/${ObjectName}].
  // @see https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html#amazons3-resources-for-iam-policies
  const bucketArn = `arn:aws:s3:::${bucket}`;
  /** The error to throw for a failed call: an AccessDenied names what is missing, through `explain` like any other. */
  const failed = (err: unknown, action: 'GetObject' | 'HeadObject' | 'PutObject' | 'ListObjectsV2', key: string): Error => {
    const call = `S3 ${action} ${where(key)}`;
    if (!isAccessDenied(err)) return explain(err, call);
    const objectArn = `${bucketArn}/${key}`;
    const missing =
      action === 'PutObject'
        ? [`s3:PutObject on ${objectArn}`]
        : action === 'ListObjectsV2'
          ? [`s3:ListBucket on ${bucketArn}`]
          : [`s3:GetObject on ${objectArn}`, `s3:ListBucket on ${bucketArn}`];
    return explain(new S3AccessDenied(call, missing, err), call);
  };
  const readObject = async (key: string): Promise<StoredText | undefined> => {
    try {
      const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return { text: (await r.Body?.transformToString('utf8')) ?? '', etag: r.ETag ?? '' };
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw failed(err, 'GetObject', key);
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
        throw failed(err, 'PutObject', key);
      }
    },
    async size(key) {
      try {
        return (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ContentLength;
      } catch (err) {
        if (isMissing(err)) return undefined;
        throw failed(err, 'HeadObject', key);
      }
    },
    async readFrom(key, start) {
      try {
        const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${start}-` }));
        return Buffer.from((await r.Body?.transformToByteArray()) ?? new Uint8Array());
      } catch (err) {
        throw failed(err, 'GetObject', key);
      }
    },
    /**
     * ListObjectsV2 page by page: a response holds at most MaxKeys (up to 1,000) keys, and while IsTruncated
     * is true the next request passes its NextContinuationToken as ContinuationToken. Keys come back in
     * UTF-8 binary order (general purpose buckets); sorted here anyway, as the file store's are.
     * @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html
     */
    async list(prefix) {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        let page;
        try {
          page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token, MaxKeys: options.listPageSize }));
        } catch (err) {
          throw failed(err, 'ListObjectsV2', prefix);
        }
        for (const o of page.Contents ?? []) if (o.Key !== undefined) keys.push(o.Key);
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return keys.sort();
    },
    describe: where,
  };
}
