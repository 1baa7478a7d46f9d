/**
 * The sweep spec (`sweeps/*.json`): what the user writes, and the resolved form the rest of the
 * code uses. Keys and defaults follow .ci/CONTRACTS.md; sweeps/README.md documents each field.
 *
 * Plain TypeScript, no CDK imports: the CLI, the CDK app and local mode share it.
 */

import { EXIT_CODES, JobJson, TRAIN_PROPERTIES, TrainSettingsJson } from '../contract';
import jobSchema from '../../training/contract/job.schema.json';

/** How a config buys its instance. */
export type Market = JobJson['market'];
export const MARKETS = jobSchema.$defs.market.enum as readonly Market[];

export type Precision = NonNullable<TrainSettingsJson['precision']>;
export const PRECISIONS = TRAIN_PROPERTIES.precision.enum as readonly Precision[];

export type EvalCandidates = NonNullable<TrainSettingsJson['evalCandidates']>;
export const EVAL_CANDIDATES = TRAIN_PROPERTIES.evalCandidates.enum as readonly EvalCandidates[];

/**
 * Trainer settings (the `train` object), every key present; every key is passed to the trainer as is.
 * Types, defaults, enums and bounds: training/contract/train-settings.schema.json.
 */
export type TrainSettings = { readonly [K in keyof TrainSettingsJson]-?: NonNullable<TrainSettingsJson[K]> };

/** Every setting's default, from training/contract/train-settings.schema.json. */
export const TRAIN_DEFAULTS = Object.fromEntries(Object.entries(TRAIN_PROPERTIES).map(([key, p]) => [key, p.default])) as unknown as TrainSettings;

/**
 * Restarts of a failed job (job.json `retries`, training/spot_runner/retries.py): like AWS Batch's
 * retryStrategy with evaluateOnExit on the exit code, but `max` counts restarts, not runs.
 * @see https://docs.aws.amazon.com/batch/latest/userguide/job_retries.html
 */
export type RetrySettings = JobJson['retries'];

/** Runner exit codes never retried, whatever onExitCodes says (bad input, another runner, interrupted, stopped). */
export const NEVER_RETRIED: readonly number[] = (['badInput', 'busy', 'interrupted', 'stopped'] as const).map((k) => EXIT_CODES.runner[k]);

/** Settings shared by every config unless the config overrides them. */
export interface ConfigDefaults {
  /** Instance types, most preferred first; GPU types from the price table only. @default ["g5.xlarge"] */
  readonly instanceTypes: readonly string[];
  /** @default "spot" */
  readonly market: Market;
  /** Hard stop for one config's run, hours; at most 48 (SSM runShellScript's ceiling). @default 12 */
  readonly maxRuntimeHours: number;
  /** Minutes of an idle GPU after which the instance is stopped. @default 20 */
  readonly idleMinutes: number;
  /** Root volume size (gp3), GiB. @default 100 */
  readonly volumeGb: number;
  /**
   * Lets the config list V100 types (p3, p3dn). They need the Amazon Linux 2 proprietary-driver Deep
   * Learning AMI, whose patches ended 2026-06-30, and a sweep stack whose AMI parameter no longer resolves
   * fails to deploy as a whole, so a p3 type without this is refused. Only a config that opts in makes the
   * sweep depend on that parameter. @default false
   */
  readonly allowV100: boolean;
  /**
   * Restarts of a failed trainer or script on the same instance, from its checkpoint: `max` restarts (0 to
   * 10) for the exit codes in `onExitCodes` (empty: any failing code). Bad input (exit 2) is never retried;
   * spot interruptions never use a retry (they resume on a replacement instance as before).
   * @default {"max": 0, "onExitCodes": []} (no retries)
   */
  readonly retries: RetrySettings;
}

export const CONFIG_DEFAULTS: ConfigDefaults = {
  instanceTypes: ['g5.xlarge'],
  market: 'spot',
  maxRuntimeHours: 12,
  idleMinutes: 20,
  volumeGb: 100,
  allowV100: false,
  retries: { max: 0, onExitCodes: [] },
};

/** One find/replace applied to a file of the user's script before it runs. */
export interface Patch {
  /** Path relative to `codeDir`. */
  readonly file: string;
  /** Exact text to find (not a regex); must occur in the file. */
  readonly find: string;
  readonly replace: string;
}

/** How the job runner starts the script: one process, or one per GPU under torchrun. */
export type Launcher = NonNullable<JobJson['script']>['launcher'];
export const LAUNCHERS = jobSchema.$defs.script.properties.launcher.enum as readonly Launcher[];

/**
 * The score a script reports in its results file (resolved, every default applied), as job.json carries it.
 * Configs whose metric names match rank together; `ndcg@10` is the built-in trainer's ({@link canonicalMetricName}).
 */
export interface ScriptMetric {
  /** JSON pointer (RFC 6901) to the number in the results file, e.g. `/ndcg@10`. */
  readonly pointer: string;
  /** @default - the pointer's last token, unescaped (`/metrics/ndcg@10` -> `ndcg@10`) */
  readonly name: string;
  /** @default true */
  readonly higherIsBetter: boolean;
  /** JSON pointer to an array of per-fold numbers. @default null (no per-fold values; std is null) */
  readonly folds: string | null;
  /** The results file, relative to codeDir. @default null (the single JSON file the results glob collects) */
  readonly file: string | null;
}

/** The user's own training script instead of the built-in trainer (resolved). */
export interface ScriptSettings {
  /** Absolute local directory (after resolution against the spec file's directory) or an s3:// URI. */
  readonly codeDir: string;
  /** Path of the script inside codeDir, e.g. `models/train.py`. */
  readonly entrypoint: string;
  /** @default [] */
  readonly args: readonly string[];
  /** @default [] */
  readonly patches: readonly Patch[];
  /** Glob, relative to codeDir, of the files collected as results. @default "results/**" */
  readonly results: string;
  /** The score the script reports; `null`: listed without a score. @default null */
  readonly metric: ScriptMetric | null;
  /** A pip requirements file inside codeDir, installed before the script runs. @default null (none) */
  readonly requirements: string | null;
  /** `python`: one process that sees every GPU; `torchrun`: one process per GPU. @default "python" */
  readonly launcher: Launcher;
}

export const SCRIPT_DEFAULTS = {
  args: [] as readonly string[],
  patches: [] as readonly Patch[],
  results: 'results/**',
  metric: null,
  requirements: null,
  launcher: 'python' as Launcher,
};

/** One config, every default applied. */
export interface ResolvedConfig extends ConfigDefaults {
  readonly name: string;
  readonly description?: string;
  /** Training examples to use; `null` means all of the data set. */
  readonly examples: number | null;
  /** GPUs to use; defaults to every GPU of the first instance type. */
  readonly gpus: number;
  /** `s3://` URI or absolute local directory; `null` only for a script that brings its own data. */
  readonly data: string | null;
  readonly train: TrainSettings;
  /** `null` means the built-in two-tower trainer. */
  readonly script: ScriptSettings | null;
  /**
   * The sentence-transformers model the dataset's texts (queries.csv, docs.csv) are encoded with before training:
   * a hub name (`sentence-transformers/all-MiniLM-L6-v2`, optionally `@revision`), an `s3://` URI of a model
   * directory, or a local model directory (absolute after resolution against the spec file's directory; it holds
   * modules.json). Encoded once per (encoder, texts) into the store's `cache/embeddings/`. Only for the built-in
   * trainer: a script config may not set it, and `defaults.encoder` does not apply to script configs.
   * @default null (the dataset as it is: its embeddings, or hashed word n-grams of its texts)
   */
  readonly encoder: string | null;
}

/** A validated sweep spec, every default applied. */
export interface SweepSpec {
  readonly name: string;
  readonly description?: string;
  readonly budgetUsd: number;
  /**
   * The config every other config is compared with in the report (paired by fold; lib/results/compare.ts).
   * @default - the first config
   */
  readonly baseline: string;
  /**
   * The most configs that hold an instance at once; the next pending config starts when one finishes, fails
   * or is stopped (lib/constructs/scheduler.ts). A whole number >= 1; above the number of configs it caps nothing.
   * @default null (no cap: every config starts at once)
   */
  readonly maxParallel: number | null;
  /** Absolute path of the spec file, or `undefined` when validated from memory. */
  readonly specFile?: string;
  readonly configs: readonly ResolvedConfig[];
}

export { sweepStackName } from '../contract';

/** Keys accepted at each level; anything else is an error (a typo must not be ignored). */
export const SWEEP_KEYS = ['name', 'description', 'budgetUsd', 'data', 'defaults', 'configs', 'baseline', 'maxParallel'] as const;
export const DEFAULTS_KEYS = ['instanceTypes', 'market', 'maxRuntimeHours', 'idleMinutes', 'volumeGb', 'allowV100', 'retries', 'train', 'encoder'] as const;
export const CONFIG_KEYS = ['name', 'description', 'examples', 'gpus', 'data', 'script', ...DEFAULTS_KEYS] as const;
export const TRAIN_KEYS = Object.keys(TRAIN_PROPERTIES) as (keyof TrainSettings)[];
export const SCRIPT_KEYS = ['codeDir', 'entrypoint', 'args', 'patches', 'results', 'metric', 'requirements', 'launcher'] as const;
export const METRIC_KEYS = ['pointer', 'name', 'higherIsBetter', 'folds', 'file'] as const;
export const PATCH_KEYS = ['file', 'find', 'replace'] as const;
export const RETRY_KEYS = Object.keys(jobSchema.$defs.retries.properties) as (keyof RetrySettings)[];
