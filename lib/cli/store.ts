import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { GetObjectCommand, NoSuchKey, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

/**
 * Where a sweep's files live, seen from the CLI: a local directory (`file://`) or an S3 bucket
 * (AWS, or a local S3 server through `endpoint`). Keys are relative to the root, e.g.
 * `sweeps/demo/baseline/results.json`; the Python job runner uses the same layout.
 */
export interface SweepStore {
  /** `file:///abs/dir` or `s3://bucket`, with no trailing slash. */
  readonly root: string;
  /** Environment the job runner needs to reach the same store (e.g. the S3 endpoint). */
  readonly env: Readonly<Record<string, string>>;
  read(key: string): Promise<string | undefined>;
  write(key: string, body: string): Promise<void>;
}

/** A store in a local directory (created on first write). */
export function fileStore(dir: string): SweepStore {
  const base = path.resolve(dir);
  return {
    root: pathToFileURL(base).href.replace(/\/+$/, ''),
    env: {},
    async read(key) {
      try {
        return readFileSync(path.join(base, key), 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    },
    async write(key, body) {
      const file = path.join(base, key);
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, body);
    },
  };
}

export interface S3StoreOptions {
  readonly bucket: string;
  /**
   * An S3-compatible endpoint, e.g. a local server `http://127.0.0.1:4569`.
   * @default - AWS S3 in the SDK's configured region
   */
  readonly endpoint?: string;
}

/** A store in an S3 bucket. */
export function s3Store(options: S3StoreOptions): SweepStore {
  const client = new S3Client({
    ...(options.endpoint ? { endpoint: options.endpoint, forcePathStyle: true, region: process.env.AWS_REGION ?? 'us-east-1' } : {}),
    // Local S3 servers (s3rver) store streamed uploads with the new default checksums corrupted.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return {
    root: `s3://${options.bucket}`,
    env: options.endpoint ? { AWS_ENDPOINT_URL: options.endpoint } : {},
    async read(key) {
      try {
        const r = await client.send(new GetObjectCommand({ Bucket: options.bucket, Key: key }));
        return await r.Body?.transformToString('utf8');
      } catch (err) {
        if (err instanceof NoSuchKey || (err as { name?: string }).name === 'NoSuchKey') return undefined;
        throw err;
      }
    },
    async write(key, body) {
      await client.send(new PutObjectCommand({ Bucket: options.bucket, Key: key, Body: body, ContentType: 'application/json' }));
    },
  };
}

/** The local directory of a `file://` root (for messages). */
export function storeLocation(store: SweepStore): string {
  return store.root.startsWith('file://') ? fileURLToPath(store.root) : store.root;
}
