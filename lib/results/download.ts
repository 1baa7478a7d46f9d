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
  /** Keys listed but gone when read (a live sweep rotating checkpoints or moving results to history/). */
  readonly vanished: readonly string[];
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

/**
 * Copies the sweep's files (see the module comment) from `store` into `dir`. Each config's folder is built
 * beside its final place and then put there whole, replacing what an earlier download left: a model/ the
 * store no longer holds (its job changed and the runner moved it to history/) must not stay beside the new
 * results.json. A key that vanishes between the listing and its read (a live sweep rotates checkpoints) is
 * skipped and counted, not fatal.
 */
export async function downloadSweep(store: SweepStore, sweep: string, configs: readonly string[], dir: string, options: DownloadOptions = {}): Promise<DownloadSummary> {
  const sweepPrefix = storeKeys.sweep(sweep);
  const files: DownloadedFile[] = [];
  const refused: string[] = [];
  const vanished: string[] = [];
  const perConfig: { config: string; files: number; model: boolean }[] = [];
  /** Writes `key` to `file` by rename; false when the object is gone. */
  const copy = async (key: string, file: string, shownAs: string): Promise<boolean> => {
    const size = await store.size(key);
    if (size === undefined) {
      vanished.push(key);
      return false;
    }
    // An empty object has no byte 0 to start a range at (S3 answers 416), so it is not read.
    const body = size === 0 ? Buffer.alloc(0) : await store.readFrom(key, 0);
    mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.part`;
    try {
      writeFileSync(tmp, body);
      renameSync(tmp, file);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
    const done = { key, file: shownAs, bytes: body.length };
    files.push(done);
    options.onFile?.(done);
    return true;
  };
  mkdirSync(dir, { recursive: true });
  for (const config of configs) {
    const prefix = storeKeys.config(sweep, config);
    // Config names are validated spec names (lower-case letters, digits, dashes): a plain folder name.
    const target = path.join(dir, config);
    const staging = path.join(dir, `.${config}.download-${process.pid}`);
    rmSync(staging, { recursive: true, force: true });
    const keys = (await store.list(prefix)).filter((k) => options.checkpoints || !k.startsWith(prefix + CHECKPOINTS));
    let count = 0;
    let model = false;
    try {
      for (const key of keys) {
        const file = localPath(staging, prefix, key);
        if (file === undefined) {
          refused.push(key);
          continue;
        }
        if (!(await copy(key, file, path.join(target, path.relative(staging, file))))) continue;
        count += 1;
        model ||= key.startsWith(prefix + MODEL);
      }
      rmSync(target, { recursive: true, force: true });
      if (count > 0) renameSync(staging, target);
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
    perConfig.push({ config, files: count, model });
  }
  for (const name of Object.values(SWEEP_FILES)) {
    const key = sweepPrefix + name;
    const file = localPath(dir, sweepPrefix, key)!;
    if ((await store.size(key)) !== undefined) await copy(key, file, file);
  }
  return { dir: path.resolve(dir), files, bytes: files.reduce((n, f) => n + f.bytes, 0), configs: perConfig, refused, vanished };
}
