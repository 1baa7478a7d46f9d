import { GetObjectCommand, NoSuchKey, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';

/** An object's text and its ETag (for a conditional rewrite), or undefined when there is no such key. */
export interface StoredText {
  readonly text: string;
  readonly etag?: string;
}

/** Reads an object as UTF-8 text; undefined when the key does not exist. */
export async function readText(s3: S3Client, bucket: string, key: string): Promise<StoredText | undefined> {
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return { text: (await out.Body?.transformToString('utf-8')) ?? '', etag: out.ETag };
  } catch (err) {
    // A missing key reads as NoSuchKey only with s3:ListBucket on the prefix (both constructs grant it);
    // without it S3 answers AccessDenied. @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html
    if (err instanceof NoSuchKey || (err instanceof S3ServiceException && err.name === 'NoSuchKey')) return undefined;
    throw err;
  }
}

export interface WriteOptions {
  readonly contentType?: string;
  /**
   * Write only if the object still has this ETag (`If-Match`), or only if it does not exist yet
   * (`'absent'`, `If-None-Match: *`). S3 answers 412 PreconditionFailed otherwise.
   * @see https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
   */
  readonly ifMatch?: string | 'absent';
}

export async function writeText(s3: S3Client, bucket: string, key: string, body: string, options: WriteOptions = {}): Promise<void> {
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: body,
      ContentType: options.contentType ?? 'application/json',
      ...(options.ifMatch === 'absent' ? { IfNoneMatch: '*' } : options.ifMatch ? { IfMatch: options.ifMatch } : {}),
    }),
  );
}

/** True when a conditional write lost a race (another writer changed the object in between). */
export function isPreconditionFailed(err: unknown): boolean {
  return err instanceof S3ServiceException && (err.name === 'PreconditionFailed' || err.$metadata.httpStatusCode === 412);
}
