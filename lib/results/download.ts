import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { CONFIG_FILES, storeKeys, SWEEP_FILES } from '../contract';
import { SweepStore } from '../store';

/**
 * `spot-sweep results --download DIR`: a sweep's outputs copied out of the store (the bucket or a local
 * store) into DIR, in the store's own layout below `sweeps/<sweep>/`: each config's results.json,
 * status.json, job.json, train.log, model/, the script's results/ and history/, then the sweep's
 * leaderboard.json, report.html and spend.json. Checkpoints are left in the store unless asked for: they only
 * serve a resume, and a config keeps two of them.
 */

export interface DownloadOptions {
  /** Copy each config's checkpoints/ too. @default false */
  readonly checkpoints?: boolean;
  /** Called after each file is written (progress). @default - nothing */
  readonly onFile?: (file: DownloadedFile) => void;
}

export interface DownloadedFile {
  /** The store key it came from. */
  readonly key: string;
  /** Where it was written. */
  readonly file: string;
  readonly bytes: number;
}

export interface DownloadSummary {
  readonly dir: string;
  readonly files: readonly DownloadedFile[];
  readonly bytes: number;
  /** Per config: how many files, and whether a model came with them. */
  readonly configs: readonly { readonly config: string; readonly files: number; readonly model: boolean }[];
  /** Keys not written because their path would leave DIR (a `..` segment, an absolute part): named, not followed. */
  readonly refused: readonly string[];
}

const CHECKPOINTS = CONFIG_FILES.checkpoints;
const MODEL = CONFIG_FILES.model;

/**
 * The local path of `key` below `dir`, or undefined when the key's remainder (after `prefix`) would land
 * outside it: keys are data anyone with write access to the bucket chose, and a `../` must not become a
 * write to the user's home directory.
 */
export function localPath(dir: string, prefix: string, key: string): string | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const parts = key.slice(prefix.length).split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..' || p.includes('\\') || p.includes('\0'))) return undefined;
  const file = path.resolve(dir, ...parts);
  return file.startsWith(path.resolve(dir) + path.sep) ? file : undefined;
}

/** Copies the sweep's files (see the module comment) from `store` into `dir`; each file written by rename. */
export async function downloadSweep(store: SweepStore, sweep: string, configs: readonly string[], dir: string, options: DownloadOptions = {}): Promise<DownloadSummary> {
  const sweepPrefix = storeKeys.sweep(sweep);
  const files: DownloadedFile[] = [];
  const refused: string[] = [];
  const perConfig: { config: string; files: number; model: boolean }[] = [];
  const copy = async (key: string): Promise<boolean> => {
    const file = localPath(dir, sweepPrefix, key);
    if (file === undefined) {
      refused.push(key);
      return false;
    }
    // An empty object has no byte 0 to start a range at (S3 answers 416), so it is not read.
    const body = (await store.size(key)) === 0 ? Buffer.alloc(0) : await store.readFrom(key, 0);
    mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.part`;
    try {
      writeFileSync(tmp, body);
      renameSync(tmp, file);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
    const done = { key, file, bytes: body.length };
    files.push(done);
    options.onFile?.(done);
    return true;
  };
  for (const config of configs) {
    const prefix = storeKeys.config(sweep, config);
    const keys = (await store.list(prefix)).filter((k) => options.checkpoints || !k.startsWith(prefix + CHECKPOINTS));
    let count = 0;
    let model = false;
    for (const key of keys) {
      if (!(await copy(key))) continue;
      count += 1;
      model ||= key.startsWith(prefix + MODEL);
    }
    perConfig.push({ config, files: count, model });
  }
  for (const name of Object.values(SWEEP_FILES)) {
    const key = sweepPrefix + name;
    if ((await store.size(key)) !== undefined) await copy(key);
  }
  return { dir: path.resolve(dir), files, bytes: files.reduce((n, f) => n + f.bytes, 0), configs: perConfig, refused };
}
