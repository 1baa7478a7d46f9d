import { existsSync, statSync } from 'node:fs';
import * as path from 'node:path';
import jobSchema from '../../training/contract/job.schema.json';
import { EXIT_CODES, TRAIN_PROPERTIES } from '../contract';
import { INSTANCES, InstanceInfo, lookupInstance } from '../cost/instances';
import { SpecError, SpecIssue, show } from './errors';
import { pointerTokens } from './json-pointer';
import {
  CONFIG_DEFAULTS,
  CONFIG_KEYS,
  DEFAULTS_KEYS,
  MARKETS,
  LAUNCHERS,
  Launcher,
  METRIC_KEYS,
  Market,
  NEVER_RETRIED,
  RETRY_KEYS,
  RetrySettings,
  PATCH_KEYS,
  Patch,
  ResolvedConfig,
  SCRIPT_DEFAULTS,
  SCRIPT_KEYS,
  SWEEP_KEYS,
  ScriptMetric,
  ScriptSettings,
  SweepSpec,
  TRAIN_DEFAULTS,
  TRAIN_KEYS,
  TrainSettings,
} from './types';

/**
 * SSM's AWS:runShellScript stops a step after `executionTimeout`, at most 172800 s (48 h), so a
 * config can not run longer than that.
 * @see https://docs.aws.amazon.com/systems-manager/latest/userguide/documents-command-ssm-plugin-reference.html#aws-runShellScript
 */
export const MAX_RUNTIME_HOURS = jobSchema.properties.maxRuntimeHours.maximum;

/** Names become stack names (`SpotSweep-<name>`), tags and S3 prefixes (job.schema.json `$defs.name`). */
const NAME_PATTERN = new RegExp(jobSchema.$defs.name.pattern);
const MAX_NAME_LENGTH = jobSchema.$defs.name.maxLength;

/** How to fix each trainer setting; its rule (type, enum, bounds) comes from the schema. */
const TRAIN_FIXES: Readonly<Record<keyof TrainSettings, string>> = {
  folds: 'cross-validation needs at least 2 folds; use e.g. 10',
  epochs: 'use a whole number of epochs, e.g. 3',
  batchSize: 'use a whole number of examples per step, e.g. 1024',
  learningRate: 'use e.g. 0.001',
  weightDecay: 'use e.g. 0.01',
  precision: '"auto" picks bf16, fp16 or fp32 for the GPU',
  gradAccumulation: 'use a whole number of micro-batches per step, e.g. 1',
  seed: 'use a whole number, e.g. 42',
  temperature: 'use e.g. 0.05',
  logQCorrection: 'true turns the logQ correction on',
  evalCandidates: '"labeled" ranks each query\'s judged documents, "corpus" every document',
  hiddenDim: 'use a whole number, e.g. 512',
  checkpointMinutes: 'use minutes, e.g. 10',
  finalModel: 'false skips the final model (no model/ is exported)',
};

/** A metric name's longest (job.schema.json `$defs.metric`): it is a column label. */
const METRIC_NAME_MAX = jobSchema.$defs.metric.properties.name.maxLength;

/** The largest budget a spec may set: a typo like 1e300 must not pass (plan would print $Infinity). */
export const MAX_BUDGET_USD = 1_000_000;

/** Bucket naming rules, loosely: lower-case letters, digits, dots and dashes, 3-63 characters. */
const S3_URI = /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](?:\/.*)?$/;

/** A Hugging Face hub model id (`org/model` or a bare `model`), optionally pinned with `@revision`. */
const HUB_NAME = /^(?:[A-Za-z0-9][\w.-]*\/)?[A-Za-z0-9][\w.-]*(?:@[\w./-]+)?$/;

/** gp3 volumes range 1 GiB - 16 TiB; below 50 GiB the DLAMI root file system does not fit. */
const MIN_VOLUME_GB = 50;
const MAX_VOLUME_GB = 16384;

export interface ValidateOptions {
  /**
   * Path of the spec file: relative local paths (`data`, `script.codeDir`) resolve against its
   * directory, and messages name it.
   * @default - paths resolve against the current directory; messages say "sweep spec"
   */
  readonly specFile?: string;
}

type Json = Record<string, unknown>;

/** Marks a top-level `data` that was given but invalid (already reported once). */
const INVALID_DATA = '\u0000invalid';

/**
 * Checks a parsed spec and returns it resolved (every default applied, local paths absolute).
 * Throws one SpecError listing every problem found, each with its JSON path.
 */
export function validateSpec(raw: unknown, options: ValidateOptions = {}): SweepSpec {
  const { spec, issues } = checkSpec(raw, options);
  if (!spec || issues.length > 0) {
    throw new SpecError(options.specFile ? path.relative(process.cwd(), options.specFile) || options.specFile : 'sweep spec', issues);
  }
  return spec;
}

/** Like validateSpec, but returns the problems instead of throwing. */
export function checkSpec(raw: unknown, options: ValidateOptions = {}): { spec?: SweepSpec; issues: SpecIssue[] } {
  const c = new Checker(options.specFile ? path.dirname(path.resolve(options.specFile)) : process.cwd());
  const spec = c.sweep(raw, options.specFile ? path.resolve(options.specFile) : undefined);
  return { spec: c.issues.length === 0 ? spec : undefined, issues: c.issues };
}

class Checker {
  readonly issues: SpecIssue[] = [];
  private readonly seen = new Set<string>();

  constructor(private readonly baseDir: string) {}

  add(p: string, value: unknown, message: string, hasValue = true): void {
    const key = `${p}\u0000${message}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.issues.push({ path: p, received: hasValue ? show(value) : undefined, message });
  }

  sweep(raw: unknown, specFile: string | undefined): SweepSpec | undefined {
    const top = this.object(raw, '(top level)', SWEEP_KEYS, 'sweep');
    if (!top) return undefined;
    const name = this.name(top, 'name', 'sweep', 'seed-plan');
    this.description(top.description, 'description');
    const budgetUsd = this.number(top.budgetUsd, 'budgetUsd', { gt: 0, le: MAX_BUDGET_USD, required: true, fix: 'set the most the whole sweep may spend in USD, e.g. 100' });
    const data = top.data === undefined ? undefined : this.data(top.data, 'data');
    const defaults = this.defaults(top.defaults);

    const configs: ResolvedConfig[] = [];
    if (top.configs === undefined) {
      this.add('configs', undefined, 'is missing; add a list of configs, e.g. [{"name": "o", "examples": 876000}].', false);
    } else if (!Array.isArray(top.configs) || top.configs.length === 0) {
      this.add('configs', top.configs, 'must be a non-empty list of configs, e.g. [{"name": "o"}].');
    } else {
      const names = new Map<string, number>();
      top.configs.forEach((rawConfig, i) => {
        const config = this.config(rawConfig, `configs[${i}]`, defaults, top.data === undefined ? undefined : data ?? INVALID_DATA);
        const configName = isObject(rawConfig) ? rawConfig.name : undefined;
        if (typeof configName === 'string') {
          const first = names.get(configName);
          if (first !== undefined) {
            this.add(`configs[${i}].name`, configName, `duplicates configs[${first}].name; give every config its own name (it names its S3 prefix and instances).`);
          } else {
            names.set(configName, i);
          }
        }
        if (config) configs.push(config);
      });
    }
    const baseline = this.baseline(top.baseline, configs);
    const maxParallel =
      top.maxParallel === undefined || top.maxParallel === null
        ? null
        : this.integer(top.maxParallel, 'maxParallel', { min: 1, fix: 'set how many configs may hold an instance at once, e.g. 2, or leave maxParallel out to start every config at once' });
    if (this.issues.length > 0 || name === undefined || budgetUsd === undefined || baseline === undefined || maxParallel === undefined) return undefined;
    return {
      name,
      ...(typeof top.description === 'string' ? { description: top.description } : {}),
      budgetUsd,
      baseline,
      maxParallel,
      specFile,
      configs,
    };
  }

  private defaults(raw: unknown): Partial<ResolvedDefaults> {
    if (raw === undefined) return {};
    const d = this.object(raw, 'defaults', DEFAULTS_KEYS, 'defaults');
    if (!d) return {};
    return this.overrides(d, 'defaults');
  }

  /** The keys a config can also take from `defaults`, checked where they are written. */
  private overrides(o: Json, at: string): Partial<ResolvedDefaults> {
    const out: { -readonly [K in keyof ResolvedDefaults]?: ResolvedDefaults[K] } = {};
    if (o.instanceTypes !== undefined) {
      // null marks types that were given but are invalid, so nothing falls back to other types.
      out.instanceTypes = this.instanceTypes(o.instanceTypes, `${at}.instanceTypes`) ?? null;
    }
    if (o.market !== undefined) {
      if (typeof o.market === 'string' && (MARKETS as readonly string[]).includes(o.market)) {
        out.market = o.market as Market;
      } else {
        this.add(`${at}.market`, o.market, `is not a market; use one of ${MARKETS.map((m) => `"${m}"`).join(', ')}.`);
      }
    }
    if (o.maxRuntimeHours !== undefined) {
      const hours = this.number(o.maxRuntimeHours, `${at}.maxRuntimeHours`, { gt: 0, fix: 'set the hours after which the run is stopped, e.g. 12' });
      if (hours !== undefined && hours > MAX_RUNTIME_HOURS) {
        this.add(
          `${at}.maxRuntimeHours`,
          o.maxRuntimeHours,
          `must be at most ${MAX_RUNTIME_HOURS}: SSM runShellScript stops a step after executionTimeout, at most 172800 s (48 h); split the work into smaller configs (fewer examples or epochs).`,
        );
      } else if (hours !== undefined) {
        out.maxRuntimeHours = hours;
      }
    }
    if (o.idleMinutes !== undefined) {
      const minutes = this.integer(o.idleMinutes, `${at}.idleMinutes`, { min: 5, fix: 'use whole minutes, at least 5 (the bootstrap leaves the GPU idle for a few minutes), e.g. 20' });
      if (minutes !== undefined) out.idleMinutes = minutes;
    }
    if (o.volumeGb !== undefined) {
      const gb = this.integer(o.volumeGb, `${at}.volumeGb`, { min: MIN_VOLUME_GB, max: MAX_VOLUME_GB, fix: `use whole GiB between ${MIN_VOLUME_GB} and ${MAX_VOLUME_GB}, e.g. 100` });
      if (gb !== undefined) out.volumeGb = gb;
    }
    if (o.allowV100 !== undefined) {
      if (typeof o.allowV100 === 'boolean') out.allowV100 = o.allowV100;
      else this.add(`${at}.allowV100`, o.allowV100, 'must be true or false (without quotes); true lets the config list V100 (p3) types.');
    }
    if (o.retries !== undefined) {
      out.retries = this.retries(o.retries, `${at}.retries`);
    }
    if (o.train !== undefined) {
      out.train = this.train(o.train, `${at}.train`);
    }
    if (o.encoder !== undefined) {
      const encoder = o.encoder === null ? null : this.encoder(o.encoder, `${at}.encoder`);
      if (encoder !== undefined) out.encoder = encoder;
    }
    return out;
  }

  /** `retries`: max (0-10) and onExitCodes (1-255, never a code that is never retried); bounds from job.schema.json. */
  private retries(raw: unknown, at: string): Partial<RetrySettings> {
    const o = this.object(raw, at, RETRY_KEYS, 'retries');
    if (!o) return {};
    const rule = jobSchema.$defs.retries.properties;
    const out: { -readonly [K in keyof RetrySettings]?: RetrySettings[K] } = {};
    if (o.max !== undefined) {
      const max = this.integer(o.max, `${at}.max`, { min: rule.max.minimum, max: rule.max.maximum, fix: 'use the number of restarts after a failure, e.g. 2 (0: none)' });
      if (max !== undefined) out.max = max;
    }
    if (o.onExitCodes !== undefined) {
      const codes = o.onExitCodes;
      const { minimum: low, maximum: high } = rule.onExitCodes.items;
      if (!Array.isArray(codes) || codes.length > rule.onExitCodes.maxItems) {
        this.add(`${at}.onExitCodes`, codes, `must be a list of at most ${rule.onExitCodes.maxItems} exit codes, e.g. [1, 137]; [] retries any failing exit code.`);
        return out;
      }
      let ok = true;
      codes.forEach((code, i) => {
        if (typeof code !== 'number' || !Number.isInteger(code) || code < low || code > high) {
          this.add(`${at}.onExitCodes[${i}]`, code, `must be a whole number from ${low} to ${high} (an exit code of the trainer or script that fails), e.g. 1.`);
          ok = false;
        } else if (NEVER_RETRIED.includes(code)) {
          this.add(`${at}.onExitCodes[${i}]`, code, `is never retried: exit ${code} means ${NEVER_RETRIED_MEANING[code]}, which a rerun would repeat; remove it.`);
          ok = false;
        } else if (codes.indexOf(code) !== i) {
          this.add(`${at}.onExitCodes[${i}]`, code, `repeats onExitCodes[${codes.indexOf(code)}]; list each code once.`);
          ok = false;
        }
      });
      if (ok) out.onExitCodes = codes as number[];
    }
    return out;
  }

  /**
   * `encoder`: a hub name, an s3:// URI or a local sentence-transformers directory. A value that starts like a
   * path (`./`, `../`, `/`, `~`) or names an existing path relative to the spec file is a local directory, which
   * must exist and hold modules.json (what SentenceTransformer.save writes); anything else must read as a hub name.
   */
  private encoder(raw: unknown, at: string): string | undefined {
    const example = 'e.g. "sentence-transformers/all-MiniLM-L6-v2", "s3://my-bucket/models/minilm/" or "./models/minilm"';
    if (typeof raw !== 'string' || raw.trim() === '') {
      this.add(at, raw, `must be a sentence-transformers model: a hub name, an s3:// URI or a local directory relative to this spec file (${example}), or null for none.`);
      return undefined;
    }
    if (raw.startsWith('s3://')) {
      if (S3_URI.test(raw)) return raw;
      this.add(at, raw, 'is not a valid s3:// URI; use s3://bucket/prefix/ of a directory written by SentenceTransformer.save().');
      return undefined;
    }
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) {
      this.add(at, raw, `uses an unsupported scheme; use a hub name, an s3:// URI or a local directory (${example}).`);
      return undefined;
    }
    const local = path.resolve(this.baseDir, raw);
    const looksLikePath = /^(\.{1,2}([\\/]|$)|[\\/]|~)/.test(raw);
    if (looksLikePath || existsSync(local)) {
      // A directory that is not there yet is accepted, as a local `data` directory is: `local` refuses to
      // start without it and synth warns (spot-sweep:localEncoderMissing), so a spec can be planned first.
      if (!existsSync(local)) return local;
      if (!statSync(local).isDirectory()) {
        this.add(at, raw, `names ${local}, which is a file, not a model directory; point it at a directory written by SentenceTransformer.save() (or python -m two_tower.tiny_encoder).`);
        return undefined;
      }
      if (!existsSync(path.join(local, 'modules.json'))) {
        this.add(at, raw, `names ${local}, which is not a sentence-transformers model (it has no modules.json); point it at a directory written by SentenceTransformer.save().`);
        return undefined;
      }
      return local;
    }
    if (HUB_NAME.test(raw)) return raw;
    this.add(at, raw, `is neither a local directory (there is none at ${local}) nor a hub model name (org/model, optionally @revision); ${example}.`);
    return undefined;
  }

  private config(raw: unknown, at: string, defaults: Partial<ResolvedDefaults>, sweepData: string | undefined): ResolvedConfig | undefined {
    const o = this.object(raw, at, CONFIG_KEYS, 'config');
    if (!o) return undefined;
    const before = this.issues.length;
    const name = this.name(o, `${at}.name`, 'config', 'o');
    this.description(o.description, `${at}.description`);
    const own = this.overrides(o, at);
    const instanceTypes =
      own.instanceTypes !== undefined ? own.instanceTypes : defaults.instanceTypes !== undefined ? defaults.instanceTypes : CONFIG_DEFAULTS.instanceTypes;
    const typesAt = o.instanceTypes !== undefined ? `${at}.instanceTypes` : 'defaults.instanceTypes';
    const train: Partial<TrainSettings> = { ...defaults.train, ...own.train };
    const trainSource = (key: keyof TrainSettings): string =>
      own.train && key in own.train ? `${at}.train.${key}` : `defaults.train.${key}`;

    let examples: number | null = null;
    if (o.examples !== undefined && o.examples !== null) {
      examples = this.integer(o.examples, `${at}.examples`, { min: jobSchema.properties.examples.minimum, fix: 'use a whole number of training examples, e.g. 876000, or null for all' }) ?? null;
    }

    // null: a script config that brings its own data (job.json data null; the runner fetches nothing).
    let data: string | null | undefined;
    if (o.data !== undefined) {
      data = this.data(o.data, `${at}.data`);
    } else if (sweepData === INVALID_DATA) {
      data = undefined;
    } else if (sweepData !== undefined) {
      data = sweepData;
    } else if (o.script !== undefined && o.script !== null) {
      data = null;
    } else {
      this.add(`${at}.data`, undefined, 'no data set: add "data" at the top level (for every config) or in this config, as an s3:// URI or a local directory (only a config with a "script" may go without).', false);
    }

    let gpus: number | undefined;
    if (o.gpus !== undefined) {
      gpus = this.integer(o.gpus, `${at}.gpus`, { min: jobSchema.properties.gpus.minimum, max: jobSchema.properties.gpus.maximum, fix: 'use a whole number of GPUs' });
    }
    const infos = instanceTypes?.map((t) => INSTANCES.get(t)).filter((i): i is InstanceInfo => i !== undefined);
    if (instanceTypes && infos && infos.length === instanceTypes.length) {
      const fewest = infos.reduce((a, b) => (b.gpuCount < a.gpuCount ? b : a));
      if (o.gpus === undefined) {
        gpus = infos[0].gpuCount;
        if (gpus > fewest.gpuCount) {
          this.add(
            typesAt,
            instanceTypes,
            `for config "${name ?? at}" these types have different GPU counts (${infos.map((i) => `${i.instanceType}: ${i.gpuCount}`).join(', ')}) and gpus defaults to the first type's ${gpus}; set ${at}.gpus to at most ${fewest.gpuCount} or list only types with at least ${gpus} GPUs.`,
          );
        }
      } else if (gpus !== undefined && gpus > fewest.gpuCount) {
        const bigger = [...INSTANCES.values()].find((i) => i.gpuModel === fewest.gpuModel && i.gpuCount >= gpus!);
        this.add(
          `${at}.gpus`,
          o.gpus,
          `${fewest.instanceType} has only ${fewest.gpuCount} GPU${fewest.gpuCount === 1 ? '' : 's'}; use at most ${fewest.gpuCount}` +
            (bigger ? ` or list a larger type (${bigger.instanceType} has ${bigger.gpuCount}).` : '.'),
        );
      }
      const allowV100 = own.allowV100 ?? defaults.allowV100 ?? CONFIG_DEFAULTS.allowV100;
      const volta = infos.filter((i) => i.gpuModel === 'V100');
      if (volta.length > 0 && !allowV100) {
        this.add(
          typesAt,
          instanceTypes,
          `config "${name ?? at}" lists ${volta.map((i) => i.instanceType).join(', ')} (V100), which only the Amazon Linux 2 proprietary-driver ` +
            'Deep Learning AMI runs; Amazon Linux 2 patches ended 2026-06-30, and when that AMI\'s SSM parameter stops resolving the whole sweep ' +
            `fails to deploy. List current types instead (g5, g6, g6e, p4d, p5), or set ${at}.allowV100 (or defaults.allowV100) to true to keep them, after checking that its AMI parameter (DLAMI_PARAMETERS.volta in lib/constructs/config-launch-template.ts) still resolves in your region.`,
        );
      }
      if (train.precision === 'bf16') {
        const lacking = infos.filter((i) => !i.bf16);
        if (lacking.length > 0) {
          this.add(
            trainSource('precision'),
            'bf16',
            `config "${name ?? at}" may run on ${lacking.map((i) => `${i.instanceType} (${i.gpuModel})`).join(', ')}, whose GPUs have no bf16; use "auto" (fp16 there) or "fp16", or list only A10G/L4/L40S/A100/H100 types.`,
          );
        }
      }
    }

    let script: ScriptSettings | null = null;
    if (o.script !== undefined && o.script !== null) {
      script = this.script(o.script, `${at}.script`) ?? null;
      if (o.encoder !== undefined && o.encoder !== null) {
        this.add(`${at}.encoder`, o.encoder, 'a script config cannot take an encoder: the encoder feeds the built-in trainer, and your script reads its data itself; remove "encoder" here, or remove "script" to train with the built-in trainer.');
      }
    }
    // defaults.encoder is for the built-in trainer's configs: a script config does not take it.
    const encoder = script !== null || (o.script !== undefined && o.script !== null) ? null : own.encoder !== undefined ? own.encoder : (defaults.encoder ?? null);

    if (this.issues.length > before || name === undefined || data === undefined || gpus === undefined || !instanceTypes) return undefined;
    return {
      name,
      ...(typeof o.description === 'string' ? { description: o.description } : {}),
      instanceTypes,
      market: own.market ?? defaults.market ?? CONFIG_DEFAULTS.market,
      maxRuntimeHours: own.maxRuntimeHours ?? defaults.maxRuntimeHours ?? CONFIG_DEFAULTS.maxRuntimeHours,
      idleMinutes: own.idleMinutes ?? defaults.idleMinutes ?? CONFIG_DEFAULTS.idleMinutes,
      volumeGb: own.volumeGb ?? defaults.volumeGb ?? CONFIG_DEFAULTS.volumeGb,
      allowV100: own.allowV100 ?? defaults.allowV100 ?? CONFIG_DEFAULTS.allowV100,
      retries: { ...CONFIG_DEFAULTS.retries, ...defaults.retries, ...own.retries },
      examples,
      gpus,
      data,
      train: { ...TRAIN_DEFAULTS, ...train },
      script,
      encoder,
    };
  }

  /** The `train` object: types, enums and bounds from training/contract/train-settings.schema.json; the fixes are ours. */
  private train(raw: unknown, at: string): Partial<TrainSettings> {
    const o = this.object(raw, at, TRAIN_KEYS, 'train');
    if (!o) return {};
    const out: Record<string, unknown> = {};
    for (const key of TRAIN_KEYS) {
      const value = o[key];
      if (value === undefined) continue;
      const rule = TRAIN_PROPERTIES[key];
      const fix = TRAIN_FIXES[key];
      let ok: unknown;
      if (rule.type === 'integer') {
        ok = this.integer(value, `${at}.${key}`, { min: rule.minimum ?? 0, max: rule.maximum, fix });
      } else if (rule.type === 'number') {
        ok = this.number(value, `${at}.${key}`, { gt: rule.exclusiveMinimum, ge: rule.minimum, le: rule.maximum, fix });
      } else if (rule.type === 'boolean') {
        if (typeof value === 'boolean') ok = value;
        else this.add(`${at}.${key}`, value, `must be true or false (without quotes); ${fix}.`);
      } else if (rule.enum) {
        if (typeof value === 'string' && rule.enum.includes(value)) ok = value;
        else this.add(`${at}.${key}`, value, `is not one of ${rule.enum.map((v) => `"${String(v)}"`).join(', ')}; ${fix}.`);
      }
      if (ok !== undefined) out[key] = ok;
    }
    return out as Partial<TrainSettings>;
  }

  private script(raw: unknown, at: string): ScriptSettings | undefined {
    const o = this.object(raw, at, SCRIPT_KEYS, 'script');
    if (!o) return undefined;
    const before = this.issues.length;
    let codeDir: string | undefined;
    if (typeof o.codeDir !== 'string' || o.codeDir.trim() === '') {
      this.add(`${at}.codeDir`, o.codeDir, 'must name the directory of your training code, relative to this spec file (e.g. "../models") or an s3:// URI of a .zip.', o.codeDir !== undefined);
    } else if (o.codeDir.startsWith('s3://')) {
      if (S3_URI.test(o.codeDir)) codeDir = o.codeDir;
      else this.add(`${at}.codeDir`, o.codeDir, 'is not a valid s3:// URI; use s3://bucket/path/code.zip.');
    } else {
      codeDir = path.resolve(this.baseDir, o.codeDir);
    }
    if (typeof o.entrypoint !== 'string' || o.entrypoint.trim() === '') {
      this.add(`${at}.entrypoint`, o.entrypoint, 'must name the script to run, relative to codeDir, e.g. "evaluate_tier2_config_o.py".', o.entrypoint !== undefined);
    } else if (escapesRoot(o.entrypoint)) {
      this.add(`${at}.entrypoint`, o.entrypoint, 'must be a path inside codeDir (relative, without ".."), e.g. "train.py".');
    }
    let args: readonly string[] = SCRIPT_DEFAULTS.args;
    if (o.args !== undefined) {
      if (Array.isArray(o.args) && o.args.every((a) => typeof a === 'string')) args = o.args as string[];
      else this.add(`${at}.args`, o.args, 'must be a list of strings, e.g. ["--epochs", "3"].');
    }
    const patches: Patch[] = [];
    if (o.patches !== undefined) {
      if (!Array.isArray(o.patches)) {
        this.add(`${at}.patches`, o.patches, 'must be a list of {"file", "find", "replace"} objects.');
      } else {
        o.patches.forEach((rawPatch, i) => {
          const p = this.object(rawPatch, `${at}.patches[${i}]`, PATCH_KEYS, 'patch');
          if (!p) return;
          if (typeof p.file !== 'string' || p.file === '') {
            this.add(`${at}.patches[${i}].file`, p.file, 'must name the file to patch, relative to codeDir.', p.file !== undefined);
          } else if (escapesRoot(p.file)) {
            this.add(`${at}.patches[${i}].file`, p.file, 'must be a path inside codeDir (relative, without ".."), e.g. "models/train.py".');
          }
          if (typeof p.find !== 'string' || p.find === '') {
            this.add(`${at}.patches[${i}].find`, p.find, 'must be the exact, non-empty text to replace, e.g. "device = \'mps\'".', p.find !== undefined);
          }
          if (typeof p.replace !== 'string') {
            this.add(`${at}.patches[${i}].replace`, p.replace, 'must be the replacement text (a string; "" deletes the found text).', p.replace !== undefined);
          }
          if (typeof p.file === 'string' && typeof p.find === 'string' && typeof p.replace === 'string') {
            patches.push({ file: p.file, find: p.find, replace: p.replace });
          }
        });
      }
    }
    let results = SCRIPT_DEFAULTS.results;
    if (o.results !== undefined) {
      if (typeof o.results === 'string' && o.results !== '' && !escapesRoot(o.results)) results = o.results;
      else this.add(`${at}.results`, o.results, 'must be a glob relative to codeDir, without "..", e.g. "results/*.json".');
    }
    const metric = o.metric === undefined || o.metric === null ? SCRIPT_DEFAULTS.metric : this.metric(o.metric, `${at}.metric`);
    let requirements: string | null = SCRIPT_DEFAULTS.requirements;
    if (o.requirements !== undefined && o.requirements !== null) {
      if (typeof o.requirements === 'string' && o.requirements !== '' && !escapesRoot(o.requirements)) requirements = o.requirements;
      else this.add(`${at}.requirements`, o.requirements, 'must be the path of a pip requirements file inside codeDir (relative, without ".."), e.g. "requirements.txt", or null for none.');
    }
    let launcher = SCRIPT_DEFAULTS.launcher;
    if (o.launcher !== undefined) {
      if (typeof o.launcher === 'string' && (LAUNCHERS as readonly string[]).includes(o.launcher)) launcher = o.launcher as Launcher;
      else
        this.add(
          `${at}.launcher`,
          o.launcher,
          'must be "python" (one process that sees every GPU, e.g. a DataParallel script) or "torchrun" (one process per GPU, for a DistributedDataParallel script).',
        );
    }
    if (this.issues.length > before || codeDir === undefined || metric === undefined) return undefined;
    return { codeDir, entrypoint: o.entrypoint as string, args, patches, results, metric, requirements, launcher };
  }

  /** `script.metric`: where the script's results file holds its score, every default applied. */
  private metric(raw: unknown, at: string): ScriptMetric | undefined {
    const o = this.object(raw, at, METRIC_KEYS, 'metric');
    if (!o) return undefined;
    const before = this.issues.length;
    const pointerRule = 'must be a JSON pointer (RFC 6901) into the results file: "/" then each key, e.g. "/ndcg@10" or "/metrics/mean" (write "~1" for a "/" inside a key, "~0" for "~").';
    const tokens = typeof o.pointer === 'string' ? pointerTokens(o.pointer) : undefined;
    if (tokens === undefined || tokens.length === 0) this.add(`${at}.pointer`, o.pointer, pointerRule, o.pointer !== undefined);
    let name = tokens && tokens.length > 0 ? tokens[tokens.length - 1] : '';
    if (o.name !== undefined) {
      if (typeof o.name === 'string' && o.name.trim() !== '' && o.name.length <= METRIC_NAME_MAX) name = o.name;
      else this.add(`${at}.name`, o.name, `must be the metric's name, 1-${METRIC_NAME_MAX} characters, e.g. "ndcg@10" (configs whose metric names match rank together; "ndcg@10" ranks with the built-in trainer).`);
    } else if (tokens && tokens.length > 0 && (name === '' || name.length > METRIC_NAME_MAX)) {
      this.add(`${at}.name`, undefined, `is needed: the pointer's last key ${JSON.stringify(name)} cannot name the metric (1-${METRIC_NAME_MAX} characters); add "name", e.g. "ndcg@10".`, false);
    }
    let higherIsBetter = true;
    if (o.higherIsBetter !== undefined) {
      if (typeof o.higherIsBetter === 'boolean') higherIsBetter = o.higherIsBetter;
      else this.add(`${at}.higherIsBetter`, o.higherIsBetter, 'must be true (a larger value is better, e.g. nDCG) or false (smaller is better, e.g. a loss), without quotes.');
    }
    let folds: string | null = null;
    if (o.folds !== undefined && o.folds !== null) {
      const foldTokens = typeof o.folds === 'string' ? pointerTokens(o.folds) : undefined;
      if (foldTokens === undefined || foldTokens.length === 0) this.add(`${at}.folds`, o.folds, `${pointerRule.replace('into the results file', 'to the array of per-fold numbers')} Or null for none.`);
      else folds = o.folds as string;
    }
    let file: string | null = null;
    if (o.file !== undefined && o.file !== null) {
      if (typeof o.file === 'string' && o.file !== '' && !escapesRoot(o.file)) file = o.file;
      else this.add(`${at}.file`, o.file, 'must be the results file\'s path inside codeDir (relative, without ".."), e.g. "results/metrics.json"; leave it out to read the single JSON file the results glob collects.');
    }
    if (this.issues.length > before) return undefined;
    return { pointer: o.pointer as string, name, higherIsBetter, folds, file };
  }

  private instanceTypes(raw: unknown, at: string): string[] | undefined {
    if (!Array.isArray(raw) || raw.length === 0) {
      this.add(at, raw, 'must be a non-empty list of GPU instance types, most preferred first, e.g. ["g6.2xlarge", "g5.2xlarge"].');
      return undefined;
    }
    const before = this.issues.length;
    const known = [...INSTANCES.keys()];
    raw.forEach((t, i) => {
      const p = `${at}[${i}]`;
      if (typeof t !== 'string') {
        this.add(p, t, 'must be an instance type name, e.g. "g5.xlarge".');
        return;
      }
      if (raw.indexOf(t) !== i) {
        this.add(p, t, `is listed twice; remove the repeat.`);
        return;
      }
      const found = lookupInstance(t);
      if (found.kind === 'gpu') return;
      if (found.kind === 'not-gpu') {
        this.add(p, t, 'is not a GPU instance type; use a GPU type such as g5.xlarge (A10G), g6.xlarge (L4), g6e.xlarge (L40S) or p4d.24xlarge (A100).');
      } else if (found.kind === 'unknown-size') {
        const near = closest(t, found.sizes, Infinity);
        this.add(p, t, `is not a size of this family; did you mean "${near}"? Known: ${found.sizes.join(', ')}.`);
      } else if (found.kind === 'unpriced-accelerated') {
        this.add(p, t, 'is not in the instance table (lib/cost/instances.ts), so it can not be costed or checked; use a listed type or add a row with its GPU facts and prices.');
      } else {
        const near = closest(t, known);
        this.add(p, t, `is not an EC2 instance type name (family.size, e.g. "g5.2xlarge")${near ? `; did you mean "${near}"?` : '.'}`);
      }
    });
    return this.issues.length > before ? undefined : (raw as string[]);
  }

  private data(raw: unknown, at: string): string | undefined {
    if (typeof raw !== 'string' || raw.trim() === '') {
      this.add(at, raw, 'must be an s3:// URI (e.g. "s3://my-bucket/datasets/o/") or a local directory relative to this spec file.');
      return undefined;
    }
    if (raw.startsWith('s3://')) {
      if (S3_URI.test(raw)) return raw;
      this.add(at, raw, 'is not a valid s3:// URI; use s3://bucket/prefix/ (bucket names are lower-case letters, digits, dots and dashes).');
      return undefined;
    }
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) {
      this.add(at, raw, 'uses an unsupported scheme; use an s3:// URI or a local directory path.');
      return undefined;
    }
    return path.resolve(this.baseDir, raw);
  }

  /** `baseline` names one of the configs; absent, the first config is the baseline. */
  private baseline(raw: unknown, configs: readonly ResolvedConfig[]): string | undefined {
    const names = configs.map((c) => c.name);
    if (raw === undefined) return names[0];
    if (typeof raw === 'string' && names.includes(raw)) return raw;
    const near = typeof raw === 'string' ? closest(raw, names) : undefined;
    this.add(
      'baseline',
      raw,
      `must name one of the configs, the one the report compares every other config with${near ? `; did you mean "${near}"?` : ''} Configs: ${names.map((n) => `"${n}"`).join(', ') || '(none valid)'}; or leave it out to compare with the first config.`,
    );
    return undefined;
  }

  private description(raw: unknown, at: string): void {
    if (raw !== undefined && typeof raw !== 'string') this.add(at, raw, 'must be a string of free text.');
  }

  private name(o: Json, at: string, what: 'sweep' | 'config', example: string): string | undefined {
    const raw = o.name;
    if (raw === undefined) {
      this.add(at, undefined, `is missing; every ${what} needs a name of lower-case letters, digits and dashes, e.g. "${example}".`, false);
      return undefined;
    }
    if (typeof raw !== 'string' || !NAME_PATTERN.test(raw) || raw.length > MAX_NAME_LENGTH) {
      const use = what === 'sweep' ? `it becomes the stack name SpotSweep-<name>` : 'it names the config\'s S3 prefix, instances and alarms';
      this.add(
        at,
        raw,
        `must be 1-${MAX_NAME_LENGTH} lower-case letters, digits and dashes, starting and ending with a letter or digit (${use}); e.g. "${typeof raw === 'string' ? suggestName(raw) || example : example}".`,
      );
      return undefined;
    }
    return raw;
  }

  private object(raw: unknown, at: string, keys: readonly string[], what: Level): Json | undefined {
    if (!isObject(raw)) {
      this.add(at, raw, `must be a JSON object ({...}) holding the ${what} settings.`);
      return undefined;
    }
    for (const key of Object.keys(raw)) {
      if (keys.includes(key)) continue;
      const keyPath = at === '(top level)' ? key : `${at}.${key}`;
      this.add(keyPath, raw[key], unknownKeyMessage(key, keys, what));
    }
    return raw;
  }

  private integer(raw: unknown, at: string, rule: { min: number; max?: number; fix: string }): number | undefined {
    if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < rule.min || (rule.max !== undefined && raw > rule.max)) {
      const range = rule.max !== undefined ? `a whole number from ${rule.min} to ${rule.max}` : rule.min === 1 ? 'a positive whole number' : `a whole number >= ${rule.min}`;
      this.add(at, raw, `must be ${range}; ${rule.fix}.`);
      return undefined;
    }
    return raw;
  }

  private number(raw: unknown, at: string, rule: { gt?: number; ge?: number; le?: number; required?: boolean; fix: string }): number | undefined {
    if (raw === undefined) {
      if (rule.required) this.add(at, undefined, `is missing; ${rule.fix}.`, false);
      return undefined;
    }
    const bad =
      typeof raw !== 'number' ||
      !Number.isFinite(raw) ||
      (rule.gt !== undefined && raw <= rule.gt) ||
      (rule.ge !== undefined && raw < rule.ge) ||
      (rule.le !== undefined && raw > rule.le);
    if (bad) {
      const low = rule.gt !== undefined ? (rule.gt === 0 ? 'a positive number' : `a number above ${rule.gt}`) : `a number >= ${rule.ge ?? 0}`;
      const range = rule.le !== undefined ? `${low} and at most ${rule.le}` : low;
      this.add(at, raw, `must be ${range}; ${rule.fix}.`);
      return undefined;
    }
    return raw;
  }
}

interface ResolvedDefaults {
  /** `null`: given but invalid (already reported). */
  readonly instanceTypes: readonly string[] | null;
  readonly market: Market;
  readonly maxRuntimeHours: number;
  readonly idleMinutes: number;
  readonly volumeGb: number;
  readonly allowV100: boolean;
  readonly retries: Partial<RetrySettings>;
  readonly train: Partial<TrainSettings>;
  /** `null`: no encoder (set explicitly); a given but invalid one is reported and left out. */
  readonly encoder: string | null;
}

/** What each never-retried exit code means, for the message that refuses it in onExitCodes. */
const NEVER_RETRIED_MEANING: Readonly<Record<number, string>> = {
  [EXIT_CODES.runner.badInput]: 'bad input or usage',
  [EXIT_CODES.runner.busy]: 'another job runner holds the config',
  [EXIT_CODES.runner.interrupted]: 'interrupted with a checkpoint saved (resumed, not retried)',
  [EXIT_CODES.runner.stopped]: 'stopped on request',
};

type Level = 'sweep' | 'defaults' | 'config' | 'train' | 'script' | 'patch' | 'metric' | 'retries';

/** Whether a path the spec gives leaves its root: absolute, or with a `..` part (the job runner checks the same). */
function escapesRoot(p: string): boolean {
  return path.isAbsolute(p) || p.startsWith('\\') || p.split(/[\\/]/).includes('..');
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The message for a key the level does not know: the closest known key, or where it belongs. */
function unknownKeyMessage(key: string, keys: readonly string[], level: Level): string {
  const near = closest(key, keys);
  if (near) return `is not a known ${level} key; did you mean "${near}"?`;
  if ((TRAIN_KEYS as string[]).includes(key) && (level === 'config' || level === 'defaults')) {
    return `is a trainer setting; move it into "train" (e.g. "train": {"${key}": ...}).`;
  }
  if ((DEFAULTS_KEYS as readonly string[]).includes(key) && level === 'sweep') {
    return `belongs in "defaults" (for every config) or in a config; move it there.`;
  }
  if ((key === 'examples' || key === 'gpus') && level === 'defaults') {
    return 'is set per config; move it into each config.';
  }
  return `is not a known ${level} key; known keys: ${keys.join(', ')}.`;
}

/**
 * The known word closest to `word` by edit distance, when close enough to be a typo
 * (at most a third of the word's letters differ, unless `maxDistance` says otherwise).
 */
export function closest(word: string, known: readonly string[], maxDistance = Math.max(1, Math.floor(word.length / 3))): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return bestDistance <= maxDistance ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length];
}

function suggestName(raw: string): string {
  return raw
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, MAX_NAME_LENGTH);
}
