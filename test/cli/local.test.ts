import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { CreateBucketCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { contractProblems, EXIT_CODES, REQUESTERS } from '../../lib/contract';
import { controlDoc } from '../results/fixtures';

/**
 * `spot-sweep local` end to end: the real CLI, the real Python job runner (python -m spot_runner.job)
 * and trainer (from the repo's .venv, made by training/setup-venv.sh), on a small synthetic dataset.
 */
const ROOT = path.join(__dirname, '..', '..');
const PYTHON = path.join(ROOT, '.venv', 'bin', 'python');
jest.setTimeout(240_000);

function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: os.tmpdir(), OMP_NUM_THREADS: '1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_REGION: 'us-east-1', ...extra };
}

function spotSweep(cwd: string, args: string[], extra: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'spot-sweep.js'), ...args], { cwd, env: env(extra), encoding: 'utf8', timeout: 200_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A work folder with a synthetic dataset and a two-config spec that uses it. */
function workspace(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'spot-sweep-local-'));
  const synth = spawnSync(PYTHON, ['-m', 'two_tower.synth', '--out', path.join(dir, 'data'), '--queries', '200', '--docs', '400', '--dim', '16'], {
    env: env({ PYTHONPATH: path.join(ROOT, 'training') }),
    encoding: 'utf8',
  });
  if (synth.status !== 0) throw new Error(`synth failed (is the venv set up? bash training/setup-venv.sh): ${synth.stderr}`);
  const spec = {
    name: 'local-test',
    budgetUsd: 1,
    data: './data',
    defaults: { instanceTypes: ['g4dn.xlarge'], train: { folds: 2, epochs: 1, batchSize: 64, hiddenDim: 16 } },
    configs: [{ name: 'small', examples: 1000 }, { name: 'wide', examples: 1000, train: { hiddenDim: 32 } }],
  };
  writeFileSync(path.join(dir, 'sweep.json'), JSON.stringify(spec, null, 2));
  // A user's own script: it writes two result files and declares no metric.
  mkdirSync(path.join(dir, 'code'));
  writeFileSync(
    path.join(dir, 'code', 'train.py'),
    [
      'import json, os, sys',
      'os.makedirs("results", exist_ok=True)',
      'json.dump({"args": sys.argv[1:]}, open("results/run.json", "w"))',
      'open("results/notes.txt", "w").write("done\\n")',
    ].join('\n'),
  );
  const script = {
    name: 'own-script',
    budgetUsd: 1,
    data: './data',
    defaults: { instanceTypes: ['g4dn.xlarge'] },
    configs: [{ name: 'mine', examples: 100, script: { codeDir: './code', entrypoint: 'train.py', args: ['--lr', '0.1'], results: 'results/*' } }],
  };
  writeFileSync(path.join(dir, 'script.json'), JSON.stringify(script, null, 2));
  return dir;
}

describe('spot-sweep local', () => {
  const dir = workspace();

  test('runs every config through the job runner and prints the leaderboard', () => {
    const r = spotSweep(dir, ['local', 'sweep.json', '--store', 'store']);
    expect(r.stderr).not.toMatch(/Traceback/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Leaderboard of "local-test"/);
    expect(r.stdout).toMatch(/^1\s+(small|wide)\s+SUCCEEDED\s+0\.\d{4} ± 0\.\d{4}/m);
    expect(r.stdout).toMatch(/^2\s+(small|wide)\s+SUCCEEDED/m);
    for (const config of ['small', 'wide']) {
      const prefix = path.join(dir, 'store', 'sweeps', 'local-test', config);
      const job = JSON.parse(readFileSync(path.join(prefix, 'job.json'), 'utf8'));
      expect(job).toMatchObject({ version: 1, sweep: 'local-test', config, data: path.join(dir, 'data'), examples: 1000 });
      const results = JSON.parse(readFileSync(path.join(prefix, 'results.json'), 'utf8'));
      expect(results.folds).toHaveLength(2);
      expect(JSON.parse(readFileSync(path.join(prefix, 'status.json'), 'utf8')).state).toBe('SUCCEEDED');
      expect(existsSync(path.join(prefix, 'train.log'))).toBe(true);
    }
    // The live view, without a terminal: a line per config and state, the trainer's own lines only in train.log.
    const before = r.stdout.slice(0, r.stdout.indexOf('Leaderboard of'));
    expect(before).toMatch(/^\[1\/2\]\s+small\s+SUCCEEDED\s+\d+ s$/m);
    expect(before).toMatch(/^\[2\/2\]\s+wide\s+SUCCEEDED\s+\d+ s$/m);
    expect(before).toMatch(/^2\/2 configs done, \d+ s elapsed$/m);
    expect(before).not.toMatch(/checkpoint:|^progress /m);
    const lines = before.trim().split('\n');
    // The sweep line, per config at most its three states (BOOTSTRAPPING, TRAINING, SUCCEEDED), the summary.
    expect(lines.length).toBeLessThanOrEqual(1 + 2 * 3 + 1);
    expect(readFileSync(path.join(dir, 'store', 'sweeps', 'local-test', 'small', 'train.log'), 'utf8')).toMatch(/checkpoint: /);
    // The same leaderboard.json and report.html as the results Lambda writes on AWS, paths printed.
    const sweepDir = path.join(dir, 'store', 'sweeps', 'local-test');
    expect(r.stdout).toContain(`Leaderboard: ${path.join(sweepDir, 'leaderboard.json')}\nReport: ${path.join(sweepDir, 'report.html')}\n`);
    const board = JSON.parse(readFileSync(path.join(sweepDir, 'leaderboard.json'), 'utf8'));
    expect(board.rows.map((row: { config: string; rank?: number }) => [row.rank, row.config]).sort()).toEqual([[1, expect.any(String)], [2, expect.any(String)]]);
    expect(readFileSync(path.join(sweepDir, 'report.html'), 'utf8')).toMatch(/<html[\s\S]*small[\s\S]*wide/);
    // Each config kept its final model: named under the table, linked from the report relative to it.
    for (const config of ['small', 'wide']) {
      expect(r.stdout).toContain(`Model of ${config}: ${path.join(sweepDir, config, 'model')}${path.sep}\n`);
      expect(readFileSync(path.join(sweepDir, 'report.html'), 'utf8')).toContain(`<a href="${config}/model/model.json">model.json</a>`);
      expect(existsSync(path.join(sweepDir, config, 'model', 'model.safetensors'))).toBe(true);
    }
  });

  test('results --store reads the local store, as text, as JSON, and copies its report', () => {
    const text = spotSweep(dir, ['results', 'sweep.json', '--store', 'store']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^Leaderboard of "local-test" \(.*store\/sweeps\/local-test\/\):$/m);
    expect(text.stdout).toMatch(/^1\s+(small|wide)\s+SUCCEEDED\s+0\.\d{4} ± 0\.\d{4}/m);
    const json = spotSweep(dir, ['results', 'sweep.json', '--store', 'store', '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout).rows.map((row: { config: string }) => row.config).sort()).toEqual(['small', 'wide']);
    const report = spotSweep(dir, ['results', 'sweep.json', '--store', 'store', '--report-file', 'copy.html']);
    expect(report.stdout).toContain(`Report: ${path.join(dir, 'copy.html')}`);
    expect(readFileSync(path.join(dir, 'copy.html'), 'utf8')).toBe(readFileSync(path.join(dir, 'store', 'sweeps', 'local-test', 'report.html'), 'utf8'));
    const missing = spotSweep(dir, ['results', 'sweep.json', '--store', 'no-such-store']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--store no-such-store: no such directory/);
  });

  test('results --download copies results, logs and the report out of the local store, and prints what came', () => {
    const r = spotSweep(dir, ['results', 'sweep.json', '--store', 'store', '--download', 'fetched']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Downloaded \\d+ file\\(s\\), [\\d.]+ [KM]iB, to ${path.join(dir, 'fetched').replace(/[/.]/g, '\\$&')}:$`, 'm'));
    expect(r.stdout).toMatch(/^ {2}small {2}\d+ file\(s\), with its model \(model\/\)$/m);
    for (const config of ['small', 'wide']) {
      const from = path.join(dir, 'store', 'sweeps', 'local-test', config);
      for (const name of ['results.json', 'train.log', 'status.json']) {
        expect(readFileSync(path.join(dir, 'fetched', config, name), 'utf8')).toBe(readFileSync(path.join(from, name), 'utf8'));
      }
      expect(existsSync(path.join(dir, 'fetched', config, 'checkpoints'))).toBe(false);
      expect(readFileSync(path.join(dir, 'fetched', config, 'model', 'model.safetensors'))).toEqual(readFileSync(path.join(from, 'model', 'model.safetensors')));
    }
    expect(existsSync(path.join(dir, 'fetched', 'report.html'))).toBe(true);
    expect(existsSync(path.join(dir, 'fetched', 'leaderboard.json'))).toBe(true);
    // Into the store itself it would replace the store's own folders (checkpoints left out): refused.
    const inside = spotSweep(dir, ['results', 'sweep.json', '--store', 'store', '--download', path.join('store', 'sweeps', 'local-test')]);
    expect(inside.code).toBe(2);
    expect(inside.stderr).toContain(`is inside the store ${path.join(dir, 'store')}`);
    expect(existsSync(path.join(dir, 'store', 'sweeps', 'local-test', 'small', 'checkpoints'))).toBe(true);
  });

  test("--verbose shows the runner's and the trainer's own lines instead of the live view", () => {
    const r = spotSweep(dir, ['local', 'sweep.json', '--store', 'store-verbose', '--config', 'small', '--verbose']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^== \[1\/1\] small: 1,000 examples, 2 folds x 1 epoch\(s\)$/m);
    expect(`${r.stdout}${r.stderr}`).toMatch(/checkpoint: /);
    expect(r.stdout).not.toMatch(/^\[1\/1\]\s+small\s+SUCCEEDED/m);
  });

  test("a config that fails prints its state and the runner's last lines, and the exit code says so", () => {
    const spec = JSON.parse(readFileSync(path.join(dir, 'sweep.json'), 'utf8'));
    // Relevance must be an integer: the trainer refuses the data, naming the file and row.
    mkdirSync(path.join(dir, 'bad-data'), { recursive: true });
    for (const f of ['query_embeddings.npy', 'query_ids.txt', 'doc_embeddings.npy', 'doc_ids.txt']) writeFileSync(path.join(dir, 'bad-data', f), readFileSync(path.join(dir, 'data', f)));
    const pairs = readFileSync(path.join(dir, 'data', 'pairs.csv'), 'utf8').split('\n');
    pairs[1] = pairs[1].replace(/,\d+(,[01])?$/, ',x$1');
    writeFileSync(path.join(dir, 'bad-data', 'pairs.csv'), pairs.join('\n'));
    writeFileSync(path.join(dir, 'bad.json'), JSON.stringify({ ...spec, name: 'bad', data: './bad-data', configs: [spec.configs[0]] }));
    const r = spotSweep(dir, ['local', 'bad.json', '--store', 'store-bad']);
    expect(r.code).toBe(4);
    expect(r.stdout).toMatch(/^\[1\/1\]\s+small\s+FAILED/m);
    expect(r.stdout).toMatch(/^small ended FAILED \(exit 2\); the job runner's last lines \(all of them: .*train\.log\):$/m);
    expect(r.stdout).toMatch(/^ {2}\| .*pairs\.csv/m);
    expect(r.stdout).not.toMatch(/Traceback/);
  });

  test('a second run does not train again and prints the same leaderboard', () => {
    const before = readFileSync(path.join(dir, 'store', 'sweeps', 'local-test', 'small', 'results.json'), 'utf8');
    const r = spotSweep(dir, ['local', 'sweep.json', '--store', 'store', '--config', 'small']);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/fold 1\/2 epoch/);
    expect(readFileSync(path.join(dir, 'store', 'sweeps', 'local-test', 'small', 'results.json'), 'utf8')).toBe(before);
  });

  test('a script config without data whose metric is nDCG@10 ranks beside the built-in trainer; a declared metric it does not write fails the run', () => {
    mkdirSync(path.join(dir, 'scored-code'), { recursive: true });
    writeFileSync(
      path.join(dir, 'scored-code', 'train.py'),
      ['import json, os', 'os.makedirs("results", exist_ok=True)', 'json.dump({"nDCG@10": 0.99, "folds": [0.98, 1.0]}, open("results/m.json", "w"))'].join('\n'),
    );
    const scored = { codeDir: './scored-code', entrypoint: 'train.py', results: 'results/*.json', metric: { pointer: '/nDCG@10', folds: '/folds' } };
    const mixed = {
      name: 'mixed',
      budgetUsd: 1,
      defaults: { instanceTypes: ['g4dn.xlarge'], train: { folds: 2, epochs: 1, batchSize: 64, hiddenDim: 16 } },
      configs: [
        { name: 'builtin', examples: 1000, data: './data' },
        { name: 'scripted', script: scored },
      ],
    };
    writeFileSync(path.join(dir, 'mixed.json'), JSON.stringify(mixed, null, 2));
    const r = spotSweep(dir, ['local', 'mixed.json', '--store', 'store']);
    expect(r.stderr).not.toMatch(/Traceback/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^1\s+scripted\s+SUCCEEDED\s+0\.9900 ± 0\.0141\s.*script: nDCG@10 from results\/m\.json$/m);
    expect(r.stdout).toMatch(/^2\s+builtin\s+SUCCEEDED\s+0\.\d{4} ± 0\.\d{4}/m);
    const job = JSON.parse(readFileSync(path.join(dir, 'store', 'sweeps', 'mixed', 'scripted', 'job.json'), 'utf8'));
    expect(job.data).toBeNull();

    writeFileSync(
      path.join(dir, 'mixed-bad.json'),
      JSON.stringify({ ...mixed, name: 'mixed-bad', configs: [{ name: 'scripted', script: { ...scored, metric: { pointer: '/mrr' } } }] }, null, 2),
    );
    const bad = spotSweep(dir, ['local', 'mixed-bad.json', '--store', 'store']);
    expect(bad.code).toBe(EXIT_CODES.cli.someFailed);
    expect(bad.stdout).toMatch(/^-\s+scripted\s+FAILED\s.*results\/m\.json holds nothing at the pointer '\/mrr'/m);
  });

  test('a script-mode config that succeeds without a score is a success (exit 0), listed without a score and no problem', () => {
    const r = spotSweep(dir, ['local', 'script.json', '--store', 'store']);
    expect(r.stderr).not.toMatch(/Traceback/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^-\s+mine\s+SUCCEEDED\s+-\s+-\s+-\s+script: 2 result file\(s\), no metric declared$/m);
    expect(r.stdout).not.toContain('Problems:');
    const prefix = path.join(dir, 'store', 'sweeps', 'own-script', 'mine');
    const results = JSON.parse(readFileSync(path.join(prefix, 'results.json'), 'utf8'));
    expect(contractProblems('results', results)).toEqual([]);
    expect(results).toMatchObject({ mode: 'script', files: ['results/notes.txt', 'results/run.json'] });
  });

  test('a script config that fails once and has retries is run again, shows retry 1/1 and succeeds', () => {
    const code = path.join(dir, 'flaky');
    mkdirSync(code);
    // Fails with exit 3 on its first run (a marker file in the test's folder), succeeds on the second.
    writeFileSync(
      path.join(code, 'train.py'),
      [
        'import os, pathlib, sys',
        `marker = pathlib.Path(${JSON.stringify(path.join(dir, 'flaky-ran'))})`,
        'if not marker.exists():',
        '    marker.write_text("1")',
        '    sys.exit(3)',
        'os.makedirs("results", exist_ok=True)',
        'open("results/ok.json", "w").write("{}")',
      ].join('\n'),
    );
    const spec = { name: 'retry-test', budgetUsd: 1, defaults: { instanceTypes: ['g4dn.xlarge'], retries: { max: 1 } }, configs: [{ name: 'flaky', script: { codeDir: './flaky', entrypoint: 'train.py', results: 'results/*' } }] };
    writeFileSync(path.join(dir, 'retry.json'), JSON.stringify(spec));
    const r = spotSweep(dir, ['local', 'retry.json', '--store', 'store']);
    expect(r.stderr).not.toMatch(/Traceback/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/flaky\s+SUCCEEDED\s+retry 1\/1/);
    const status = JSON.parse(readFileSync(path.join(dir, 'store', 'sweeps', 'retry-test', 'flaky', 'status.json'), 'utf8'));
    expect(contractProblems('status', status)).toEqual([]);
    expect(status).toMatchObject({ state: 'SUCCEEDED', attempts: 2, retries: { used: 1, max: 1 } });
    expect(status.history.filter((h: { state: string }) => h.state === 'FAILED')).toEqual([expect.objectContaining({ attempt: 1, exitCode: 3 })]);
  });

  test('a config stopped earlier gets a start request before it runs', () => {
    const key = path.join(dir, 'store3', 'sweeps', 'own-script', 'mine', 'control.json');
    mkdirSync(path.dirname(key), { recursive: true });
    writeFileSync(key, JSON.stringify(controlDoc('stop', REQUESTERS.budgetGuard, 'the sweep reached its budget of $1.00')));
    const r = spotSweep(dir, ['local', 'script.json', '--store', 'store3']);
    expect(r.stdout).toContain('mine: control.json held a stop request (by budget-guard at 2026-11-28T10:00:00Z); wrote a start request so the job runs.');
    const control = JSON.parse(readFileSync(key, 'utf8'));
    expect(contractProblems('control', control)).toEqual([]);
    expect(control).toMatchObject({ action: 'start', by: REQUESTERS.local, reason: 'run with spot-sweep local' });
    expect(r.code).toBe(0);
  });

  test('fails when the data directory is missing, naming it and how to make one, before any job runs', () => {
    const spec = JSON.parse(readFileSync(path.join(dir, 'sweep.json'), 'utf8'));
    writeFileSync(path.join(dir, 'nodata.json'), JSON.stringify({ ...spec, name: 'nodata', data: './missing' }));
    const r = spotSweep(dir, ['local', 'nodata.json', '--store', 'store2']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`data directory ${path.join(dir, 'missing')} (configs small, wide) does not exist`);
    expect(r.stderr).toContain('-m two_tower.synth --out missing');
    expect(existsSync(path.join(dir, 'store2'))).toBe(false);
  });

  test('fails when the encoder directory is missing, naming it and how to build one, before any job runs', () => {
    const spec = JSON.parse(readFileSync(path.join(dir, 'sweep.json'), 'utf8'));
    writeFileSync(path.join(dir, 'noencoder.json'), JSON.stringify({ ...spec, name: 'noencoder', defaults: { ...spec.defaults, encoder: './no-encoder' } }));
    const r = spotSweep(dir, ['local', 'noencoder.json', '--store', 'store-noencoder']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`encoder directory ${path.join(dir, 'no-encoder')} (configs small, wide) does not exist`);
    expect(r.stderr).toContain('-m two_tower.tiny_encoder --out no-encoder --texts');
    expect(existsSync(path.join(dir, 'store-noencoder'))).toBe(false);
  });

  test('fails when --config names no config of the spec, or --s3-endpoint comes without --bucket', () => {
    const unknown = spotSweep(dir, ['local', 'sweep.json', '--config', 'nope']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--config nope: the spec has no such config; its configs are small, wide.');
    const typo = spotSweep(dir, ['local', 'sweep.json', '--config', 'smal']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('--config smal: the spec has no such config; did you mean "small"? Its configs are small, wide.');
    expect(typo.stderr).toMatch(/\nUsage: spot-sweep local <spec\.json> /);
    const half = spotSweep(dir, ['local', 'sweep.json', '--s3-endpoint', 'http://127.0.0.1:1']);
    expect(half.code).toBe(2);
    expect(half.stderr).toContain('--s3-endpoint and --bucket go together');
  });

  describe('against a local S3 server (moto_server on 127.0.0.1)', () => {
    let server: ChildProcess | undefined;
    let endpoint = '';

    beforeAll(async () => {
      const port = await new Promise<number>((resolve) => {
        const probe = createServer().listen(0, '127.0.0.1', () => {
          const p = (probe.address() as { port: number }).port;
          probe.close(() => resolve(p));
        });
      });
      endpoint = `http://127.0.0.1:${port}`;
      server = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
      const s3 = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
      for (let i = 0; ; i++) {
        try {
          await s3.send(new CreateBucketCommand({ Bucket: 'sweep-bucket' }));
          break;
        } catch (err) {
          if (i > 100) throw err;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    });
    afterAll(() => server?.kill());

    test('writes job.json, status, log and results to the bucket and prints the leaderboard', async () => {
      const r = spotSweep(dir, ['local', 'sweep.json', '--s3-endpoint', endpoint, '--bucket', 'sweep-bucket', '--config', 'small']);
      expect(r.stderr).not.toMatch(/Traceback/);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^1\s+small\s+SUCCEEDED/m);
      const s3 = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
      const get = async (key: string) => (await s3.send(new GetObjectCommand({ Bucket: 'sweep-bucket', Key: `sweeps/local-test/small/${key}` }))).Body?.transformToString();
      expect(JSON.parse((await get('results.json')) ?? '{}').ndcg10.ddof).toBe(1);
      expect(JSON.parse((await get('status.json')) ?? '{}').state).toBe('SUCCEEDED');
      expect(JSON.parse((await get('job.json')) ?? '{}').store).toBe('s3://sweep-bucket/sweeps/local-test/small/');
      expect(await get('train.log')).toMatch(/nDCG@10/);
    });
  });
});
