import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXIT_CODES, storeKeys } from '../../contract';
import { buildLeaderboard, formatLeaderboard, formatModels, Leaderboard } from '../../results/leaderboard';
import { downloadSweep } from '../../results/download';
import { readArtifacts } from '../../results/sweep-files';
import { loadSpec } from '../../spec/load';
import { SweepSpec } from '../../spec/types';
import { fileStore, SweepStore } from '../../store';
import { Command, OptionTable, UsageError } from '../args';
import { AwsSession, openStore } from '../aws';
import { CliIo, paintState, painter, wantsColour } from '../io';

/** Where `spot-sweep local` keeps its store when neither --store nor --s3-endpoint is given. */
export const DEFAULT_LOCAL_STORE = path.join('.spot-sweep', 'store');

/** The configs' results.json, status.json and control.json, merged into the leaderboard. */
export async function readLeaderboard(store: SweepStore, sweep: string, configs: readonly string[]): Promise<Leaderboard> {
  return buildLeaderboard(await readArtifacts(store, sweep, configs));
}

/** `results --json`: the leaderboard rows (best first) and the problems with the files. */
export interface ResultsJsonOutput {
  readonly sweep: string;
  /** Where the files were read, e.g. `s3://bucket/sweeps/demo/`. */
  readonly store: string;
  readonly rows: Leaderboard['rows'];
  readonly problems: Leaderboard['problems'];
}

const options = {
  store: { type: 'string', value: 'DIR', help: 'read a local store (spot-sweep local --store; default of local: .spot-sweep/store) instead of the bucket; no AWS' },
  open: { type: 'boolean', help: "copy the sweep's report.html from the bucket to --report-file and print its path" },
  'report-file': { type: 'string', value: 'FILE.html', help: 'where --open writes the report, by default ./<sweep>-report.html; implies --open' },
  json: { type: 'boolean', help: 'print the leaderboard rows and problems as one JSON document and nothing else' },
  download: { type: 'string', value: 'DIR', help: "copy each config's results, logs, job/status files, history and model/, and the sweep's leaderboard and report, into DIR (the store's layout)" },
  checkpoints: { type: 'boolean', help: 'with --download: the checkpoints too (left out by default: they only serve a resume)' },
} as const satisfies OptionTable;

/**
 * `spot-sweep results`: the leaderboard from the bucket (the same table as `local`); with `--open`,
 * also copies the collector's report.html to a local file. Needs only the foundation's bucket, so it
 * works after `cdk destroy` of the sweep.
 */
export const results: Command<typeof options> = {
  name: 'results',
  summary: "the leaderboard from each config's results.json (works after cdk destroy)",
  description: `
The leaderboard from each config's results.json, status.json and control.json in the bucket: nDCG@10
mean ± std over folds (best first), examples/s and wall time; script-mode configs (no metric
declared) after the scored ones; failed and unfinished configs with the reason. Works after cdk
destroy of the sweep. --open copies the sweep's report.html to a local file and prints its path.
--download DIR copies the sweep's outputs into DIR/<config>/ (results.json, train.log, status.json,
job.json, model/, the script's results/, history/) and DIR/{leaderboard.json,report.html}; each
DIR/<config>/ is replaced whole by what the store holds now.
--store DIR reads a local store instead (what spot-sweep local wrote), with no AWS at all.`,
  positionals: [{ name: 'spec.json', help: 'the sweep spec the sweep was deployed from', required: true }],
  options,
  aws: true,
  exits: ['ok', 'specError', 'usage', 'aws', 'noReport'],
  async run({ positionals, options: o }, io) {
    const spec = loadSpec(positionals[0]);
    if (o.store !== undefined) {
      if (!existsSync(o.store)) throw new UsageError(`--store ${o.store}: no such directory. spot-sweep local writes its store to ${DEFAULT_LOCAL_STORE} (or the --store it was given).`);
      return show(spec, fileStore(o.store), o, io);
    }
    const session = await AwsSession.open(o, io.env);
    try {
      const { store } = await openStore(session, o);
      return await show(spec, store, o, io);
    } finally {
      session.close();
    }
  },
};

/** Prints the leaderboard of `store` (a bucket, or a local store), and with --open copies its report.html. */
async function show(
  spec: SweepSpec,
  store: SweepStore,
  o: { open: boolean; 'report-file'?: string; json: boolean; download?: string; checkpoints: boolean },
  io: CliIo,
): Promise<number> {
  const board = await readLeaderboard(store, spec.name, spec.configs.map((c) => c.name));
  const where = store.describe(storeKeys.sweep(spec.name));
  if (o.json) {
    const doc: ResultsJsonOutput = { sweep: spec.name, store: where, rows: board.rows, problems: board.problems };
    io.out(`${JSON.stringify(doc, null, 2)}\n`);
  } else {
    const paint = painter(wantsColour(io));
    io.out(`Leaderboard of "${spec.name}" (${where}):\n${formatLeaderboard(board, { paintState: (state, cell) => paintState(paint, state, cell) })}`);
    io.out(formatModels(board, (key) => store.describe(key)));
  }
  if (o.download !== undefined) await download(spec, store, o.download, o.checkpoints, o.json ? io.err : io.out);
  if (!o.open && o['report-file'] === undefined) return EXIT_CODES.cli.ok;
  const reportKey = storeKeys.sweepFile(spec.name, 'report');
  const html = await store.read(reportKey);
  if (html === undefined) {
    io.err(`spot-sweep results: ${store.describe(reportKey)} does not exist yet; the results collector (spot-sweep local, on this machine) writes it when a config's results.json arrives.\n`);
    return EXIT_CODES.cli.noReport;
  }
  const file = path.resolve(o['report-file'] ?? `${spec.name}-report.html`);
  writeFileSync(file, html);
  // With --json, stdout holds the document alone: the path goes to stderr.
  (o.json ? io.err : io.out)(`Report: ${file}\n`);
  return EXIT_CODES.cli.ok;
}

/** `--download DIR`: the sweep's outputs into DIR, then one line per config saying what came. */
async function download(spec: SweepSpec, store: SweepStore, dir: string, checkpoints: boolean, say: (text: string) => void): Promise<void> {
  // Each config's folder in DIR is replaced whole: DIR inside a local store would replace the store's own files.
  if (store.root.startsWith('file://')) {
    const root = fileURLToPath(store.root);
    const rel = path.relative(root, path.resolve(dir));
    if (!rel.startsWith('..') && !path.isAbsolute(rel)) {
      throw new UsageError(`--download ${dir} is inside the store ${root}; download into a folder outside it (the store already holds these files).`);
    }
  }
  const configs = spec.configs.map((c) => c.name);
  const got = await downloadSweep(store, spec.name, configs, dir, { checkpoints });
  const width = Math.max(...configs.map((c) => c.length));
  const lines = got.configs.map(
    (c) => `  ${c.config.padEnd(width)}  ${c.files === 0 ? 'nothing in the store yet' : `${c.files} file(s)${c.model ? ', with its model (model/)' : ', no model'}`}`,
  );
  say(`Downloaded ${got.files.length} file(s), ${formatBytes(got.bytes)}, to ${got.dir}:\n${lines.join('\n')}\n`);
  if (got.vanished.length > 0) {
    say(`Skipped: ${got.vanished.length} key(s) gone between the listing and the copy (the sweep is still writing): ${got.vanished.slice(0, 5).join(', ')}${got.vanished.length > 5 ? ', ...' : ''}. Run the download again once it has finished.\n`);
  }
  if (got.refused.length > 0) {
    say(`Not downloaded: ${got.refused.length} key(s) whose path would leave ${got.dir} (a '..' or empty segment): ${got.refused.slice(0, 5).join(', ')}${got.refused.length > 5 ? ', ...' : ''}. Remove them from the store.\n`);
  }
}

function formatBytes(n: number): string {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}
