/**
 * The TypeScript face of training/contract/names.json: every name shared with Python and bash
 * (stacks, groups, alarms, tags, SSM parameters, metrics, store keys, states, exit codes), spelled
 * there once and read here. Plain TypeScript: the CLI, the CDK app and the Lambdas import it (esbuild
 * inlines the JSON into each function bundle).
 */
import names from '../../training/contract/names.json';
import type { ControlJson, ResultsJson, StatusJson } from './types.generated';

export const NAMES = names;

/** A names.json template with its placeholders filled: `fill('sweeps/{sweep}/', { sweep: 'demo' })`. */
export function fill(template: string, parts: Readonly<Record<string, string>>): string {
  return template.replace(/\{(\w+)\}/g, (_whole, key: string) => {
    const value = parts[key];
    if (value === undefined) throw new Error(`contract template "${template}" needs {${key}}`);
    return value;
  });
}

/** A job state, typed from status.schema.json (names.json lists the same states; a test checks). */
export type State = StatusJson['state'];
/** Every job state, in the order a job goes through them. */
export const STATES: readonly string[] = names.states.all;
/** States after which a job does not run again by itself. */
export const FINAL_STATES: ReadonlySet<string> = new Set(names.states.final);
/** States that end a job for good: its outcome. */
export const OUTCOMES: ReadonlySet<string> = new Set(names.states.outcomes);
/** States in which an instance is working on the job. */
export const RUNNING_STATES: ReadonlySet<string> = new Set(names.states.running);
export type Mode = ResultsJson['mode'];
export type ControlAction = ControlJson['action'];
export const MODES = names.modes;
export const CONTROL_ACTIONS = names.controlActions;

/** Each name of a list as a constant, typed by its own value: `STATE.STOPPED === 'STOPPED'`. */
function byName<T extends string>(values: readonly T[]): { readonly [K in T]: K } {
  return Object.fromEntries(values.map((v) => [v, v])) as { readonly [K in T]: K };
}
/** The job states by name (names.json `states.all`), for code that means one of them. */
export const STATE = byName(names.states.all as State[]);
/** The control.json actions by name. */
export const ACTION = byName(names.controlActions as ControlAction[]);
/** results.json's modes by name. */
export const MODE = byName(names.modes as Mode[]);
/** Who writes control.json requests (`by`). */
export const REQUESTERS = names.requesters;

/** Exit codes of the trainer, the job runner, the bootstrap and the CLI. */
export const EXIT_CODES = names.exitCodes;
export const EXIT_CODE_MEANINGS: Readonly<Record<string, string>> = names.exitCodeMeanings;

export const FOUNDATION_STACK = names.stacks.foundation;
/** The foundation stack's outputs the CLI reads. */
export const STACK_OUTPUTS = names.stackOutputs;
export const GITHUB_OIDC_STACK = names.stacks.githubOidc;
export const sweepStackName = (sweep: string): string => fill(names.stacks.sweep, { sweep });
/** The Auto Scaling group of a config, named so the guard Lambda and the CLI find it. */
export const groupName = (sweep: string, config: string): string => fill(names.groupName, { sweep, config });
/** The termination lifecycle hook of every config's group; the bootstrap completes it by this name. */
export const TERMINATION_HOOK = names.lifecycleHooks.termination;
/** status.json `stoppedBy` when the job runner stopped the job on its own (not a control.json requester). */
export const STOP_CAUSES = names.stopCauses;
export const alarmNames = {
  gpuIdle: (sweep: string, config: string): string => fill(names.alarms.gpuIdle, { sweep, config }),
  maxRuntime: (sweep: string, config: string): string => fill(names.alarms.maxRuntime, { sweep, config }),
  budget: (sweep: string, config: string): string => fill(names.alarms.budget, { sweep, config }),
  guardSilent: (sweep: string, config: string): string => fill(names.alarms.guardSilent, { sweep, config }),
};
export const dashboardName = (sweep: string): string => fill(names.dashboard, { sweep });

/** Tag keys: on every resource (`project`) and on every instance of a config. */
export const TAGS = names.tags;
/** The value of the `spot-sweep:job` tag that the SSM association targets. */
export const jobTagValue = (sweep: string, config: string): string => fill(names.jobTagValue, { sweep, config });
/** The object tag every checkpoint upload carries; the bucket's lifecycle rule expires by it. */
export const CHECKPOINT_TAG = names.objectTags.checkpoint;

/** The SSM parameter holding one config's job.json. */
export const jobParameterName = (sweep: string, config: string): string => fill(names.ssmParameters.job, { sweep, config });
/** The job URI the train document passes to bootstrap.sh and the job runner. */
export const jobUri = (sweep: string, config: string): string => `${names.jobUriSchemes.ssm}${jobParameterName(sweep, config)}`;

export const METRICS = names.metrics;

export type ConfigFile = keyof typeof names.store.configFiles;
export type SweepFile = keyof typeof names.store.sweepFiles;
export const CONFIG_FILES = names.store.configFiles;
/** The trainer's --out inside the job runner's --workdir. */
export const RUNNER_WORKDIR = names.runnerWorkdir;
/** The trainer's --out files. */
export const TRAINER_OUT = names.trainerOut;
export const SWEEP_FILES = names.store.sweepFiles;

/** Keys of the sweep store (the artifact bucket, or a local directory), relative to its root. */
export const storeKeys = {
  /** `sweeps/<sweep>/` */
  sweep: (sweep: string): string => fill(names.store.sweep, { sweep }),
  /** `sweeps/<sweep>/<config>/` */
  config: (sweep: string, config: string): string => fill(names.store.config, { sweep, config }),
  /** One of a config's files, e.g. `sweeps/<sweep>/<config>/status.json`. */
  configFile: (sweep: string, config: string, file: ConfigFile): string => fill(names.store.config, { sweep, config }) + names.store.configFiles[file],
  /** One of a sweep's files, e.g. `sweeps/<sweep>/spend.json`. */
  sweepFile: (sweep: string, file: SweepFile): string => fill(names.store.sweep, { sweep }) + names.store.sweepFiles[file],
  /** `sweeps/`: where every sweep's files live. */
  sweepsRoot: names.store.sweepsRoot,
  /** `datasets/<sweep>/`: where local data sets are uploaded at deploy. */
  datasets: (sweep: string): string => fill(names.store.datasets, { sweep }),
  /** The CUDA wheel cache. */
  wheelCache: names.store.wheelCache,
  /** `cache/embeddings/<key>/`: a dataset's texts encoded by a config's `encoder` (training/spot_runner/embedding_cache.py). */
  embeddingCache: (key: string): string => fill(names.store.embeddingCache, { key }),
  /** `code/`: training code bundles the instances read. */
  code: names.store.code,
};
