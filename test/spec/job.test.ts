import * as path from 'node:path';
import { loadSpec, renderJob, storePrefix, validateSpec } from '../../lib/spec';

const seed = loadSpec(path.join(__dirname, '..', '..', 'sweeps', 'seed-plan.json'));

describe('job.json rendering', () => {
  test('renders the contract shape for a built-in trainer config', () => {
    const job = renderJob(seed, 'o', { store: storePrefix('s3://artifacts', 'seed-plan', 'o'), data: 's3://artifacts/datasets/o/' });
    expect(job).toEqual({
      version: 1,
      sweep: 'seed-plan',
      config: 'o',
      data: 's3://artifacts/datasets/o/',
      store: 's3://artifacts/sweeps/seed-plan/o/',
      instanceTypes: ['g5.2xlarge', 'g6.2xlarge', 'g6e.2xlarge'],
      market: 'spot',
      gpus: 1,
      maxRuntimeHours: 8,
      examples: 876000,
      train: {
        folds: 10, epochs: 3, batchSize: 1024, learningRate: 0.001, weightDecay: 0, precision: 'auto', gradAccumulation: 1,
        seed: 42, temperature: 0.05, logQCorrection: false, evalCandidates: 'labeled', hiddenDim: 512, checkpointMinutes: 10, finalModel: true,
      },
      script: null,
      retries: { max: 0, onExitCodes: [] },
      encoder: null,
    });
  });

  test('renders retries from defaults, a config overriding them key by key', () => {
    const spec = validateSpec(
      {
        name: 'mine',
        budgetUsd: 5,
        data: 's3://my-bucket/data/',
        defaults: { retries: { max: 2, onExitCodes: [1, 137] } },
        configs: [{ name: 'a' }, { name: 'b', retries: { max: 1 } }, { name: 'c', retries: { max: 0 } }],
      },
      { specFile: '/w/sweeps/mine.json' },
    );
    const store = 'file:///w/store/sweeps/mine/x/';
    expect(renderJob(spec, 'a', { store }).retries).toEqual({ max: 2, onExitCodes: [1, 137] });
    expect(renderJob(spec, 'b', { store }).retries).toEqual({ max: 1, onExitCodes: [1, 137] });
    expect(renderJob(spec, 'c', { store }).retries).toEqual({ max: 0, onExitCodes: [1, 137] });
  });

  test('uses the spec data when no data URI is given, and config overrides', () => {
    const job = renderJob(seed, 'full', { store: 'file:///tmp/store/sweeps/seed-plan/full' });
    expect(job.data).toBe('s3://my-training-data/two-tower/');
    expect(job.store).toBe('file:///tmp/store/sweeps/seed-plan/full/');
    expect(job).toMatchObject({ gpus: 8, market: 'spot-then-on-demand', instanceTypes: ['p4d.24xlarge'], train: { precision: 'bf16', batchSize: 4096 } });
  });

  test('renders the script block with the code URI the instance sees', () => {
    const spec = validateSpec(
      {
        name: 'mine',
        budgetUsd: 5,
        data: 'data',
        configs: [{ name: 'a', script: { codeDir: '../models', entrypoint: 'train.py', args: ['--fast'], patches: [{ file: 'train.py', find: "device = 'mps'", replace: "device = 'cuda'" }] } }],
      },
      { specFile: '/w/sweeps/mine.json' },
    );
    const local = renderJob(spec, 'a', { store: 'file:///w/.spot-sweep/sweeps/mine/a/' });
    expect(local.data).toBe('/w/sweeps/data');
    expect(local.script).toEqual({
      code: '/w/models',
      entrypoint: 'train.py',
      args: ['--fast'],
      patches: [{ file: 'train.py', find: "device = 'mps'", replace: "device = 'cuda'" }],
      results: 'results/**',
      metric: null,
      requirements: null,
      launcher: 'python',
    });
    expect(renderJob(spec, 'a', { store: 's3://b/sweeps/mine/a/', code: 's3://b/code/mine/a.zip' }).script?.code).toBe('s3://b/code/mine/a.zip');
  });

  test('renders a script that brings its own data as data null, with its metric, requirements and launcher', () => {
    const spec = validateSpec(
      {
        name: 'mine',
        budgetUsd: 5,
        configs: [{ name: 'a', script: { codeDir: 'code', entrypoint: 'train.py', metric: { pointer: '/ndcg@10', folds: '/folds' }, requirements: 'requirements.txt', launcher: 'torchrun' } }],
      },
      { specFile: '/w/sweeps/mine.json' },
    );
    const job = renderJob(spec, 'a', { store: 'file:///w/store/sweeps/mine/a/' });
    expect(job.data).toBeNull();
    expect(job.script).toMatchObject({
      metric: { pointer: '/ndcg@10', name: 'ndcg@10', higherIsBetter: true, folds: '/folds', file: null },
      requirements: 'requirements.txt',
      launcher: 'torchrun',
    });
  });

  test('fails when the config does not exist or the store is not a URI', () => {
    expect(() => renderJob(seed, 'zz', { store: 's3://b/' })).toThrow(/no config "zz".*o, p, q, r, full/);
    expect(() => renderJob(seed, 'o', { store: '/tmp/x' })).toThrow(/must be an s3:\/\/ or file:\/\/ URI/);
  });
});
