import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * The demo sweep, for real: the dataset `npm run demo` makes (two_tower.synth --query-noise 0.8) and
 * sweeps/demo.json's configs, run by `spot-sweep local` (the real job runner and trainer from the repo's
 * .venv) into a temporary store. Returns each config's results.json text, in the spec's order.
 */
const ROOT = path.join(__dirname, '..', '..');
const PYTHON = path.join(ROOT, '.venv', 'bin', 'python');

export interface DemoRun {
  readonly dir: string;
  readonly configs: { config: string; resultsText?: string; statusText?: string }[];
}

export function runDemo(): DemoRun {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'spot-sweep-demo-'));
  const env = { PATH: process.env.PATH, HOME: os.tmpdir(), OMP_NUM_THREADS: '1', PYTHONPATH: path.join(ROOT, 'training') };
  const synth = spawnSync(PYTHON, ['-m', 'two_tower.synth', '--out', path.join(dir, 'data'), '--query-noise', '0.8'], { env, encoding: 'utf8', timeout: 120_000 });
  if (synth.status !== 0) throw new Error(`synth failed (is the venv set up? bash training/setup-venv.sh): ${synth.stderr}`);
  const spec = JSON.parse(readFileSync(path.join(ROOT, 'sweeps', 'demo.json'), 'utf8')) as { name: string; data: string; configs: { name: string }[] };
  spec.data = './data';
  writeFileSync(path.join(dir, 'demo.json'), JSON.stringify(spec, null, 2));
  const run = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'spot-sweep.js'), 'local', 'demo.json', '--store', 'store'], { cwd: dir, env, encoding: 'utf8', timeout: 300_000 });
  if (run.status !== 0) throw new Error(`spot-sweep local failed (${run.status}):\n${run.stdout}\n${run.stderr}`);
  const read = (config: string, file: string): string | undefined => {
    try {
      return readFileSync(path.join(dir, 'store', 'sweeps', spec.name, config, file), 'utf8');
    } catch {
      return undefined;
    }
  };
  return { dir, configs: spec.configs.map((c) => ({ config: c.name, resultsText: read(c.name, 'results.json'), statusText: read(c.name, 'status.json') })) };
}
