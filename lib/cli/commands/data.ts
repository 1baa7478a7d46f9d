import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import * as path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { EXIT_CODES } from '../../contract';
import { AWS_OPTIONS, Command, OptionTable, UsageError } from '../args';
import { aws, AwsSession, AwsSetupError } from '../aws';
import type { CliIo } from '../io';
import { findPython } from './local';

/**
 * `spot-sweep data import` (a table of texts and labels -> the trainer's text layout, by
 * `python -m two_tower.import_data`) and `spot-sweep data push` (a dataset directory -> s3://, skipping
 * unchanged files and resuming interrupted multipart uploads).
 */

const REPO = path.resolve(__dirname, '..', '..', '..');

const importOptions = {
  out: { type: 'string', value: 'DIR', help: 'the new dataset directory (must not exist, or be empty)' },
  query: { type: 'string', value: 'COL', default: 'query', help: 'query text column' },
  doc: { type: 'string', value: 'COL', default: 'doc', help: 'document text column' },
  label: { type: 'string', value: 'COL', default: 'label', help: 'label column: integers >= 0' },
  weak: { type: 'string', value: 'COL', help: 'weak flag column (0/1, true/false): trained on, never evaluated' },
  'weak-score': { type: 'string', value: 'COL', help: 'weak score column (float): weak=1 and sample weight = score where given' },
  'query-id': { type: 'string', value: 'COL', help: 'query id column (default: derived from the text)' },
  'doc-id': { type: 'string', value: 'COL', help: 'document id column (default: derived from the text)' },
  python: { type: 'string', value: 'PATH', help: 'the Python to run the import with (default: $SPOT_SWEEP_PYTHON, then .venv)' },
} as const satisfies OptionTable;

export const dataImport: Command<typeof importOptions> = {
  name: 'data import',
  summary: 'turn a CSV/Parquet table of query, document, label (and weak score) into a dataset directory',
  description: `
Reads FILE (CSV or Parquet, in chunks) and writes the text layout the trainer reads: pairs.csv
(query_id,doc_id,relevance,weak,weight) + queries.csv + docs.csv, each query and document once. A
--weak-score column makes its rows weak (trained on, never evaluated) with the score as the row's sample
weight in the loss. Every bad row is reported (file, line, column, fix), nothing is written, and the
exit code is 2, as for a wrong command line.
Next: spot-sweep data push DIR s3://bucket/prefix/, and "data": "s3://bucket/prefix/" in the spec.`,
  positionals: [{ name: 'FILE', help: 'the table to import (.csv or .parquet)', required: true }],
  options: importOptions,
  exits: ['ok', 'usage'],
  async run({ positionals, options: o }, io) {
    if (o.out === undefined) throw new UsageError('--out DIR is required (the new dataset directory).');
    if (o.weak !== undefined && o['weak-score'] !== undefined) throw new UsageError('give --weak or --weak-score, not both.');
    const args = ['-m', 'two_tower.import_data', positionals[0], '--out', o.out, '--query', o.query, '--doc', o.doc, '--label', o.label];
    for (const name of ['weak', 'weak-score', 'query-id', 'doc-id'] as const) {
      const value = o[name];
      if (value !== undefined) args.push(`--${name}`, value);
    }
    const code = await runPython(findPython(o.python, io.env), args, io);
    return code === 0 ? EXIT_CODES.cli.ok : EXIT_CODES.cli.usage;
  },
};

/** Runs the import module; its output goes to ours as it comes. */
function runPython(python: string, args: string[], io: CliIo): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(python, args, {
      env: { ...io.env, PYTHONPATH: [path.join(REPO, 'training'), io.env.PYTHONPATH].filter(Boolean).join(path.delimiter) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (d: Buffer) => io.out(d.toString()));
    child.stderr.on('data', (d: Buffer) => io.err(d.toString()));
    child.on('error', (err) => {
      io.err(`spot-sweep data import: cannot run ${python} (${err.message}); set up the venv with bash training/setup-venv.sh or pass --python PATH.\n`);
      resolve(127);
    });
    child.on('close', (code) => resolve(code ?? 1));
  });
}

const pushOptions = {
  'part-mib': { type: 'string', value: 'MIB', default: '64', help: 'multipart part size in MiB (at least 5); files above it go in parts' },
  region: AWS_OPTIONS.region,
} as const satisfies OptionTable;

/** The object metadata key holding the file's sha256 (x-amz-meta-sha256): what a rerun compares. */
const DIGEST_KEY = 'sha256';
const MIB = 2 ** 20;
/** S3's multipart limits: parts of 5 MiB to 5 GiB, at most 10,000 parts. @see https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html */
const MIN_PART = 5 * MIB;
const MAX_PARTS = 10_000;

interface LocalFile {
  readonly rel: string;
  readonly abs: string;
  readonly size: number;
}

export const dataPush: Command<typeof pushOptions> = {
  name: 'data push',
  summary: 'upload a dataset directory to s3://, skipping unchanged files and resuming interrupted uploads',
  description: `
Uploads every file under DIR to s3://bucket/prefix/ with its sha256 in the object's metadata. A rerun
skips each file whose object has the same size and sha256, and continues an interrupted multipart upload
from the parts already there (checked against the file), aborting other unfinished uploads of the key.
Shows a progress bar on a terminal, one line per file otherwise. Then set "data": "s3://bucket/prefix/".`,
  positionals: [
    { name: 'DIR', help: 'the dataset directory (e.g. made by spot-sweep data import)', required: true },
    { name: 'URI', help: 's3://bucket/prefix/', required: true },
  ],
  options: pushOptions,
  exits: ['ok', 'usage', ['aws', 'no credentials, the bucket missing, or access denied (each named with its fix)']],
  async run({ positionals, options: o }, io) {
    const [dir, uri] = positionals;
    const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(uri);
    if (!match) throw new UsageError(`"${uri}" is not an s3:// URI; give s3://bucket/prefix/ (e.g. s3://my-bucket/datasets/weak-5m/).`);
    const bucket = match[1];
    const prefix = match[2] ? (match[2].endsWith('/') ? match[2] : `${match[2]}/`) : '';
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`${dir}: no such directory; give the dataset directory (made by spot-sweep data import --out DIR).`);
    const partMib = Number(o['part-mib']);
    if (!Number.isFinite(partMib) || partMib * MIB < MIN_PART) throw new UsageError(`--part-mib ${o['part-mib']}: give a number of MiB of at least 5 (S3's smallest part).`);
    const files = listFiles(dir);
    if (files.length === 0) throw new UsageError(`${dir} holds no files to push.`);
    const session = await AwsSession.open(o, io.env);
    try {
      const s3 = session.s3();
      await requireBucket(s3, bucket);
      const progress = new Progress(io, files.reduce((n, f) => n + f.size, 0));
      let uploaded = 0;
      for (const file of files) {
        const key = `${prefix}${file.rel}`;
        const digest = await sha256(file.abs);
        const remote = await head(s3, bucket, key);
        if (remote && remote.size === file.size && remote.digest === digest) {
          progress.done(file.rel, file.size, 'unchanged, skipped');
          continue;
        }
        const partSize = Math.max(partMib * MIB, Math.ceil(file.size / MAX_PARTS));
        const how = file.size > partSize ? await multipart(s3, bucket, key, file, digest, partSize, progress) : await putOne(s3, bucket, key, file, digest, progress);
        progress.done(file.rel, file.size, how);
        uploaded += 1;
      }
      progress.finish();
      io.out(`pushed ${dir} to s3://${bucket}/${prefix}: ${uploaded} uploaded, ${files.length - uploaded} unchanged. Use "data": "s3://${bucket}/${prefix}" in the spec.\n`);
      return EXIT_CODES.cli.ok;
    } finally {
      session.close();
    }
  },
};

function listFiles(dir: string, under = ''): LocalFile[] {
  const out: LocalFile[] = [];
  for (const entry of readdirSync(path.join(dir, under), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const rel = under ? `${under}/${entry.name}` : entry.name;
    const abs = path.join(dir, rel);
    if (entry.isDirectory()) out.push(...listFiles(dir, rel));
    else if (statSync(abs).isFile()) out.push({ rel, abs, size: statSync(abs).size });
  }
  return out;
}

function sha256(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('data', (c) => hash.update(c))
      .on('end', () => resolve(hash.digest('hex')))
      .on('error', reject);
  });
}

/**
 * The object's size and stored sha256, or undefined when there is none. HeadObject returns user-defined
 * metadata (x-amz-meta-*) without the body; a missing key is a 404 NotFound.
 * @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html
 * @see https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html#UserMetadata
 */
async function head(s3: S3Client, bucket: string, key: string): Promise<{ size: number; digest?: string } | undefined> {
  const { HeadObjectCommand } = await import('@aws-sdk/client-s3');
  try {
    const r = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return { size: r.ContentLength ?? -1, digest: r.Metadata?.[DIGEST_KEY] };
  } catch (err) {
    const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
    if (e.name === 'NotFound' || e.name === 'NoSuchKey') return undefined;
    throw await aws(`S3 HeadObject s3://${bucket}/${key}`, () => Promise.reject(err));
  }
}

/**
 * Fails naming the bucket and the fix when it does not exist: HeadBucket answers 404 (a HEAD has no error body
 * to name it, so every key of a missing bucket would otherwise read as "not uploaded yet").
 * @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadBucket.html
 */
async function requireBucket(s3: S3Client, bucket: string): Promise<void> {
  const { HeadBucketCommand } = await import('@aws-sdk/client-s3');
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch (err) {
    const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
    if (e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404) {
      throw new AwsSetupError(`the bucket ${bucket} does not exist (or not in this region/account): create it (aws s3 mb s3://${bucket}) or fix the s3:// URI.`);
    }
    await aws(`S3 HeadBucket ${bucket}`, () => Promise.reject(err));
  }
}

async function putOne(s3: S3Client, bucket: string, key: string, file: LocalFile, digest: string, progress: Progress): Promise<string> {
  const { PutObjectCommand } = await import('@aws-sdk/client-s3');
  const body = await readRange(file.abs, 0, file.size);
  await aws(`S3 PutObject s3://${bucket}/${key}`, () => s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, Metadata: { [DIGEST_KEY]: digest } })));
  progress.add(file.size);
  return 'uploaded';
}

async function readRange(file: string, start: number, length: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buffer, 0, length, start);
    return buffer.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/**
 * A multipart upload that resumes: an unfinished upload of the key (ListMultipartUploads) whose listed parts
 * (ListParts) match the file's bytes (each part's ETag is the MD5 of its bytes for uploads without SSE-KMS/-C) is
 * continued, sending only the missing or different parts; other unfinished uploads of the key are aborted so
 * their parts stop being billed.
 * @see https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpuoverview.html
 * @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListMultipartUploads.html
 * @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListParts.html
 */
async function multipart(s3: S3Client, bucket: string, key: string, file: LocalFile, digest: string, partSize: number, progress: Progress): Promise<string> {
  const sdk = await import('@aws-sdk/client-s3');
  const where = `s3://${bucket}/${key}`;
  const count = Math.ceil(file.size / partSize);
  const abort = (id: string) => aws(`S3 AbortMultipartUpload ${where}`, () => s3.send(new sdk.AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: id })));
  const uploads = (await aws(`S3 ListMultipartUploads ${where}`, () => s3.send(new sdk.ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key })))).Uploads ?? [];
  const mine = uploads.filter((u) => u.Key === key && u.UploadId);
  // Keep the unfinished upload with the most parts of this file's size; abort the others.
  let uploadId: string | undefined;
  let have = new Map<number, string>();
  for (const u of mine) {
    const parts = (await aws(`S3 ListParts ${where}`, () => s3.send(new sdk.ListPartsCommand({ Bucket: bucket, Key: key, UploadId: u.UploadId, MaxParts: 1000 })))).Parts ?? [];
    const usable = parts.filter((p) => p.PartNumber !== undefined && p.PartNumber <= count && p.ETag && p.Size === Math.min(partSize, file.size - (p.PartNumber - 1) * partSize));
    if (usable.length > 0 && usable.length > have.size) {
      if (uploadId !== undefined) await abort(uploadId);
      uploadId = u.UploadId;
      have = new Map(usable.map((p) => [p.PartNumber as number, (p.ETag as string).replace(/"/g, '')]));
    } else {
      await abort(u.UploadId as string);
    }
  }
  if (uploadId === undefined) {
    const created = await aws(`S3 CreateMultipartUpload ${where}`, () => s3.send(new sdk.CreateMultipartUploadCommand({ Bucket: bucket, Key: key, Metadata: { [DIGEST_KEY]: digest } })));
    uploadId = created.UploadId as string;
  }
  const done: { PartNumber: number; ETag: string }[] = [];
  let reused = 0;
  for (let n = 1; n <= count; n += 1) {
    const start = (n - 1) * partSize;
    const body = await readRange(file.abs, start, Math.min(partSize, file.size - start));
    const md5 = createHash('md5').update(body).digest('hex');
    if (have.get(n) === md5) {
      reused += 1;
    } else {
      const r = await aws(`S3 UploadPart ${where} part ${n}`, () => s3.send(new sdk.UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: n, Body: body })));
      have.set(n, (r.ETag ?? md5).replace(/"/g, ''));
    }
    done.push({ PartNumber: n, ETag: `"${have.get(n)}"` });
    progress.add(body.length);
  }
  await aws(`S3 CompleteMultipartUpload ${where}`, () =>
    s3.send(new sdk.CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: done } })),
  );
  return reused > 0 ? `resumed: ${reused} of ${count} parts were already there` : `uploaded in ${count} parts`;
}

/** A progress bar redrawn in place on a terminal; one line per file otherwise. */
class Progress {
  private sent = 0;
  private readonly started = Date.now();

  constructor(
    private readonly io: CliIo,
    private readonly total: number,
  ) {}

  add(bytes: number): void {
    this.sent += bytes;
    if (!this.io.isTTY) return;
    const width = 30;
    const share = this.total > 0 ? this.sent / this.total : 1;
    const bar = '#'.repeat(Math.round(share * width)).padEnd(width, '.');
    const rate = this.sent / MIB / Math.max((Date.now() - this.started) / 1000, 1e-3);
    this.io.out(`\r[${bar}] ${(share * 100).toFixed(0).padStart(3)}% ${(this.sent / MIB).toFixed(1)}/${(this.total / MIB).toFixed(1)} MiB ${rate.toFixed(1)} MiB/s`);
  }

  done(name: string, size: number, how: string): void {
    if (how.startsWith('unchanged')) this.add(size);
    this.io.out(`${this.io.isTTY ? '\r\x1b[K' : ''}${name} (${(size / MIB).toFixed(1)} MiB): ${how}\n`);
  }

  finish(): void {
    const seconds = (Date.now() - this.started) / 1000;
    this.io.out(`${(this.total / MIB).toFixed(1)} MiB in ${seconds.toFixed(1)} s\n`);
  }
}
