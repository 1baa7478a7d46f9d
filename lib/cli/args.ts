import { parseArgs } from 'node:util';
import { EXIT_CODE_MEANINGS, EXIT_CODES } from '../contract';
import { loadSpec } from '../spec/load';
import { SweepSpec } from '../spec/types';
import { closest } from '../spec/validate';
import type { CliIo } from './io';

/**
 * The one command-line parser of every verb: Node's util.parseArgs over a table each verb declares
 * (type, help, default). The same table renders the verb's `--help` and usage line, so the help can
 * not drift from what is accepted.
 * @see https://nodejs.org/api/util.html#utilparseargsconfig
 */

/** A wrong command line; the CLI prints it with the verb's usage line and exits EXIT_CODES.cli.usage. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

interface OptionBase {
  /** One line for `--help`. */
  readonly help: string;
  /** A one-letter alias, e.g. `h` for `-h`. @default - none */
  readonly short?: string;
}
/** `--flag`: true when given. */
export interface BooleanOption extends OptionBase {
  readonly type: 'boolean';
}
/** `--flag VALUE` (or `--flag=VALUE`). */
export interface StringOption extends OptionBase {
  readonly type: 'string';
  /** The value's placeholder in the help. @default 'VALUE' */
  readonly value?: string;
  /** @default - undefined (not given) */
  readonly default?: string;
}
/** `--flag VALUE`, repeatable: every value, in order. */
export interface ListOption extends OptionBase {
  readonly type: 'list';
  /** @default 'VALUE' */
  readonly value?: string;
}
/** `--flag SECONDS`: a number of seconds, at least `min`. */
export interface SecondsOption extends OptionBase {
  readonly type: 'seconds';
  readonly default: number;
  /** @default 0 */
  readonly min?: number;
}
export type OptionSpec = BooleanOption | StringOption | ListOption | SecondsOption;
/** A verb's options by flag name (`'s3-endpoint'` is `--s3-endpoint`). */
export type OptionTable = Readonly<Record<string, OptionSpec>>;

/** The parsed value of each option of a table. */
export type OptionValues<O extends OptionTable> = {
  readonly [K in keyof O]: O[K] extends BooleanOption
    ? boolean
    : O[K] extends ListOption
      ? readonly string[]
      : O[K] extends SecondsOption
        ? number
        : O[K] extends { readonly default: string }
          ? string
          : string | undefined;
};

export interface PositionalSpec {
  /** As shown in the help, e.g. `spec.json`. */
  readonly name: string;
  readonly help: string;
  /** @default false */
  readonly required?: boolean;
}

export type CliExit = keyof typeof EXIT_CODES.cli;

/** One verb: what it takes, what it says about itself, what it returns, and how it runs. */
export interface Command<O extends OptionTable = OptionTable> {
  readonly name: string;
  /** One line for the verb list of `spot-sweep --help`. */
  readonly summary: string;
  /** Paragraphs for `spot-sweep <verb> --help`. */
  readonly description: string;
  readonly positionals: readonly PositionalSpec[];
  /** The verb's own options; `--help` (and `--region`/`--bucket` with `aws`) are added. */
  readonly options: O;
  /** The verb reads a deployed sweep: it takes `--region` and `--bucket`. @default false */
  readonly aws?: boolean;
  /** The exit codes it returns, each with its meaning for this verb. @default - EXIT_CODE_MEANINGS */
  readonly exits: readonly (CliExit | readonly [CliExit, string])[];
  run(args: ParsedArgs<O>, io: CliIo): Promise<number>;
}

export interface ParsedArgs<O extends OptionTable> {
  readonly positionals: readonly string[];
  readonly options: OptionValues<O> & OptionValues<typeof AWS_OPTIONS>;
  /** `--help` was given: print the verb's help and do nothing else. */
  readonly help: boolean;
}

/** Every AWS verb's options: where the deployed sweep is. */
export const AWS_OPTIONS = {
  region: { type: 'string', value: 'REGION', help: 'AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, then your profile)' },
  bucket: { type: 'string', value: 'NAME', help: `the artifact bucket (default: the foundation stack's ArtifactBucketName output)` },
} as const satisfies OptionTable;

const HELP_OPTION = { help: { type: 'boolean', short: 'h', help: 'show this help' } } as const satisfies OptionTable;

/** Every option a verb accepts, in help order: its own, then the AWS ones, then --help. */
export function allOptions(command: Command): OptionTable {
  return { ...command.options, ...(command.aws ? AWS_OPTIONS : {}), ...HELP_OPTION };
}

const flag = (name: string, spec: OptionSpec): string => (spec.short ? `-${spec.short}, --${name}` : `--${name}`);
const placeholder = (spec: OptionSpec): string =>
  spec.type === 'boolean' ? '' : spec.type === 'seconds' ? ' SECONDS' : ` ${spec.value ?? 'VALUE'}`;

/** `spot-sweep stop <spec.json> [config] [--wait SECONDS] ...` */
export function usageLine(command: Command): string {
  const options = Object.entries(allOptions(command)).filter(([name]) => name !== 'help');
  const parts = [
    `spot-sweep ${command.name}`,
    ...command.positionals.map((p) => (p.required ? `<${p.name}>` : `[${p.name}]`)),
    ...options.map(([name, spec]) => `[--${name}${placeholder(spec)}]${spec.type === 'list' ? '...' : ''}`),
  ];
  return parts.join(' ');
}

function table(rows: readonly (readonly [string, string])[]): string[] {
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}`.trimEnd());
}

/** What an exit code means for the CLI: names.json's meaning, but `ok` says nothing of the runner's case. */
export function cliExitMeaning(key: CliExit): string {
  return key === 'ok' ? 'the command did what it says' : EXIT_CODE_MEANINGS[key];
}

/** The exit codes a verb returns, with their meanings, as `code meaning` pairs. */
export function exitRows(command: Command): [string, string][] {
  return command.exits.map((e) => {
    const [key, meaning] = typeof e === 'string' ? [e, cliExitMeaning(e)] : e;
    return [String(EXIT_CODES.cli[key]), meaning];
  });
}

/** `spot-sweep <verb> --help`: usage, arguments, options with defaults, exit codes. */
export function renderHelp(command: Command): string {
  const out = [`Usage: ${usageLine(command)}`, '', command.description.trim(), ''];
  if (command.positionals.length > 0) out.push('Arguments:', ...table(command.positionals.map((p) => [p.name, p.help])), '');
  const options = Object.entries(allOptions(command)).map(([name, spec]): [string, string] => {
    const fallback = spec.type === 'seconds' || (spec.type === 'string' && spec.default !== undefined) ? ` (default: ${spec.default})` : '';
    const repeat = spec.type === 'list' ? ' (repeatable)' : '';
    return [`${flag(name, spec)}${placeholder(spec)}`, `${spec.help}${fallback}${repeat}`];
  });
  out.push('Options:', ...table(options), '', 'Exit codes:', ...table(exitRows(command)), '');
  return out.join('\n');
}

/**
 * Parses a verb's arguments. Unknown options get the closest known one ("did you mean"), a missing
 * value, a value on a flag that takes none, and a bad number of seconds are UsageErrors naming the
 * option; too many or too few positionals too.
 */
export function parseCommandLine<O extends OptionTable>(command: Command<O>, args: readonly string[]): ParsedArgs<O> {
  const table = allOptions(command as unknown as Command);
  const config = Object.fromEntries(
    Object.entries(table).map(([name, spec]) => [
      name,
      { type: spec.type === 'boolean' ? ('boolean' as const) : ('string' as const), ...(spec.type === 'list' ? { multiple: true } : {}), ...(spec.short ? { short: spec.short } : {}) },
    ]),
  );
  // strict: false and tokens, so every mistake is reported here in our own words (with a
  // suggestion) rather than as parseArgs' TypeError.
  const { tokens, positionals } = parseArgs({ args: [...args], options: config, strict: false, allowPositionals: true, tokens: true });
  const known = Object.keys(table);
  const values: Record<string, unknown> = {};
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    const spec = table[token.name];
    if (spec === undefined) {
      const near = closest(token.name, known);
      throw new UsageError(`unknown option "${token.rawName}"${near ? `; did you mean "--${near}"?` : `; the options are ${known.map((k) => `--${k}`).join(', ')}.`}`);
    }
    if (spec.type === 'boolean') {
      if (token.value !== undefined) throw new UsageError(`${token.rawName} takes no value (got "${token.value}").`);
      values[token.name] = true;
      continue;
    }
    // parseArgs takes the next argument as the value even when it is another option (`--wait --json`).
    if (token.value === undefined || token.value === '' || (!token.inlineValue && token.value.startsWith('--'))) {
      throw new UsageError(`${token.rawName} needs a value${placeholder(spec)}.`);
    }
    if (spec.type === 'list') values[token.name] = [...((values[token.name] as string[] | undefined) ?? []), token.value];
    else if (spec.type === 'seconds') values[token.name] = seconds(token.rawName, token.value, spec.min ?? 0);
    else values[token.name] = token.value;
  }
  for (const [name, spec] of Object.entries(table)) {
    if (values[name] !== undefined) continue;
    if (spec.type === 'boolean') values[name] = false;
    else if (spec.type === 'list') values[name] = [];
    else if (spec.type === 'seconds' || spec.default !== undefined) values[name] = spec.default;
  }
  const help = values.help === true;
  if (!help) {
    const required = command.positionals.filter((p) => p.required);
    if (positionals.length < required.length) {
      throw new UsageError(`no ${required[positionals.length].name} given (${required[positionals.length].help}).`);
    }
    if (positionals.length > command.positionals.length) {
      const extra = positionals[command.positionals.length];
      const took = command.positionals.map((p) => p.name).join(' and ');
      throw new UsageError(`unexpected argument "${extra}"; ${command.name} takes ${took || 'no arguments'}.`);
    }
  }
  return { positionals, options: values as ParsedArgs<O>['options'], help };
}

/** A number of seconds from an option's value; a UsageError naming the option otherwise. */
function seconds(option: string, value: string, min: number): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < min) throw new UsageError(`${option} ${value}: give a number of seconds of at least ${min}.`);
  return n;
}

/**
 * A config of the sweep by name; a UsageError with the closest name ("did you mean") and the list
 * otherwise.
 */
export function requireConfig(sweep: string, known: readonly string[], name: string): string {
  if (known.includes(name)) return name;
  const near = closest(name, known);
  const list = `${near ? 'Its' : 'its'} configs are ${known.join(', ')}.`;
  throw new UsageError(`the sweep "${sweep}" has no config "${name}"; ${near ? `did you mean "${near}"? ` : ''}${list}`);
}

/** The arguments of a verb that acts on some configs of a deployed sweep: the spec, then one config or none (all). */
export const SPEC_AND_CONFIG: readonly PositionalSpec[] = [
  { name: 'spec.json', help: 'the sweep spec the sweep was deployed from', required: true },
  { name: 'config', help: 'only this config (default: every config of the sweep)' },
];

/** The spec and the configs a {@link SPEC_AND_CONFIG} verb targets: the named one (checked) or every config. */
export function targetConfigs(positionals: readonly string[]): { spec: SweepSpec; configs: string[] } {
  const spec = loadSpec(positionals[0]);
  const names = spec.configs.map((c) => c.name);
  return { spec, configs: positionals[1] !== undefined ? [requireConfig(spec.name, names, positionals[1])] : names };
}
