import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { storeKeys } from '../../contract';
import { INSTANCES } from '../../cost/instances';
import { SweepSpec } from '../../spec/types';
import { validateSpec } from '../../spec/validate';

/**
 * The canary's own sweep: one config of the demo (sweeps/demo.json's trainer settings) on one GPU type,
 * over a synthetic data set it uploads itself. Each run has its own sweep name, so nothing of an earlier
 * run (its status.json, its checkpoints, a stack a killed run left behind) can pass for this run's.
 */

/** The one config of the canary sweep. */
export const CANARY_CONFIG = 'demo';

/**
 * The single-GPU types the canary may run on, cheapest spot price first by the price table (g4dn.xlarge,
 * then g6.xlarge, then g5.xlarge): the canary proves the path, not the GPU, so it takes the cheapest one
 * the account can launch.
 */
export const CANARY_CANDIDATES: readonly string[] = ['g4dn.xlarge', 'g5.xlarge', 'g6.xlarge'].sort(
  (a, b) => (INSTANCES.get(a)?.spotUsdPerHour ?? Infinity) - (INSTANCES.get(b)?.spotUsdPerHour ?? Infinity),
);

/**
 * The data set (`python -m two_tower.synth` arguments): ten times the demo's queries, so that training
 * (2 folds x 12 epochs) outlasts the runner's 30 s control.json poll and the stop lands mid-training; few
 * documents, so it is made in seconds and uploads in seconds (about 13 MB).
 */
export const CANARY_DATA_ARGS: readonly string[] = ['--queries', '20000', '--docs', '4000'];

/** `canary-20260321-140512`: a sweep name (lower-case, digits, dashes) unique to this run. */
export function canarySweepName(now: Date): string {
  const iso = now.toISOString();
  return `canary-${iso.slice(0, 10).replace(/-/g, '')}-${iso.slice(11, 19).replace(/:/g, '')}`;
}

/** Where the canary's data set goes in the artifact bucket: under `datasets/`, which the instance role reads. */
export function canaryDataPrefix(sweep: string): string {
  return `${storeKeys.datasets(sweep)}synthetic/`;
}

/** The canary's spec document. */
export function canarySpecDocument(sweep: string, instanceType: string, dataUri: string): Record<string, unknown> {
  return {
    name: sweep,
    description: 'spot-sweep canary: the demo on one spot GPU, to check every promise on this account; destroyed when it ends.',
    budgetUsd: 1,
    data: dataUri,
    defaults: {
      instanceTypes: [instanceType],
      market: 'spot',
      maxRuntimeHours: 1,
      idleMinutes: 10,
      train: { folds: 2, epochs: 12, batchSize: 512, hiddenDim: 128, checkpointMinutes: 1 },
    },
    configs: [{ name: CANARY_CONFIG, description: 'the demo baseline' }],
  };
}

/** Writes the spec into `dir` (kept, so `cdk destroy -c sweep=FILE` works after --keep); validated like any spec. */
export function writeCanarySpec(dir: string, sweep: string, instanceType: string, dataUri: string): { file: string; spec: SweepSpec } {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${sweep}.json`);
  const doc = canarySpecDocument(sweep, instanceType, dataUri);
  writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
  return { file, spec: validateSpec(doc, { specFile: file }) };
}
