import { EXIT_CODES } from '../contract';
import { SpecError } from '../spec/errors';
import { closest } from '../spec/validate';
import { version } from '../../package.json';
import { cliExitMeaning, Command, OptionTable, parseCommandLine, renderHelp, usageLine, UsageError } from './args';
import { AwsSetupError } from './aws';
import { canary } from './commands/canary';
import { dataImport, dataPush } from './commands/data';
import { local } from './commands/local';
import { doctor } from './commands/doctor';
import { logs } from './commands/logs';
import { plan } from './commands/plan';
import { results } from './commands/results';
import { start } from './commands/start';
import { status } from './commands/status';
import { stop } from './commands/stop';
import { CliIo } from './io';

export type { CliIo } from './io';

/** The CLI's exit codes (names.json exitCodes.cli); every verb's --help lists the ones it returns. */
export const EXIT = EXIT_CODES.cli;

/** Every verb, in the order `spot-sweep --help` lists them. */
export const COMMANDS: readonly Command[] = [plan, doctor, canary, local, status, logs, results, stop, start, dataImport, dataPush].map((c) => c as unknown as Command<OptionTable>);

/** `spot-sweep --help`: the verbs, one line each, and where to read more. */
export function globalHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const codes = Object.entries(EXIT).map(([key, code]) => `  ${String(code).padStart(2)}  ${cliExitMeaning(key as keyof typeof EXIT)}`);
  return [
    'spot-sweep - run PyTorch two-tower retrieval sweeps on spot GPUs',
    '',
    'Usage: spot-sweep <command> [arguments] [options]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run spot-sweep <command> --help for its arguments, options and exit codes.',
    'spot-sweep --version prints the version.',
    '',
    'Exit codes:',
    ...codes,
    '',
    'Spec reference: sweeps/README.md',
    '',
  ].join('\n');
}

const processIo: CliIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  env: process.env,
  isTTY: process.stdout.isTTY === true,
};

/** Runs the CLI and returns the exit code; user errors print one sentence, never a stack trace. */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const [verb, ...rest] = argv;
  if (verb === undefined) {
    io.err(globalHelp());
    return EXIT.usage;
  }
  if (verb === '--help' || verb === '-h' || verb === 'help') {
    // `spot-sweep help status` is `spot-sweep status --help`.
    const about = verb === 'help' && rest[0] !== undefined ? COMMANDS.find((c) => c.name === rest.slice(0, 2).join(' ')) ?? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    io.out(about ? renderHelp(about) : globalHelp());
    return EXIT.ok;
  }
  if (verb === '--version' || verb === '-V') {
    io.out(`spot-sweep ${version}\n`);
    return EXIT.ok;
  }
  // Two-word verbs (`data import`, `data push`): the first word names the group, the second the verb.
  const group = COMMANDS.filter((c) => c.name.startsWith(`${verb} `));
  if (group.length > 0) {
    const sub = group.find((c) => c.name === `${verb} ${rest[0]}`);
    if (sub) return runCommand(sub, rest.slice(1), io);
    io.err(`spot-sweep ${verb}: give one of: ${group.map((c) => c.name).join(', ')}; run spot-sweep ${group[0].name} --help.\n`);
    return EXIT.usage;
  }
  const command = COMMANDS.find((c) => c.name === verb);
  if (command === undefined) {
    const names = COMMANDS.map((c) => c.name);
    const near = closest(verb, names);
    const what = verb.startsWith('-') ? `unknown option "${verb}"` : `unknown command "${verb}"`;
    const list = `${near ? 'The' : 'the'} commands are ${names.join(', ')}; run spot-sweep --help.`;
    io.err(`spot-sweep: ${what}; ${near ? `did you mean "${near}"? ` : ''}${list}\n`);
    return EXIT.usage;
  }
  return runCommand(command, rest, io);
}

async function runCommand(command: Command, args: readonly string[], io: CliIo): Promise<number> {
  const usage = (message: string): number => {
    io.err(`spot-sweep ${command.name}: ${message}\nUsage: ${usageLine(command)}\n`);
    return EXIT.usage;
  };
  let parsed;
  try {
    parsed = parseCommandLine(command, args);
  } catch (err) {
    if (err instanceof UsageError) return usage(err.message);
    throw err;
  }
  if (parsed.help) {
    io.out(renderHelp(command));
    return EXIT.ok;
  }
  // Ctrl-C ends --watch, --follow and stop's wait cleanly instead of killing the process mid-output. A second
  // one must not kill it either while it cleans up (canary destroys the stack it deployed, with a GPU instance
  // in it): it says so, and only a third press quits at once.
  const interrupt = new AbortController();
  let presses = 0;
  const onSigint = (): void => {
    presses += 1;
    if (presses === 1) interrupt.abort();
    else if (presses === 2) io.err(`spot-sweep ${command.name}: still finishing what Ctrl-C asked (for canary: destroying what it deployed); press Ctrl-C once more to quit at once, leaving it behind.\n`);
    else process.exit(130);
  };
  if (io.signal === undefined) process.on('SIGINT', onSigint);
  try {
    return await command.run(parsed, { ...io, signal: io.signal ?? interrupt.signal });
  } catch (err) {
    if (err instanceof SpecError) {
      io.err(`${err.message}\n`);
      return EXIT.specError;
    }
    if (err instanceof UsageError) return usage(err.message);
    if (err instanceof AwsSetupError) {
      io.err(`spot-sweep ${command.name}: ${err.message}\n`);
      return EXIT.aws;
    }
    throw err;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}
