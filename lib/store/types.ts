/**
 * The sweep store: where a sweep's files live (the artifact bucket in S3, or a local directory), seen
 * from TypeScript. Keys are relative to the root and come from lib/contract (`storeKeys`), e.g.
 * `sweeps/demo/baseline/status.json`; the Python job runner (training/spot_runner/storage.py) uses
 * the same layout. One interface serves the CLI and the Lambdas.
 */

/** An object's text and its ETag, for a conditional rewrite. */
export interface StoredText {
  readonly text: string;
  /** Changes whenever the content changes (S3's ETag; size and mtime for local files). */
  readonly etag: string;
}

export interface WriteOptions {
  /** @default - application/json, or text/html for .html keys */
  readonly contentType?: string;
  /**
   * Write only if the object still has this ETag (`If-Match`), or only if it does not exist yet
   * (`'absent'`, `If-None-Match: *`); otherwise the write fails with {@link PreconditionFailed}.
   * @see https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
   * @default - unconditional
   */
  readonly ifMatch?: string | 'absent';
}

/** A conditional write lost a race: another writer changed (or created) the object in between. */
export class PreconditionFailed extends Error {
  constructor(public readonly key: string) {
    super(`${key} was changed by another writer in the meantime`);
    this.name = 'PreconditionFailed';
  }
}

export interface SweepStore {
  /** `file:///abs/dir` or `s3://bucket`, with no trailing slash. */
  readonly root: string;
  /** Environment the job runner needs to reach the same store (e.g. the S3 endpoint). */
  readonly env: Readonly<Record<string, string>>;
  /** The object's text, or undefined when there is none. */
  read(key: string): Promise<string | undefined>;
  /** The object's text and ETag, or undefined when there is none. */
  readObject(key: string): Promise<StoredText | undefined>;
  write(key: string, body: string, options?: WriteOptions): Promise<void>;
  /** Size in bytes of an object, or undefined when there is none. */
  size(key: string): Promise<number | undefined>;
  /** Bytes from `start` to the end of an object. */
  readFrom(key: string, start: number): Promise<Buffer>;
  /** Every key that starts with `prefix` (all pages), sorted; [] when there is none. */
  list(prefix: string): Promise<string[]>;
  /** The full location of a key, for messages: `s3://bucket/key` or a local path. */
  describe(key: string): string;
}

export function contentTypeOf(key: string): string {
  return key.endsWith('.html') ? 'text/html; charset=utf-8' : key.endsWith('.json') ? 'application/json' : 'text/plain; charset=utf-8';
}
