import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { ACTION, EXIT_CODES, REQUESTERS, RUNNER_WORKDIR, STATE, storeKeys, TRAINER_OUT } from '../../contract';
import { buildLeaderboard, formatLeaderboard, formatModels } from '../../results/leaderboard';
import { readArtifacts, rebuildSweepFiles } from '../../results/sweep-files';
import { closest } from '../../spec/validate';
import { renderJob, storePrefix } from '../../spec/job';
import { loadSpec } from '../../spec/load';
import { ResolvedConfig, SweepSpec } from '../../spec/types';
import { fileStore, readControl, readStatus, requestControl, s3Store, SweepStore } from '../../store';
import { Command, OptionTable, UsageError } from '../args';
import { explainAwsError } from '../aws';
import { CliIo, paintState, painter, wantsColour } from '../io';
import { ConfigReading, LiveView } from '../live-view';
import { DEFAULT_LOCAL_STORE } from './results';
import { terminalColumns } from './status';

/** The repository root (this file is lib/cli/commands/local.ts). */
const REPO = path.resolve(__dirname, '..', '..', '..');


const SUCCEEDED = STATE.SUCCEEDED;

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

/** Options that must come together or not at all; a UsageError naming the fix otherwise. */
function checkStoreOptions(o: { store?: string; 's3-endpoint'?: string; bucket?: string }): void {
  if ((o['s3-endpoint'] === undefined) !== (o.bucket === undefined)) {
    throw new UsageError('--s3-endpoint and --bucket go together (a local S3 server and the bucket on it).');
  }
  if (o['s3-endpoint'] !== undefined && o.store !== undefined) {
    throw new UsageError('give either --store DIR or --s3-endpoint URL --bucket NAME, not both.');
  }
  if (o['s3-endpoint'] !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(o['s3-endpoint']);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname !== '/' || url.search !== '') {
      throw new UsageError(`--s3-endpoint "${o['s3-endpoint']}" is not an endpoint URL; use the form http://127.0.0.1:4569.`);
    }
  }
}

/** The local directories `dirOf` names that do not exist, each with the configs naming it, in spec order. */
function missingDirs(spec: SweepSpec, dirOf: (c: SweepSpec['configs'][number]) => string | null): Map<string, string[]> {
  const missing = new Map<string, string[]>();
  for (const c of spec.configs) {
    const dir = dirOf(c);
    if (dir !== null && !existsSync(dir)) missing.set(dir, [...(missing.get(dir) ?? []), c.name]);
  }
  return missing;
}

/** Problems that would make every job fail at once: unknown --config names, missing local data, no torch. */
function preflight(spec: SweepSpec, specFile: string, only: readonly string[], python: string, env: NodeJS.ProcessEnv): string[] {
  const problems: string[] = [];
  const known = spec.configs.map((c) => c.name);
  for (const name of only) {
    if (known.includes(name)) continue;
    const near = closest(name, known);
    problems.push(`--config ${name}: the spec has no such config; ${near ? `did you mean "${near}"? Its` : 'its'} configs are ${known.join(', ')}.`);
  }
  const shown = (dir: string): string => path.relative(process.cwd(), dir) || dir;
  for (const [dir, names] of missingDirs(spec, (c) => (c.data !== null && !c.data.startsWith('s3://') ? c.data : null))) {
    problems.push(
      `data directory ${dir} (configs ${names.join(', ')}) does not exist. Point "data" in ${specFile} at your dataset, ` +
        `or make a synthetic one: PYTHONPATH=training ${python} -m two_tower.synth --out ${shown(dir)}`,
    );
  }
  for (const [dir, names] of missingDirs(spec, (c) => (c.encoder !== null && path.isAbsolute(c.encoder) ? c.encoder : null))) {
    problems.push(
      `encoder directory ${dir} (configs ${names.join(', ')}) does not exist. Point "encoder" in ${specFile} at a sentence-transformers model ` +
        `directory, or build a tiny one from your texts: PYTHONPATH=training ${python} -m two_tower.tiny_encoder --out ${shown(dir)} --texts DATA/queries.csv DATA/docs.csv`,
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

/** Lines of a runner's output kept to show when its job does not succeed (all of it is in train.log). */
const TAIL_LINES = 15;

/** A job runner's run: its exit code and, unless its output went to the terminal, the last lines of it. */
interface JobRun {
  readonly code: number;
  readonly tail: readonly string[];
}

/**
 * Runs one job through the Python job runner (the module instances run). `verbose`: its output goes
 * to the terminal as it comes; otherwise only its last lines are kept (the trainer's per-epoch and
 * checkpoint lines are in the config's train.log either way: the runner tees them there).
 */
function runJob(python: string, jobUri: string, workdir: string, env: NodeJS.ProcessEnv, verbose: boolean): { done: Promise<JobRun> } {
  const child = spawn(python, ['-m', 'spot_runner.job', '--job', jobUri, '--workdir', workdir], {
    env: { ...env, PYTHONPATH: [path.join(REPO, 'training'), env.PYTHONPATH].filter(Boolean).join(path.delimiter) },
    stdio: verbose ? 'inherit' : ['ignore', 'pipe', 'pipe'],
  });
  const tail: string[] = [];
  let partial = '';
  const keep = (chunk: Buffer): void => {
    const lines = (partial + chunk.toString('utf8')).split(/\r?\n|\r/);
    partial = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) tail.push(line);
    tail.splice(0, Math.max(0, tail.length - TAIL_LINES));
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const done = new Promise<JobRun>((resolve) => {
    // 127: the shell's "command not found", so the summary says the runner could not start.
    child.on('error', () => resolve({ code: 127, tail }));
    child.on('close', (code, signal) => {
      if (partial.trim()) tail.push(partial);
      resolve({ code: code ?? (signal ? 128 + 15 : 1), tail: tail.slice(-TAIL_LINES) });
    });
  });
  return { done };
}

/** examples x epochs x (folds - 1): the work of a built-in config, for the sweep ETA; undefined when unknown. */
function plannedWork(config: ResolvedConfig): number | undefined {
  if (config.script || config.examples === null) return undefined;
  return config.examples * config.train.epochs * (config.train.folds - 1);
}

/** What the config's files say now: the store's status.json (the runner's) and the trainer's OUT/status.json. */
async function readProgress(store: SweepStore, sweep: string, config: string, workdir: string): Promise<ConfigReading> {
  const { status } = await readStatus(store, sweep, config).catch(() => ({ status: undefined }));
  let trainer: Record<string, unknown> = {};
  try {
    trainer = JSON.parse(readFileSync(path.join(workdir, RUNNER_WORKDIR.trainerOut, TRAINER_OUT.status), 'utf8')) as Record<string, unknown>;
  } catch {
    // Not written yet (or mid-rename): the next refresh reads it.
  }
  const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  const pick = (key: string): number | undefined => num(trainer[key]) ?? num((status as Record<string, unknown> | undefined)?.[key]);
  return {
    state: status?.state,
    fold: pick('fold'),
    folds: pick('folds'),
    epoch: pick('epoch'),
    epochs: pick('epochs'),
    progress: pick('progress'),
    examplesPerSecond: pick('examplesPerSecond'),
    retries: status?.retries,
  };
}

/** Refreshes: a terminal's redraw every second; without one, a look every 2 s (the view prints rarely). */
const REFRESH_MS = { tty: 1000, plain: 2000 };

/** Runs one config under the live view: reads its progress while the runner runs, then its final state. */
async function runWithView(
  view: LiveView,
  io: CliIo,
  name: string,
  run: { done: Promise<JobRun> },
  read: () => Promise<ConfigReading>,
): Promise<{ run: JobRun; state: string }> {
  view.start(name);
  view.render();
  let finished = false;
  const result = run.done.then((r) => {
    finished = true;
    return r;
  });
  while (!finished) {
    await Promise.race([result, new Promise((resolve) => setTimeout(resolve, io.isTTY ? REFRESH_MS.tty : REFRESH_MS.plain))]);
    if (finished) break;
    view.observe(name, await read());
    view.render();
  }
  const last = await read();
  const state = last.state ?? 'UNKNOWN';
  view.observe(name, last);
  view.finish(name, state);
  view.render();
  return { run: await result, state };
}

/** The store `local` writes to: a directory, or a bucket on a local S3 server. */
function openLocalStore(o: { store?: string; 's3-endpoint'?: string; bucket?: string }, env: NodeJS.ProcessEnv): SweepStore {
  const endpoint = o['s3-endpoint'];
  if (endpoint === undefined) return fileStore(o.store ?? DEFAULT_LOCAL_STORE);
  const client = new S3Client({
    endpoint,
    forcePathStyle: true,
    region: env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
    ...(env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
      ? { credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, sessionToken: env.AWS_SESSION_TOKEN } }
      : {}),
    // Local S3 servers store streamed uploads with the new default checksums corrupted.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  // The runner reaches the same server through AWS_ENDPOINT_URL.
  return s3Store({ client, bucket: o.bucket as string, env: { AWS_ENDPOINT_URL: endpoint }, explain: explainAwsError });
}

const options = {
  store: { type: 'string', value: 'DIR', help: `local store directory (default: ${DEFAULT_LOCAL_STORE})` },
  's3-endpoint': { type: 'string', value: 'URL', help: 'a local S3 server instead of a directory, e.g. http://127.0.0.1:4569 (with --bucket)' },
  bucket: { type: 'string', value: 'NAME', help: 'the bucket on the --s3-endpoint server' },
  config: { type: 'list', value: 'NAME', help: 'run only this config' },
  python: { type: 'string', value: 'PATH', help: 'a Python with torch and the training requirements (default: $SPOT_SWEEP_PYTHON, then .venv)' },
  verbose: { type: 'boolean', help: "the job runner's and trainer's own lines (per epoch, per checkpoint) on the terminal instead of the live view" },
} as const satisfies OptionTable;

/**
 * `spot-sweep local`: the sweep on this machine, through the same job runner the instances use.
 * Writes each config's job.json to the store, turns a stop request in control.json into a start
 * request (the runner would otherwise obey the stop), runs the configs one after another, then prints
 * the leaderboard.
 */
export const local: Command<typeof options> = {
  name: 'local',
  summary: 'run every config on this machine, then print the leaderboard',
  description: `
Writes each config's job.json to the store (default ${DEFAULT_LOCAL_STORE}, or a bucket on a local S3
server), runs the configs one after another through the job runner the instances use (python -m
spot_runner.job; CPU, or the local GPU/MPS), and prints the leaderboard: nDCG@10 mean ± std over
folds, examples/s, wall time; and writes the sweep's leaderboard.json and report.html into the store,
as the results Lambda does on AWS (spot-sweep results --store reads them). While a config runs, one
live line per config shows its state, fold/epoch, examples/s and ETA (--verbose: the job runner's and
trainer's own lines instead; they are in each config's train.log either way). A config that already succeeded with the same job is not trained again;
a config stopped earlier (a stop request in its control.json) gets a start request first.`,
  positionals: [{ name: 'spec.json', help: 'the sweep spec, e.g. sweeps/demo.json', required: true }],
  options,
  exits: [['ok', 'every config SUCCEEDED (a script-mode config with no score included)'], 'specError', 'usage', 'someFailed', ['aws', 'the --s3-endpoint server could not be used']],
  async run({ positionals, options: o }, io) {
    checkStoreOptions(o);
    const specFile = positionals[0];
    const spec = loadSpec(specFile);
    const python = findPython(o.python, io.env);
    const problems = preflight(spec, specFile, o.config, python, io.env);
    if (problems.length > 0) throw new UsageError(problems.length === 1 ? problems[0] : `${problems.length} problems:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    const store = openLocalStore(o, io.env);
    const configs = spec.configs.filter((c) => o.config.length === 0 || o.config.includes(c.name));
    const started = Date.now();
    io.out(`Sweep "${spec.name}": ${configs.length} config(s) on this machine, store ${store.describe(storeKeys.sweep(spec.name))}\n`);

    const codes = new Map<string, number>();
    const paint = painter(wantsColour(io));
    const view = new LiveView(
      configs.map((c) => ({ name: c.name, work: plannedWork(c) })),
      { out: io.out, tty: io.isTTY === true, paint, columns: terminalColumns(io.env, io.isTTY) },
    );
    for (const [index, config] of configs.entries()) {
      const jobKey = storeKeys.configFile(spec.name, config.name, 'job');
      const job = renderJob(spec, config.name, { store: storePrefix(store.root, spec.name, config.name) });
      await store.write(jobKey, `${JSON.stringify(job, null, 2)}\n`);
      // The runner obeys control.json at start: a stop left from an earlier `spot-sweep stop` (or the
      // budget guard) would end this run STOPPED at once. Running it locally is asking for a start.
      const { control } = await readControl(store, spec.name, config.name);
      if (control?.action === ACTION.stop) {
        await requestControl(store, spec.name, config.name, { action: ACTION.start, by: REQUESTERS.local, reason: 'run with spot-sweep local' });
        view.release();
        io.out(`${config.name}: control.json held a stop request (by ${control.by} at ${control.at}); wrote a start request so the job runs.\n`);
      }
      const workdir = path.resolve('.spot-sweep', 'work', spec.name, config.name);
      const run = runJob(python, `${store.root}/${jobKey}`, workdir, { ...io.env, ...store.env }, o.verbose);
      if (o.verbose) {
        io.out(`\n== [${index + 1}/${configs.length}] ${config.name}: ${config.examples === null ? 'all' : config.examples.toLocaleString('en-US')} examples, ${config.script ? `script ${config.script.entrypoint}` : `${config.train.folds} folds x ${config.train.epochs} epoch(s)`}\n`);
        codes.set(config.name, (await run.done).code);
        continue;
      }
      const { run: ran, state } = await runWithView(view, io, config.name, run, () => readProgress(store, spec.name, config.name, workdir));
      codes.set(config.name, ran.code);
      if (ran.code !== EXIT_CODES.runner.ok || state !== SUCCEEDED) {
        // What went wrong, below the view (which goes on under it): the runner's last lines.
        view.release();
        io.out(`${config.name} ended ${state} (exit ${ran.code}); the job runner's last lines (all of them: ${store.describe(storeKeys.configFile(spec.name, config.name, 'log'))}):\n`);
        io.out(ran.tail.map((line) => `  | ${line}\n`).join(''));
      }
    }
    if (!o.verbose) view.render(true);

    // One read of the configs' files for the table and the report.
    const artifacts = await readArtifacts(store, spec.name, configs.map((c) => c.name));
    const board = buildLeaderboard(artifacts);
    io.out(`\nLeaderboard of "${spec.name}" (wall time ${((Date.now() - started) / 1000).toFixed(0)} s):\n`);
    io.out(formatLeaderboard(board, { paintState: (state, cell) => paintState(paint, state, cell) }));
    io.out(`Results: ${store.describe(storeKeys.configFile(spec.name, '<config>', 'results'))}\n`);
    io.out(formatModels(board, (key) => store.describe(key)));
    // The same leaderboard.json and report.html the results Lambda writes on AWS, into the local store.
    const { leaderboardKey, reportKey } = await rebuildSweepFiles(store, spec.name, artifacts, { baseline: spec.baseline });
    io.out(`Leaderboard: ${store.describe(leaderboardKey)}\nReport: ${store.describe(reportKey)}\n`);
    // Success is the state the runner wrote, not a score: a script config that SUCCEEDED has none.
    const failed = configs.filter((c) => {
      const row = board.rows.find((r) => r.config === c.name);
      return codes.get(c.name) !== EXIT_CODES.runner.ok || row?.state !== SUCCEEDED || row.problem !== undefined;
    });
    if (failed.length > 0) {
      const why = failed.map((c) => `${c.name} (exit ${codes.get(c.name)}, ${board.rows.find((r) => r.config === c.name)?.state ?? 'UNKNOWN'})`);
      io.err(`spot-sweep local: ${failed.length} of ${configs.length} config(s) did not succeed: ${why.join(', ')}. Their status.json and train.log say why.\n`);
      return EXIT_CODES.cli.someFailed;
    }
    return EXIT_CODES.cli.ok;
  },
};
