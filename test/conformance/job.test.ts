/**
 * Conformance across the language boundary, job.json: what TypeScript renders for every example spec is
 * what the Python job runner and trainer accept, and both sides read the same schema the same way.
 */
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { contractProblems, EXIT_CODES, FINAL_STATES, storeKeys, TRAIN_PROPERTIES } from '../../lib/contract';
import { loadSpec, renderJob, storePrefix, TRAIN_DEFAULTS, validateSpec } from '../../lib/spec';
import { python, ROOT } from './python';

const SPECS = readdirSync(path.join(ROOT, 'sweeps')).filter((f) => f.endsWith('.json'));

interface Parsed {
  readonly file: string;
  readonly runnerProblem?: string;
  readonly schemaProblems: string[];
  readonly trainConfig?: Record<string, unknown>;
}

describe('job.json from TypeScript to Python', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'conformance-job-'));
  const rendered: { file: string; job: Record<string, unknown> }[] = [];
  for (const spec of SPECS) {
    const sweep = loadSpec(path.join(ROOT, 'sweeps', spec));
    for (const config of sweep.configs) {
      const job = renderJob(sweep, config.name, { store: storePrefix('s3://artifact-bucket', sweep.name, config.name) }) as unknown as Record<string, unknown>;
      const file = path.join(dir, `${sweep.name}--${config.name}.json`);
      writeFileSync(file, JSON.stringify(job, null, 2));
      rendered.push({ file, job });
    }
  }

  // One Python process parses every rendered job with the runner's parser, the schema and the trainer's settings.
  const parsed = python<Parsed[]>(
    `
import json, sys, contract
from pathlib import Path
from spot_runner.jobfile import parse_job
from spot_runner.runlog import JobError
from two_tower.config import build_config
out = []
for file in sys.argv[1:]:
    raw = Path(file).read_bytes()
    row = {"file": file, "schemaProblems": contract.problems("job", json.loads(raw))}
    try:
        parse_job(raw, file)
        row["trainConfig"] = build_config(Path(file), {}).to_json()
    except JobError as e:
        row["runnerProblem"] = e.message
    out.append(row)
print(json.dumps(out))
`,
    rendered.map((r) => r.file),
  );

  test('every example spec renders jobs (sanity: the suite checks something)', () => {
    expect(SPECS.length).toBeGreaterThanOrEqual(2);
    expect(rendered.length).toBeGreaterThanOrEqual(6);
  });

  test.each(rendered.map((r) => path.basename(r.file)))('%s: the runner accepts it, and it fits job.schema.json on both sides', (name) => {
    const r = rendered.find((x) => path.basename(x.file) === name)!;
    const p = parsed.find((x) => x.file === r.file)!;
    expect(contractProblems('job', r.job)).toEqual([]);
    expect(p.schemaProblems).toEqual([]);
    expect(p.runnerProblem).toBeUndefined();
    // The trainer resolves the same settings TypeScript rendered (plus maxExamples from `examples`).
    expect(p.trainConfig).toEqual({ ...(r.job.train as object), maxExamples: r.job.examples });
  });

  test('a job with retries, rendered by TypeScript, fits the schema and the runner reads its policy', () => {
    const spec = validateSpec(
      { name: 'retry', budgetUsd: 5, data: 's3://my-bucket/data/', defaults: { retries: { max: 2, onExitCodes: [1, 137] } }, configs: [{ name: 'a' }] },
      { specFile: path.join(dir, 'retry.json') },
    );
    const job = renderJob(spec, 'a', { store: storePrefix('s3://artifact-bucket', 'retry', 'a') });
    const file = path.join(dir, 'retry--a.json');
    writeFileSync(file, JSON.stringify(job));
    expect(contractProblems('job', job)).toEqual([]);
    const p = python<{ retries: unknown; first: boolean; listedNot: boolean; badInput: string }>(
      `
import json, sys
from pathlib import Path
from spot_runner import retries
from spot_runner.jobfile import parse_job
job = parse_job(Path(sys.argv[1]).read_bytes(), sys.argv[1])
print(json.dumps({"retries": job["retries"], "first": retries.decide(job["retries"], 137, 0).retry,
  "listedNot": retries.decide(job["retries"], 3, 0).retry, "badInput": retries.decide(job["retries"], 2, 0).cause}))
`,
      [file],
    );
    expect(p).toEqual({ retries: { max: 2, onExitCodes: [1, 137] }, first: true, listedNot: false, badInput: expect.stringMatching(/never retried/) });
  });

  test('fails when a job breaks the schema: both sides reject the same document', () => {
    const bad = { ...rendered[0].job, train: { ...(rendered[0].job.train as object), hiddenDim: 1e9, typo: 1 }, extra: true };
    const file = path.join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify(bad));
    const [p] = python<Parsed[]>(
      'import json, sys, contract\nprint(json.dumps([{"file": sys.argv[1], "schemaProblems": contract.problems("job", json.load(open(sys.argv[1])))}]))',
      [file],
    );
    const ts = contractProblems('job', bad);
    expect(ts.length).toBeGreaterThanOrEqual(3);
    expect(p.schemaProblems.length).toBe(ts.length);
    expect(ts.join('\n')).toMatch(/hiddenDim/);
    expect(p.schemaProblems.join('\n')).toMatch(/hiddenDim/);
  });
});

describe('names and settings both sides read from training/contract', () => {
  const py = python<{ defaults: Record<string, unknown>; final: string[]; exit: Record<string, Record<string, number>>; status: string; tag: Record<string, string> }>(`
import json, contract
from two_tower.config import TrainConfig
from spot_runner.status_board import STATUS
from spot_runner.sync import CHECKPOINT_TAGS
print(json.dumps({"defaults": {k: v for k, v in TrainConfig().to_json().items() if k != "maxExamples"},
  "final": sorted(contract.FINAL_STATES), "exit": contract.EXIT_CODES, "status": STATUS, "tag": CHECKPOINT_TAGS}))
`);

  test('the trainer defaults TypeScript fills in are the ones the Python trainer uses', () => {
    expect(py.defaults).toEqual(TRAIN_DEFAULTS);
    expect(Object.keys(TRAIN_DEFAULTS).sort()).toEqual(Object.keys(TRAIN_PROPERTIES).sort());
  });

  test('fails when a date-time is not one: both sides reject the same control.json', () => {
    const bad = { version: 1, action: 'stop', by: 'spot-sweep stop', reason: 'why', at: 'yesterday', id: 'r1' };
    const py = python<string[]>(`import json, sys, contract\nprint(json.dumps(contract.problems("control", json.loads(sys.argv[1]))))`, [JSON.stringify(bad)]);
    expect(contractProblems('control', bad).join()).toMatch(/^at: /);
    expect(py.join()).toMatch(/^at: /);
    expect(contractProblems('control', { ...bad, at: '2026-12-01T12:00:00Z' })).toEqual([]);
  });

  test('final states, exit codes, store keys and the checkpoint tag agree', () => {
    expect(py.final).toEqual([...FINAL_STATES].sort());
    expect(py.exit).toEqual(EXIT_CODES);
    expect(storeKeys.configFile('s', 'c', 'status').endsWith(`/${py.status}`)).toBe(true);
  });
});
