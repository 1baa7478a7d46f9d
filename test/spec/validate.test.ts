import * as path from 'node:path';
import { SpecError, SpecIssue, checkSpec, loadSpec, validateSpec } from '../../lib/spec';

const FIXTURES = path.join(__dirname, '..', 'fixtures');
const SPEC_FILE = '/specs/sweeps/x.json';

/** A small valid spec; each test changes one thing. */
function base(): any {
  return {
    name: 'x',
    budgetUsd: 50,
    data: 's3://my-bucket/data/',
    defaults: { instanceTypes: ['g5.xlarge'], train: { folds: 5 } },
    configs: [{ name: 'a', examples: 1000 }],
  };
}

function issuesOf(change: (spec: any) => void): SpecIssue[] {
  const spec = base();
  change(spec);
  return checkSpec(spec, { specFile: SPEC_FILE }).issues;
}

function expectIssue(issues: SpecIssue[], at: string, message: RegExp): void {
  const found = issues.find((i) => i.path === at);
  expect(found).toBeDefined();
  expect(found!.message).toMatch(message);
}

describe('sweep spec validation', () => {
  test('accepts a valid spec and applies every default', () => {
    const spec = validateSpec(base(), { specFile: SPEC_FILE });
    expect(spec.name).toBe('x');
    const [a] = spec.configs;
    expect(a.instanceTypes).toEqual(['g5.xlarge']);
    expect(a.market).toBe('spot');
    expect(a.maxRuntimeHours).toBe(12);
    expect(a.gpus).toBe(1);
    expect(a.train).toEqual({
      folds: 5, epochs: 3, batchSize: 1024, learningRate: 0.001, weightDecay: 0, precision: 'auto', gradAccumulation: 1,
      seed: 42, temperature: 0.05, logQCorrection: false, evalCandidates: 'labeled', hiddenDim: 512, checkpointMinutes: 10, finalModel: true,
    });
    expect(a.script).toBeNull();
  });

  test('config settings override defaults; gpus defaults to all GPUs of the first type', () => {
    const spec = validateSpec(
      { ...base(), configs: [{ name: 'r', instanceTypes: ['g6e.12xlarge'], market: 'on-demand', train: { epochs: 1 } }] },
      { specFile: SPEC_FILE },
    );
    expect(spec.configs[0]).toMatchObject({ gpus: 4, market: 'on-demand', examples: null, train: { folds: 5, epochs: 1 } });
  });

  test('resolves local data and codeDir relative to the spec file directory', () => {
    const spec = validateSpec(
      {
        ...base(),
        data: '../.spot-sweep/demo-data',
        configs: [{ name: 'mine', script: { codeDir: '../models', entrypoint: 'train.py' } }],
      },
      { specFile: SPEC_FILE },
    );
    expect(spec.configs[0].data).toBe('/specs/.spot-sweep/demo-data');
    expect(spec.configs[0].script).toEqual({
      codeDir: '/specs/models',
      entrypoint: 'train.py',
      args: [],
      patches: [],
      results: 'results/**',
      metric: null,
      requirements: null,
      launcher: 'python',
    });
  });

  test('fails when a key is unknown, and suggests the closest known key', () => {
    const issues = issuesOf((s) => {
      s.budgetUSD = 5;
      s.defaults.maxRuntimeHour = 4;
      s.configs[0].exampels = 10;
      s.defaults.train.batchsize = 10;
    });
    expectIssue(issues, 'budgetUSD', /did you mean "budgetUsd"/);
    expectIssue(issues, 'defaults.maxRuntimeHour', /did you mean "maxRuntimeHours"/);
    expectIssue(issues, 'configs[0].exampels', /did you mean "examples"/);
    expectIssue(issues, 'defaults.train.batchsize', /did you mean "batchSize"/);
  });

  test('fails when a script path leaves codeDir: the entrypoint, the results glob or a patched file', () => {
    const issues = issuesOf((s) => {
      s.configs[0].script = { codeDir: '.', entrypoint: '/usr/bin/t.py', results: '../../*.json', patches: [{ file: 'models/../../x.py', find: 'a', replace: 'b' }] };
    });
    expectIssue(issues, 'configs[0].script.entrypoint', /inside codeDir/);
    expectIssue(issues, 'configs[0].script.results', /without "\.\."/);
    expectIssue(issues, 'configs[0].script.patches[0].file', /inside codeDir/);
  });

  test('fails when an unknown key is in a script or a patch, or a setting sits at the wrong level', () => {
    const issues = issuesOf((s) => {
      s.configs[0].folds = 3;
      s.configs[0].script = { codeDir: '.', entrypoint: 't.py', entry: 'x', patches: [{ file: 'a', find: 'b', replace: 'c', regex: true }] };
    });
    expectIssue(issues, 'configs[0].folds', /move it into "train"/);
    expectIssue(issues, 'configs[0].script.entry', /not a known script key/);
    expectIssue(issues, 'configs[0].script.patches[0].regex', /not a known patch key/);
  });

  test('retries default to none; defaults and configs may set them', () => {
    expect(validateSpec(base(), { specFile: SPEC_FILE }).configs[0].retries).toEqual({ max: 0, onExitCodes: [] });
    const spec = validateSpec({ ...base(), defaults: { retries: { max: 3 } }, configs: [{ name: 'a', retries: { onExitCodes: [1] } }] }, { specFile: SPEC_FILE });
    expect(spec.configs[0].retries).toEqual({ max: 3, onExitCodes: [1] });
  });

  test('fails when retries.max is not a whole number from 0 to 10, listing every problem at once', () => {
    const issues = issuesOf((s) => {
      s.defaults.retries = { max: 11 };
      s.configs[0].retries = { max: 1.5 };
    });
    expectIssue(issues, 'defaults.retries.max', /whole number from 0 to 10; use the number of restarts/);
    expectIssue(issues, 'configs[0].retries.max', /whole number from 0 to 10/);
  });

  test('fails when an onExitCodes entry is out of range, repeated or a code that is never retried', () => {
    const issues = issuesOf((s) => {
      s.configs[0].retries = { max: 2, onExitCodes: [0, 256, 'x', 2, 75, 3, 3] };
    });
    expectIssue(issues, 'configs[0].retries.onExitCodes[0]', /whole number from 1 to 255/);
    expectIssue(issues, 'configs[0].retries.onExitCodes[1]', /whole number from 1 to 255/);
    expectIssue(issues, 'configs[0].retries.onExitCodes[2]', /whole number from 1 to 255/);
    expectIssue(issues, 'configs[0].retries.onExitCodes[3]', /never retried: exit 2 means bad input.*remove it/);
    expectIssue(issues, 'configs[0].retries.onExitCodes[4]', /never retried: exit 75/);
    expectIssue(issues, 'configs[0].retries.onExitCodes[6]', /repeats onExitCodes\[5\]/);
    expect(issuesOf((s) => { s.configs[0].retries = { onExitCodes: 1 }; })[0]).toMatchObject({ path: 'configs[0].retries.onExitCodes', message: expect.stringMatching(/must be a list/) });
  });

  test('fails when retries has an unknown key or is not an object, and suggests the closest key', () => {
    expectIssue(issuesOf((s) => { s.configs[0].retries = { maxx: 2 }; }), 'configs[0].retries.maxx', /not a known retries key; did you mean "max"/);
    expectIssue(issuesOf((s) => { s.configs[0].retries = { attempts: 2 }; }), 'configs[0].retries.attempts', /known keys: max, onExitCodes/);
    expectIssue(issuesOf((s) => { s.configs[0].retries = 2; }), 'configs[0].retries', /must be a JSON object/);
  });

  test('fails when two configs have the same name', () => {
    const issues = issuesOf((s) => s.configs.push({ name: 'a' }));
    expectIssue(issues, 'configs[1].name', /duplicates configs\[0\]\.name/);
  });

  test('fails when the sweep or a config name is invalid', () => {
    const issues = issuesOf((s) => {
      s.name = 'My_Sweep';
      s.configs[0].name = 'Config O';
    });
    expectIssue(issues, 'name', /lower-case letters, digits and dashes.*SpotSweep-<name>.*"my-sweep"/);
    expectIssue(issues, 'configs[0].name', /lower-case letters, digits and dashes/);
  });

  test('fails when an instance type is not a GPU type', () => {
    const issues = issuesOf((s) => (s.defaults.instanceTypes = ['m5.large']));
    expectIssue(issues, 'defaults.instanceTypes[0]', /not a GPU instance type/);
  });

  test('fails when an instance type is unknown, and suggests the closest size', () => {
    const issues = issuesOf((s) => (s.configs[0].instanceTypes = ['p3.2xl', 'banana']));
    expectIssue(issues, 'configs[0].instanceTypes[0]', /did you mean "p3.2xlarge"/);
    expectIssue(issues, 'configs[0].instanceTypes[1]', /not an EC2 instance type name/);
  });

  test('fails when gpus is above what the instance has', () => {
    const issues = issuesOf((s) => Object.assign(s.configs[0], { instanceTypes: ['g6e.12xlarge'], gpus: 8 }));
    expectIssue(issues, 'configs[0].gpus', /g6e\.12xlarge has only 4 GPUs; use at most 4 or list a larger type \(g6e\.48xlarge has 8\)/);
  });

  test('fails when listed types have fewer GPUs than the first one and gpus is not set', () => {
    const issues = issuesOf((s) => (s.configs[0].instanceTypes = ['g6e.12xlarge', 'g6e.xlarge']));
    expectIssue(issues, 'configs[0].instanceTypes', /different GPU counts.*set configs\[0\]\.gpus to at most 1/);
  });

  test('fails when maxRuntimeHours is above 48', () => {
    const issues = issuesOf((s) => (s.defaults.maxRuntimeHours = 49));
    expectIssue(issues, 'defaults.maxRuntimeHours', /at most 48.*172800 s/);
  });

  test('fails when budgetUsd is missing, zero or negative', () => {
    expectIssue(issuesOf((s) => (s.budgetUsd = 0)), 'budgetUsd', /positive number/);
    expectIssue(issuesOf((s) => (s.budgetUsd = -5)), 'budgetUsd', /positive number/);
    expectIssue(issuesOf((s) => delete s.budgetUsd), 'budgetUsd', /is missing/);
  });

  test('fails when a trainer setting is above the bound the contract schema documents', () => {
    expectIssue(issuesOf((s) => (s.configs[0].train = { hiddenDim: 1e9 })), 'configs[0].train.hiddenDim', /whole number from 1 to 65536/);
    expectIssue(issuesOf((s) => (s.configs[0].train = { learningRate: 1e300 })), 'configs[0].train.learningRate', /at most 10/);
  });

  test('fails when batchSize is not a positive whole number', () => {
    expectIssue(issuesOf((s) => (s.configs[0].train = { batchSize: 0 })), 'configs[0].train.batchSize', /whole number from 1 to 1048576/);
    expectIssue(issuesOf((s) => (s.configs[0].train = { batchSize: 12.5 })), 'configs[0].train.batchSize', /whole number from 1 to 1048576/);
  });

  test('fails when epochs is not positive', () => {
    expectIssue(issuesOf((s) => (s.defaults.train.epochs = 0)), 'defaults.train.epochs', /whole number from 1 to 10000/);
  });

  test('fails when folds is below 2', () => {
    expectIssue(issuesOf((s) => (s.defaults.train.folds = 1)), 'defaults.train.folds', /at least 2 folds/);
  });

  test('fails when the market is unknown', () => {
    expectIssue(issuesOf((s) => (s.configs[0].market = 'spot-only')), 'configs[0].market', /"spot", "on-demand", "spot-then-on-demand"/);
  });

  test('fails when a patch has an empty find', () => {
    const issues = issuesOf((s) => (s.configs[0].script = { codeDir: '.', entrypoint: 't.py', patches: [{ file: 't.py', find: '', replace: 'x' }] }));
    expectIssue(issues, 'configs[0].script.patches[0].find', /non-empty text/);
  });

  test('fails when bf16 is asked for on a V100', () => {
    const issues = issuesOf((s) => Object.assign(s.configs[0], { instanceTypes: ['p3.2xlarge'], allowV100: true, train: { precision: 'bf16' } }));
    expectIssue(issues, 'configs[0].train.precision', /p3\.2xlarge \(V100\).*no bf16/);
  });

  test('fails when a config lists a V100 type without allowV100, naming the config, the field, why and the fix', () => {
    const issues = issuesOf((s) => (s.configs[0].instanceTypes = ['g5.2xlarge', 'p3.2xlarge', 'p3dn.24xlarge']));
    expectIssue(issues, 'configs[0].instanceTypes', /config "a" lists p3\.2xlarge, p3dn\.24xlarge \(V100\)/);
    const issue = issues.find((i) => i.path === 'configs[0].instanceTypes')!;
    expect(issue.message).toMatch(/Amazon Linux 2 patches ended 2026-06-30/);
    expect(issue.message).toMatch(/fails to deploy/);
    expect(issue.message).toMatch(/List current types instead \(g5, g6, g6e, p4d, p5\), or set configs\[0\]\.allowV100 \(or defaults\.allowV100\) to true/);
  });

  test('fails once per config when V100 types come from defaults, and reports the other problems with it', () => {
    const issues = issuesOf((s) => {
      s.defaults.instanceTypes = ['p3.2xlarge'];
      s.defaults.volumeGb = 10;
      s.configs.push({ name: 'b' });
    });
    expect(issues.filter((i) => i.path === 'defaults.instanceTypes').map((i) => i.message.match(/^config "(\w+)"/)?.[1])).toEqual(['a', 'b']);
    expectIssue(issues, 'defaults.volumeGb', /between 50 and 16384/);
  });

  test('takes V100 types when the config or the defaults opt in with allowV100', () => {
    const own = validateSpec({ ...base(), configs: [{ name: 'r', instanceTypes: ['p3.8xlarge'], allowV100: true }] });
    expect(own.configs[0]).toMatchObject({ instanceTypes: ['p3.8xlarge'], allowV100: true, gpus: 4 });
    const viaDefaults = validateSpec({ ...base(), defaults: { ...base().defaults, allowV100: true, instanceTypes: ['p3.2xlarge'] } });
    expect(viaDefaults.configs.map((c) => c.allowV100)).toEqual([true]);
    expect(validateSpec(base()).configs[0].allowV100).toBe(false);
  });

  test('fails when allowV100 is not a boolean', () => {
    expectIssue(
      issuesOf((s) => (s.defaults.allowV100 = 'yes')),
      'defaults.allowV100',
      /must be true or false/,
    );
  });

  test('fails when bf16 is asked for in defaults and a config may run on a T4', () => {
    const issues = issuesOf((s) => {
      s.defaults.train.precision = 'bf16';
      s.configs[0].instanceTypes = ['g5.xlarge', 'g4dn.xlarge'];
    });
    expectIssue(issues, 'defaults.train.precision', /g4dn\.xlarge \(T4\).*no bf16/);
  });

  test('fails when no data is set for a config', () => {
    const issues = issuesOf((s) => delete s.data);
    expectIssue(issues, 'configs[0].data', /no data set/);
  });

  test('a script config may go without data: it brings its own (data null)', () => {
    const spec = validateSpec(
      { name: 'x', budgetUsd: 5, configs: [{ name: 'own', script: { codeDir: 'code', entrypoint: 'train.py' } }, { name: 'shared', data: 'd', script: { codeDir: 'code', entrypoint: 'train.py' } }] },
      { specFile: SPEC_FILE },
    );
    expect(spec.configs[0].data).toBeNull();
    expect(spec.configs[1].data).toBe('/specs/sweeps/d');
  });

  test('fails when a built-in trainer config has no data, even beside a script config without it', () => {
    const issues = issuesOf((s) => {
      delete s.data;
      s.configs.push({ name: 'own', script: { codeDir: 'code', entrypoint: 'train.py' } });
    });
    expectIssue(issues, 'configs[0].data', /only a config with a "script" may go without/);
    expect(issues.find((i) => i.path === 'configs[1].data')).toBeUndefined();
  });

  test('script.metric: the name defaults to the pointer\'s last key (unescaped), higherIsBetter to true, folds and file to null', () => {
    const spec = validateSpec({ ...base(), configs: [{ name: 'a', script: { codeDir: 'c', entrypoint: 't.py', metric: { pointer: '/scores/ndcg~110' } } }] }, { specFile: SPEC_FILE });
    expect(spec.configs[0].script!.metric).toEqual({ pointer: '/scores/ndcg~110', name: 'ndcg/10', higherIsBetter: true, folds: null, file: null });
    const full = validateSpec(
      {
        ...base(),
        configs: [{ name: 'a', script: { codeDir: 'c', entrypoint: 't.py', metric: { pointer: '/loss', name: 'val loss', higherIsBetter: false, folds: '/folds', file: 'out/m.json' }, requirements: 'req.txt', launcher: 'torchrun' } }],
      },
      { specFile: SPEC_FILE },
    );
    expect(full.configs[0].script).toMatchObject({ metric: { pointer: '/loss', name: 'val loss', higherIsBetter: false, folds: '/folds', file: 'out/m.json' }, requirements: 'req.txt', launcher: 'torchrun' });
  });

  test('fails when script.metric, requirements or launcher is wrong, naming each field and the fix at once', () => {
    const issues = issuesOf(
      (s) =>
        (s.configs[0].script = {
          codeDir: 'c',
          entrypoint: 't.py',
          metric: { pointer: 'ndcg@10', higherIsBetter: 'yes', folds: '/a/~2', file: '../m.json', unit: '%' },
          requirements: '/etc/requirements.txt',
          launcher: 'mpirun',
        }),
    );
    expectIssue(issues, 'configs[0].script.metric.pointer', /must be a JSON pointer \(RFC 6901\).*"\/ndcg@10"/);
    expectIssue(issues, 'configs[0].script.metric.higherIsBetter', /must be true .* or false/);
    expectIssue(issues, 'configs[0].script.metric.folds', /JSON pointer .* per-fold numbers/);
    expectIssue(issues, 'configs[0].script.metric.file', /inside codeDir .* without "\.\."/);
    expectIssue(issues, 'configs[0].script.metric.unit', /not a known metric key/);
    expectIssue(issues, 'configs[0].script.requirements', /pip requirements file inside codeDir/);
    expectIssue(issues, 'configs[0].script.launcher', /"python" .* or "torchrun"/);
  });

  test('fails when script.metric has no pointer, or its last key cannot name it and no name is given', () => {
    expectIssue(
      issuesOf((s) => (s.configs[0].script = { codeDir: 'c', entrypoint: 't.py', metric: { name: 'ndcg@10' } })),
      'configs[0].script.metric.pointer',
      /must be a JSON pointer/,
    );
    expectIssue(
      issuesOf((s) => (s.configs[0].script = { codeDir: 'c', entrypoint: 't.py', metric: { pointer: '/folds/' } })),
      'configs[0].script.metric.name',
      /cannot name the metric.*add "name"/,
    );
    expectIssue(
      issuesOf((s) => (s.configs[0].script = { codeDir: 'c', entrypoint: 't.py', metric: { pointer: '/m', name: '' } })),
      'configs[0].script.metric.name',
      /must be the metric's name/,
    );
  });

  test('fails when configs is empty', () => {
    expectIssue(issuesOf((s) => (s.configs = [])), 'configs', /non-empty list/);
  });

  test('fails when a value has the wrong type', () => {
    const issues = issuesOf((s) => {
      s.defaults.train.logQCorrection = 'yes';
      s.defaults.train.precision = 'half';
      s.data = 'gs://bucket/x';
    });
    expectIssue(issues, 'defaults.train.logQCorrection', /true or false/);
    expectIssue(issues, 'defaults.train.precision', /"auto", "fp32", "bf16", "fp16"/);
    expectIssue(issues, 'data', /unsupported scheme/);
  });

  test('a spec with several mistakes reports all of them at once, with path, value and fix', () => {
    let error: unknown;
    try {
      loadSpec(path.join(FIXTURES, 'broken-many.json'));
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(SpecError);
    const { issues, message } = error as SpecError;
    expect(issues.map((i) => i.path)).toEqual([
      'name',
      'budgetUsd',
      'defaults.instanceTypes[1]',
      'defaults.market',
      'defaults.maxRuntimeHours',
      'defaults.train.batchsize',
      'defaults.train.folds',
      'configs[0].train.epochs',
      'configs[1].name',
      'configs[2].train.batchSize',
      'configs[2].gpus',
      'configs[2].instanceTypes',
      'configs[2].train.precision',
      'configs[3].script.patches[0].find',
    ]);
    expect(message).toMatch(/broken-many\.json: 14 problems:/);
    expect(message).toContain('  - configs[2].train.batchSize (got -1): must be a whole number from 1 to 1048576;');
  });
});

describe('loading a spec file', () => {
  test('fails when the file does not exist, naming the path', () => {
    expect(() => loadSpec('sweeps/nope.json')).toThrow(/cannot read the sweep spec \(no such file, looked at .*sweeps\/nope\.json\)/);
  });

  test('fails when the JSON is malformed, with file:line:column and the fix', () => {
    expect(() => loadSpec(path.join(FIXTURES, 'syntax-error.json'))).toThrow(/syntax-error\.json:5:20: 1 problem:\n.*invalid JSON.*line 5, column 20.*no trailing comma/);
  });

  test('loads every example spec in sweeps/', () => {
    for (const name of ['seed-plan', 'demo']) {
      expect(loadSpec(path.join(__dirname, '..', '..', 'sweeps', `${name}.json`)).name).toBe(name);
    }
  });
});

describe('maxParallel', () => {
  test('is null (no cap) when left out, and kept when a whole number >= 1, even above the number of configs', () => {
    expect(validateSpec(base(), { specFile: SPEC_FILE }).maxParallel).toBeNull();
    const two = base();
    two.maxParallel = 2;
    two.configs.push({ name: 'b' }, { name: 'c' });
    expect(validateSpec(two, { specFile: SPEC_FILE }).maxParallel).toBe(2);
    const above = base();
    above.maxParallel = 5;
    expect(validateSpec(above, { specFile: SPEC_FILE }).maxParallel).toBe(5);
  });

  test('fails when maxParallel is 0, fractional or a string, naming the field and the fix, with every other problem at once', () => {
    for (const bad of [0, 1.5, '2', -1]) {
      const issues = issuesOf((s) => {
        s.maxParallel = bad;
        s.budgetUsd = 0;
      });
      expectIssue(issues, 'maxParallel', /positive whole number; set how many configs may hold an instance at once, e\.g\. 2/);
      expectIssue(issues, 'budgetUsd', /positive number/);
    }
  });
});
