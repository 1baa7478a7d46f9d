import { JobJson, storeKeys } from '../contract';
import { ResolvedConfig, SweepSpec } from './types';

/** job.json: one config's complete job, as the job runner and trainer read it (training/contract/job.schema.json). */
export type { JobJson } from '../contract';
export type JobScript = NonNullable<JobJson['script']>;

/** Where one config's job reads and writes. */
export interface JobLocations {
  /**
   * The config's store prefix, `s3://...` or `file:///...`; a trailing `/` is added when missing.
   * Use {@link storePrefix} to build it.
   */
  readonly store: string;
  /**
   * The data set, as the instance sees it; `null` for a script config without data.
   * @default - the config's `data` from the spec
   */
  readonly data?: string | null;
  /**
   * The user's code, as the instance sees it (e.g. the uploaded .zip); only used when the config has `script`.
   * @default - the config's `script.codeDir` from the spec
   */
  readonly code?: string;
  /**
   * The encoder, as the instance sees it (a local model directory uploaded beside the data sets); only used when
   * the config has `encoder`.
   * @default - the config's `encoder` from the spec
   */
  readonly encoder?: string | null;
}

/** `<root>/sweeps/<sweep>/<config>/`, where root is `s3://bucket` or `file:///abs/dir`. */
export function storePrefix(root: string, sweep: string, config: string): string {
  return `${root.replace(/\/+$/, '')}/${storeKeys.config(sweep, config)}`;
}

/** Renders the job.json of one config of a validated spec. */
export function renderJob(spec: SweepSpec, configName: string, locations: JobLocations): JobJson {
  const config: ResolvedConfig | undefined = spec.configs.find((c) => c.name === configName);
  if (!config) {
    throw new Error(`sweep "${spec.name}" has no config "${configName}"; its configs are: ${spec.configs.map((c) => c.name).join(', ')}.`);
  }
  if (!/^(s3|file):\/\//.test(locations.store)) {
    throw new Error(`store "${locations.store}" must be an s3:// or file:// URI, e.g. ${storePrefix('s3://bucket', spec.name, config.name)}.`);
  }
  return {
    version: 1,
    sweep: spec.name,
    config: config.name,
    data: locations.data ?? config.data,
    store: locations.store.endsWith('/') ? locations.store : `${locations.store}/`,
    instanceTypes: [...config.instanceTypes] as JobJson['instanceTypes'],
    market: config.market,
    gpus: config.gpus,
    maxRuntimeHours: config.maxRuntimeHours,
    examples: config.examples,
    train: { ...config.train },
    retries: { max: config.retries.max, onExitCodes: [...config.retries.onExitCodes] },
    script: config.script
      ? {
          code: locations.code ?? config.script.codeDir,
          entrypoint: config.script.entrypoint,
          args: [...config.script.args],
          patches: config.script.patches.map((p) => ({ ...p })),
          results: config.script.results,
          metric: config.script.metric ? { ...config.script.metric } : null,
          requirements: config.script.requirements,
          launcher: config.script.launcher,
        }
      : null,
    encoder: config.encoder === null ? null : (locations.encoder ?? config.encoder),
  };
}
