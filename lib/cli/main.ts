import { estimateSweep } from '../cost/estimate';
import { SpecError } from '../spec/errors';
import { loadSpec } from '../spec/load';
import { AWS_EXIT, AwsSetupError, UsageError } from './aws';
import { LOCAL_EXIT, LOCAL_USAGE, LocalUsageError, parseLocalArgs, runLocal } from './local';
import { LOGS_USAGE, runLogs } from './logs';
import { formatPlan } from './plan';
import { RESULTS_EXIT, RESULTS_USAGE, runResults } from './results';
import { lookupSpotPrices } from './spot-prices';
import { runStatus, STATUS_USAGE } from './status';
import { runStop, STOP_USAGE } from './stop';

/** Exit codes; documented in the help text. */
export const EXIT = { ok: 0, specError: 1, usage: 2, overBudget: 3, ...LOCAL_EXIT, ...AWS_EXIT, ...RESULTS_EXIT } as const;

export const HELP = `spot-sweep - run PyTorch two-tower retrieval sweeps on spot GPUs

Usage:
  spot-sweep plan <spec.json> [--offline]   validate the sweep spec and estimate runtime and cost
  ${LOCAL_USAGE}
                                            run every config on this machine, then print the leaderboard
  ${STATUS_USAGE}
  ${LOGS_USAGE}
  ${RESULTS_USAGE}
  ${STOP_USAGE}
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

status, logs, results, stop (a deployed sweep; AWS credentials and region as for the AWS CLI):
  The bucket comes from the SpotSweep-Foundation stack's ArtifactBucketName output (or --bucket NAME);
  the region from --region, AWS_REGION, AWS_DEFAULT_REGION or your profile; AWS_ENDPOINT_URL is honoured.
  status   per config: state, instance type and market, progress, fold/epoch, examples/s, ETA, attempts,
           interruptions, spend; the sweep's spend against budgetUsd. --watch refreshes every SECONDS
           (default 30) until every config has finished; Ctrl-C ends it.
  logs     the config's train.log from the bucket; --follow prints what is added (polled every
           --interval SECONDS, default 10) until the config has finished.
  results  the leaderboard from each config's results.json (works after cdk destroy); --open copies the
           sweep's report.html to FILE (default ./<sweep>-report.html) and prints its path.
  stop     asks each running job to checkpoint (SIGTERM through SSM Run Command), waits for it up to
           --wait SECONDS (default 150), scales the config's Auto Scaling group to 0 and marks it STOPPED.

Exit codes:
  0  plan printed, within budget; or the command did what it says
  1  the spec has problems (all are listed)
  2  wrong command line (an unknown config included)
  3  the estimate exceeds budgetUsd
  4  local: a config did not succeed (its status.json and train.log say why)
  5  AWS: no credentials, no region, a stack not deployed, access denied, or stop left a group running
  6  results --open: the sweep has no report.html yet

Spec reference: sweeps/README.md
`;

/** Where the CLI writes; tests pass their own. */
export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
  /** Whether stdout is a terminal (`status --watch` clears the screen). @default false */
  readonly isTTY?: boolean;
  /** Ends `status --watch` and `logs --follow`. @default - aborted by Ctrl-C (SIGINT) */
  readonly signal?: AbortSignal;
}

const processIo: CliIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  env: process.env,
  isTTY: process.stdout.isTTY === true,
};

/** Runs the CLI and returns the exit code; user errors print a message, never a stack trace. */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    io.out(HELP);
    return command === undefined ? EXIT.usage : EXIT.ok;
  }
  if (command === 'local') return local(rest, io);
  if (command in AWS_COMMANDS) return awsCommand(command as keyof typeof AWS_COMMANDS, rest, io);
  if (command !== 'plan') {
    io.err(`spot-sweep: unknown command "${command}"; the commands are: plan, local, status, logs, results, stop. Run spot-sweep --help.\n`);
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

const AWS_COMMANDS = {
  status: { run: runStatus, usage: STATUS_USAGE },
  logs: { run: runLogs, usage: LOGS_USAGE },
  results: { run: runResults, usage: RESULTS_USAGE },
  stop: { run: runStop, usage: STOP_USAGE },
} as const;

/** status, logs, results, stop: user errors become one sentence and an exit code, never a stack trace. */
async function awsCommand(command: keyof typeof AWS_COMMANDS, args: readonly string[], io: CliIo): Promise<number> {
  const { run, usage } = AWS_COMMANDS[command];
  if (args.includes('--help') || args.includes('-h')) {
    io.out(HELP);
    return EXIT.ok;
  }
  // Ctrl-C ends --watch / --follow cleanly (exit 0) instead of killing the process mid-output.
  const interrupt = new AbortController();
  const onSigint = (): void => interrupt.abort();
  if (io.signal === undefined) process.once('SIGINT', onSigint);
  try {
    return await run(args, { ...io, signal: io.signal ?? interrupt.signal });
  } catch (err) {
    if (err instanceof SpecError) {
      io.err(`${err.message}\n`);
      return EXIT.specError;
    }
    if (err instanceof UsageError) {
      io.err(`spot-sweep ${command}: ${err.message}\nUsage: ${usage}\n`);
      return EXIT.usage;
    }
    if (err instanceof AwsSetupError) {
      io.err(`spot-sweep ${command}: ${err.message}\n`);
      return EXIT.aws;
    }
    throw err;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}
