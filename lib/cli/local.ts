import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { buildLeaderboard, formatLeaderboard } from '../results/leaderboard';
import { loadSpec } from '../spec/load';
import { renderJob, storePrefix } from '../spec/job';
import { SweepSpec } from '../spec/types';
import { fileStore, s3Store, storeLocation, SweepStore } from './store';

/** The repository root (this file is lib/cli/local.ts). */
const REPO = path.resolve(__dirname, '..', '..');

/** Exit codes of `local`, on top of the CLI's (0 ok, 1 spec errors, 2 usage). */
export const LOCAL_EXIT = { someFailed: 4 } as const;

export const LOCAL_USAGE =
  'spot-sweep local <spec.json> [--store DIR | --s3-endpoint URL --bucket NAME] [--config NAME]... [--python PATH]';

export interface LocalOptions {
  readonly specFile: string;
  /** Local store directory. @default '.spot-sweep/store' */
  readonly storeDir?: string;
  /** A local S3 server instead of a directory (with `bucket`). */
  readonly s3Endpoint?: string;
  readonly bucket?: string;
  /** Only these configs. @default - every config of the spec */
  readonly configs?: readonly string[];
  /** Python that has torch and the training package's requirements. @default - see {@link findPython} */
  readonly python?: string;
}

export interface LocalIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
}

/** A user mistake that stops `local` before any job runs; one or more problems, each with its fix. */
export class LocalUsageError extends Error {
  constructor(public readonly problems: string | readonly string[]) {
    super(typeof problems === 'string' ? problems : problems.length === 1 ? problems[0] : `${problems.length} problems:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** Parses `local`'s arguments; throws LocalUsageError naming the bad argument and the usage. */
export function parseLocalArgs(args: readonly string[]): LocalOptions {
  const files: string[] = [];
  const configs: string[] = [];
  const opts: { storeDir?: string; s3Endpoint?: string; bucket?: string; python?: string } = {};
  const valueFlags: Record<string, keyof typeof opts | 'config'> = {
    '--store': 'storeDir',
    '--s3-endpoint': 's3Endpoint',
    '--bucket': 'bucket',
    '--python': 'python',
    '--config': 'config',
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const key = valueFlags[flag];
    if (key !== undefined) {
      const value = inline ?? args[++i];
      if (value === undefined || value === '') throw new LocalUsageError(`${flag} needs a value.`);
      if (key === 'config') configs.push(value);
      else opts[key] = value;
    } else if (arg.startsWith('-')) {
      throw new LocalUsageError(`unknown option "${arg}".`);
    } else {
      files.push(arg);
    }
  }
  if (files.length !== 1) throw new LocalUsageError(files.length === 0 ? 'no spec file given.' : `one spec file expected, got ${files.length}.`);
  if ((opts.s3Endpoint === undefined) !== (opts.bucket === undefined)) {
    throw new LocalUsageError('--s3-endpoint and --bucket go together (a local S3 server and the bucket on it).');
  }
  if (opts.s3Endpoint !== undefined && opts.storeDir !== undefined) {
    throw new LocalUsageError('give either --store DIR or --s3-endpoint URL --bucket NAME, not both.');
  }
  if (opts.s3Endpoint !== undefined && !/^https?:\/\/[^/\s]+\/?$/.test(opts.s3Endpoint)) {
    throw new LocalUsageError(`--s3-endpoint "${opts.s3Endpoint}" is not an endpoint URL; use the form http://127.0.0.1:4569.`);
  }
  return { specFile: files[0], ...opts, ...(configs.length > 0 ? { configs } : {}) };
}

/**
 * The Python to run jobs with: `--python`, else $SPOT_SWEEP_PYTHON, else the repo's .venv (made by
 * training/setup-venv.sh), else python3 from PATH.
 */
export function findPython(explicit: string | undefined, env: NodeJS.ProcessEnv): string {
  if (explicit) return explicit;
  if (env.SPOT_SWEEP_PYTHON) return env.SPOT_SWEEP_PYTHON;
  const venv = path.join(REPO, '.venv', 'bin', 'python');
  return existsSync(venv) ? venv : 'python3';
}

/** Problems that would make every job fail at once: missing local data, unknown --config names. */
function preflight(spec: SweepSpec, opts: LocalOptions, python: string, env: NodeJS.ProcessEnv): string[] {
  const problems: string[] = [];
  const known = new Set(spec.configs.map((c) => c.name));
  for (const name of opts.configs ?? []) {
    if (!known.has(name)) problems.push(`--config ${name}: the spec has no such config; its configs are ${[...known].join(', ')}.`);
  }
  const missing = new Map<string, string[]>();
  for (const c of spec.configs) {
    if (!c.data.startsWith('s3://') && !existsSync(c.data)) missing.set(c.data, [...(missing.get(c.data) ?? []), c.name]);
  }
  for (const [dir, names] of missing) {
    problems.push(
      `data directory ${dir} (configs ${names.join(', ')}) does not exist. Point "data" in ${opts.specFile} at your dataset, ` +
        `or make a synthetic one: PYTHONPATH=training ${python} -m two_tower.synth --out ${path.relative(process.cwd(), dir) || dir}`,
    );
  }
  const probe = spawnSync(python, ['-c', 'import torch, numpy'], { env: { ...env, PYTHONPATH: path.join(REPO, 'training') }, encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    problems.push(
      `${python} cannot run the trainer (${probe.error ? probe.error.message : (probe.stderr.trim().split('\n').pop() ?? 'import failed')}). ` +
        'Set up the venv with: bash training/setup-venv.sh (or pass --python PATH to a Python with torch).',
    );
  }
  return problems;
}

/** Runs one job through the Python job runner; resolves with its exit code. */
function runJob(python: string, jobUri: string, workdir: string, env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(python, ['-m', 'two_tower.job', '--job', jobUri, '--workdir', workdir], {
      env: { ...env, PYTHONPATH: [path.join(REPO, 'training'), env.PYTHONPATH].filter(Boolean).join(path.delimiter) },
      stdio: 'inherit',
    });
    child.on('error', () => resolve(127));
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 + 15 : 1)));
  });
}

/**
 * `spot-sweep local`: the sweep on this machine, through the same job runner the instances use.
 * Writes each config's job.json to the store, runs the configs one after another, then prints the
 * leaderboard. Returns the exit code: 0 when every config succeeded, 4 when one did not.
 */
export async function runLocal(opts: LocalOptions, io: LocalIo): Promise<number> {
  const spec = loadSpec(opts.specFile);
  const python = findPython(opts.python, io.env);
  const problems = preflight(spec, opts, python, io.env);
  if (problems.length > 0) {
    throw new LocalUsageError(problems);
  }
  const store: SweepStore = opts.s3Endpoint
    ? s3Store({ endpoint: opts.s3Endpoint, bucket: opts.bucket as string })
    : fileStore(opts.storeDir ?? path.join('.spot-sweep', 'store'));
  const configs = spec.configs.filter((c) => !opts.configs || opts.configs.includes(c.name));
  const started = Date.now();
  io.out(`Sweep "${spec.name}": ${configs.length} config(s) on this machine, store ${storeLocation(store)}\n`);

  const codes = new Map<string, number>();
  for (const config of configs) {
    const prefix = `sweeps/${spec.name}/${config.name}/`;
    const job = renderJob(spec, config.name, { store: storePrefix(store.root, spec.name, config.name) });
    await store.write(`${prefix}job.json`, `${JSON.stringify(job, null, 2)}\n`);
    io.out(`\n== ${config.name}: ${config.examples === null ? 'all' : config.examples.toLocaleString('en-US')} examples, ${config.train.folds} folds x ${config.train.epochs} epoch(s)\n`);
    const workdir = path.resolve('.spot-sweep', 'work', spec.name, config.name);
    const code = await runJob(python, `${store.root}/${prefix}job.json`, workdir, { ...io.env, ...store.env });
    codes.set(config.name, code);
  }

  const artifacts = await Promise.all(
    configs.map(async (c) => ({
      config: c.name,
      resultsText: await store.read(`sweeps/${spec.name}/${c.name}/results.json`),
      statusText: await store.read(`sweeps/${spec.name}/${c.name}/status.json`),
    })),
  );
  const board = buildLeaderboard(artifacts);
  io.out(`\nLeaderboard of "${spec.name}" (wall time ${((Date.now() - started) / 1000).toFixed(0)} s):\n${formatLeaderboard(board)}`);
  io.out(`Results: ${storeLocation(store)}/sweeps/${spec.name}/<config>/results.json\n`);
  const failed = configs.filter((c) => codes.get(c.name) !== 0 || board.rows.find((r) => r.config === c.name)?.ndcgMean === undefined);
  if (failed.length > 0) {
    io.err(`spot-sweep local: ${failed.length} of ${configs.length} config(s) did not succeed: ${failed.map((c) => `${c.name} (exit ${codes.get(c.name)})`).join(', ')}. Their status.json and train.log say why.\n`);
    return LOCAL_EXIT.someFailed;
  }
  return 0;
}
