import { estimateSweep } from '../cost/estimate';
import { SpecError } from '../spec/errors';
import { loadSpec } from '../spec/load';
import { LOCAL_EXIT, LOCAL_USAGE, LocalUsageError, parseLocalArgs, runLocal } from './local';
import { formatPlan } from './plan';
import { lookupSpotPrices } from './spot-prices';

/** Exit codes; documented in the help text. */
export const EXIT = { ok: 0, specError: 1, usage: 2, overBudget: 3, ...LOCAL_EXIT } as const;

export const HELP = `spot-sweep - run PyTorch two-tower retrieval sweeps on spot GPUs

Usage:
  spot-sweep plan <spec.json> [--offline]   validate the sweep spec and estimate runtime and cost
  ${LOCAL_USAGE}
                                            run every config on this machine, then print the leaderboard
  spot-sweep --help                         show this help

plan:
  Checks the whole spec and lists every problem at once (JSON path, value, fix).
  Prints, per config, the instance types, GPU model and count, market, estimated runtime and cost
  on spot and on-demand, and the sweep total against budgetUsd.
  With AWS credentials configured it asks EC2 for current spot prices (5 s timeout);
  otherwise, or with --offline, it uses the built-in price table and says so.

local:
  Writes each config's job.json to the store (default .spot-sweep/store, or a local S3 server),
  runs the configs one after another through the same job runner the instances use (CPU, or the
  local GPU/MPS), and prints the leaderboard: nDCG@10 mean ± std over folds, examples/s, wall time.
  A config that already succeeded with the same store is not trained again.
  --config NAME runs only that config (repeatable); --python PATH picks the Python (default: .venv).

Exit codes:
  0  plan printed, within budget
  1  the spec has problems (all are listed)
  2  wrong command line
  3  the estimate exceeds budgetUsd
  4  local: a config did not succeed (its status.json and train.log say why)

Spec reference: sweeps/README.md
`;

/** Where the CLI writes; tests pass their own. */
export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
}

const processIo: CliIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  env: process.env,
};

/** Runs the CLI and returns the exit code; user errors print a message, never a stack trace. */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    io.out(HELP);
    return command === undefined ? EXIT.usage : EXIT.ok;
  }
  if (command === 'local') return local(rest, io);
  if (command !== 'plan') {
    io.err(`spot-sweep: unknown command "${command}"; the commands are: plan, local. Run spot-sweep --help.\n`);
    return EXIT.usage;
  }
  const flags = rest.filter((a) => a.startsWith('-'));
  const files = rest.filter((a) => !a.startsWith('-'));
  const unknownFlag = flags.find((f) => f !== '--offline' && f !== '--help' && f !== '-h');
  if (flags.includes('--help') || flags.includes('-h')) {
    io.out(HELP);
    return EXIT.ok;
  }
  if (unknownFlag !== undefined || files.length !== 1) {
    const why = unknownFlag !== undefined ? `unknown option "${unknownFlag}"` : files.length === 0 ? 'no spec file given' : `one spec file expected, got ${files.length}`;
    io.err(`spot-sweep plan: ${why}. Usage: spot-sweep plan <spec.json> [--offline], e.g. spot-sweep plan sweeps/seed-plan.json\n`);
    return EXIT.usage;
  }
  try {
    const spec = loadSpec(files[0]);
    const types = [...new Set(spec.configs.flatMap((c) => c.instanceTypes))];
    const lookup = flags.includes('--offline')
      ? { prices: new Map<string, number>(), note: 'built-in table (typical spot); --offline given, so no live spot lookup.' }
      : await lookupSpotPrices(types, io.env);
    const estimate = estimateSweep(spec, lookup.prices);
    io.out(formatPlan(spec, estimate, lookup.note));
    return estimate.overBudget ? EXIT.overBudget : EXIT.ok;
  } catch (err) {
    if (err instanceof SpecError) {
      io.err(`${err.message}\n`);
      return EXIT.specError;
    }
    throw err;
  }
}

async function local(args: readonly string[], io: CliIo): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    io.out(HELP);
    return EXIT.ok;
  }
  try {
    return await runLocal(parseLocalArgs(args), io);
  } catch (err) {
    if (err instanceof SpecError) {
      io.err(`${err.message}\n`);
      return EXIT.specError;
    }
    if (err instanceof LocalUsageError) {
      io.err(`spot-sweep local: ${err.message}\nUsage: ${LOCAL_USAGE}\n`);
      return EXIT.usage;
    }
    throw err;
  }
}
