import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

/** The repository root and the Python the tests run (the repo's .venv, made by training/setup-venv.sh). */
export const ROOT = path.resolve(__dirname, '..', '..');
export const PYTHON = path.join(ROOT, '.venv', 'bin', 'python');
export const TRAINING = path.join(ROOT, 'training');

/** Runs Python code with training/ on the path; returns its stdout parsed as JSON. */
export function python<T>(code: string, args: readonly string[] = [], timeoutMs = 120_000): T {
  const done = spawnSync(PYTHON, ['-c', code, ...args], {
    cwd: TRAINING,
    env: { ...process.env, PYTHONPATH: TRAINING, OMP_NUM_THREADS: '1', SPOT_SWEEP_IMDS_ENDPOINT: 'http://127.0.0.1:9' },
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (done.status !== 0) throw new Error(`python failed (${done.status}; is the venv set up? bash training/setup-venv.sh):\n${done.stderr}`);
  return JSON.parse(done.stdout) as T;
}
