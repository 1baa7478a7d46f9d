/**
 * Conformance across the language boundary, the other way: the real Python job runner ends configs in
 * every way it can (training/tests/conformance/make_artifacts.py: success, bad input, interruption,
 * a stop request, script success, script failure), and what it wrote is read by the TypeScript side:
 * every file fits its schema, the CLI's status view, the leaderboard and the report agree with it.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { buildLeaderboardDocument } from '../../lib/results/leaderboard-document';
import { renderReport } from '../../lib/results/report';
import { formatStatus, mergeView } from '../../lib/cli/commands/status';
import { ConfigFile, contractProblems, EXIT_CODES, SchemaName, storeKeys } from '../../lib/contract';
import { buildLeaderboard } from '../../lib/results/leaderboard';
import { validateSpec } from '../../lib/spec';
import { python, TRAINING } from './python';

jest.setTimeout(240_000);

const SWEEP = 'conformance';
const CONFIGS = ['trained', 'bad-data', 'interrupted', 'stopped', 'script', 'script-fails'] as const;
const root = mkdtempSync(path.join(tmpdir(), 'conformance-artifacts-'));
const store = path.join(root, 'store');
let codes: Record<string, number>;

const read = (config: string, file: ConfigFile): string | undefined => {
  try {
    return readFileSync(path.join(store, storeKeys.configFile(SWEEP, config, file)), 'utf8');
  } catch {
    return undefined;
  }
};

beforeAll(() => {
  codes = python<Record<string, number>>(
    `import runpy, sys\nsys.argv = ["make_artifacts.py", sys.argv[1]]\nrunpy.run_path(${JSON.stringify(path.join(TRAINING, 'tests', 'conformance', 'make_artifacts.py'))}, run_name="__main__")`,
    [store],
    200_000,
  );
});

test('the runner ends each scenario with the exit code the contract gives it', () => {
  expect(codes).toEqual({
    trained: EXIT_CODES.runner.ok,
    'bad-data': EXIT_CODES.runner.badInput,
    interrupted: EXIT_CODES.runner.interrupted,
    stopped: EXIT_CODES.runner.stopped,
    script: EXIT_CODES.runner.ok,
    'script-fails': EXIT_CODES.runner.crashed,
  });
});

test.each(CONFIGS)('%s: every file the runner wrote fits its schema', (config) => {
  const files: [ConfigFile, SchemaName][] = [
    ['job', 'job'],
    ['status', 'status'],
    ['results', 'results'],
    ['control', 'control'],
    ['lease', 'lease'],
  ];
  let checked = 0;
  for (const [file, schema] of files) {
    const text = read(config, file);
    if (text === undefined) continue;
    expect([file, contractProblems(schema, JSON.parse(text))]).toEqual([file, []]);
    checked += 1;
  }
  expect(checked).toBeGreaterThanOrEqual(2);
  // A job that did not succeed leaves no results.json that could pass for success.
  expect(read(config, 'results') !== undefined).toBe(codes[config] === EXIT_CODES.runner.ok);
});

const artifacts = () =>
  CONFIGS.map((config) => ({ config, resultsText: read(config, 'results'), statusText: read(config, 'status'), controlText: read(config, 'control') }));

test('the leaderboard ranks the trained config, lists the script success without a score, and reports no problem', () => {
  const board = buildLeaderboard(artifacts());
  expect(board.problems).toEqual([]);
  const row = (c: string) => board.rows.find((r) => r.config === c)!;
  expect(board.rows[0]).toMatchObject({ config: 'trained', state: 'SUCCEEDED', mode: 'train' });
  expect(row('trained').ndcgMean).toBeGreaterThan(0);
  expect(row('script')).toMatchObject({ state: 'SUCCEEDED', mode: 'script', resultFiles: ['results/r.json'] });
  expect(row('script').problem).toBeUndefined();
  expect(row('stopped')).toMatchObject({ state: 'STOPPED', stoppedBy: 'spot-sweep stop' });
  expect(row('interrupted').state).toBe('PENDING');
  expect(row('bad-data')).toMatchObject({ state: 'FAILED' });
  expect(row('bad-data').problem).toMatch(/bad input/);
  expect(row('script-fails').problem).toMatch(/exited with code 1/);
});

test('the report lists every config and shows no problem for the script success', () => {
  const html = renderReport(buildLeaderboardDocument(SWEEP, artifacts(), undefined, '2026-12-01T00:00:00Z'));
  for (const config of CONFIGS) expect(html).toContain(config);
  expect(html).not.toContain('<h2>Problems</h2>');
  expect(html).toMatch(/script: 1 result file\(s\), no metric declared/);
  expect(html).not.toMatch(/results\.json unreadable/);
});

test("the CLI's status view reads every status.json: states, 1-based fold/epoch, who stopped a job", () => {
  const spec = validateSpec({ name: SWEEP, budgetUsd: 1, data: root, configs: CONFIGS.map((name) => ({ name })) });
  const view = mergeView(
    spec,
    { status: CONFIGS.map((c) => read(c, 'status')), control: CONFIGS.map((c) => read(c, 'control')) },
    { region: 'local', bucket: 'local', instances: new Map(), groups: new Map() },
  );
  const text = formatStatus(view);
  expect(text).toMatch(/^trained\s+SUCCEEDED\s.*fold 2\/2 ep 1\/1/m);
  expect(text).toMatch(/^stopped\s+STOPPED\s/m);
  expect(text).toMatch(/stopped by spot-sweep stop/);
  expect(text).toMatch(/^bad-data\s+FAILED\s/m);
  expect(text).not.toMatch(/fold 3\/2|ep 2\/1/);
});
