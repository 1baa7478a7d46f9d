/**
 * A redeploy, across the language boundary: the restart handler (lambda/config-restart/restart.ts) decides
 * from the job.json the sweep stack renders, and the real Python job runner then runs that job.json from a
 * local store. The digest the handler reports is the runner's own `jobDigest`; a config stopped with
 * `spot-sweep stop` and redeployed with a changed job runs the new job to its end (the deploy answers the
 * standing stop with a start request); a redeploy that leaves job.json as it was starts nothing.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ControlJson, EXIT_CODES, REQUESTERS, StatusJson, storeKeys } from '../../lib/contract';
import { renderJob, validateSpec } from '../../lib/spec';
import { fileStore, requestControl } from '../../lib/store';
import { DEPLOY_REQUESTER, onEvent, RestartDeps, RestartEvent } from '../../lambda/config-restart/restart';
import { PYTHON, TRAINING } from './python';

jest.setTimeout(120_000);

const SWEEP = 'redeploy';
const CONFIG = 'o';
const root = mkdtempSync(path.join(tmpdir(), 'restart-real-runner-'));
const storeDir = path.join(root, 'store');
const store = fileStore(storeDir);
const code = path.join(root, 'code');
const data = path.join(root, 'data');
mkdirSync(code);
mkdirSync(data);
writeFileSync(path.join(data, 'pairs.csv'), 'q,d\n');
// Longer than several sync ticks (0.5 s below): a stop still standing in control.json would be obeyed.
writeFileSync(path.join(code, 'train.py'), 'import json, sys, time\ntime.sleep(3)\njson.dump({"args": sys.argv[1:]}, open("result.json", "w"))\n');

/** The config's job.json as the sweep stack renders it (its SSM parameter value), with these script args. */
function jobText(args: string[]): string {
  const spec = validateSpec(
    { name: SWEEP, budgetUsd: 1, data, configs: [{ name: CONFIG, instanceTypes: ['g5.xlarge'], script: { codeDir: code, entrypoint: 'train.py', args, results: 'result.json' } }] },
    {},
  );
  const storeUri = `${pathToFileURL(path.join(storeDir, storeKeys.config(SWEEP, CONFIG))).href}/`;
  return JSON.stringify(renderJob(spec, CONFIG, { store: storeUri }));
}

/** The real runner, as the bootstrap starts it, on the job.json CloudFormation wrote. */
function runRunner(job: string): { code: number | null; output: string } {
  const file = path.join(root, `job-${Date.now()}.json`);
  writeFileSync(file, job);
  const done = spawnSync(PYTHON, ['-m', 'spot_runner.job', '--job', file, '--workdir', path.join(root, 'work'), '--sync-seconds', '0.5'], {
    cwd: TRAINING,
    env: { ...process.env, PYTHONPATH: TRAINING, OMP_NUM_THREADS: '1', SPOT_SWEEP_IMDS_ENDPOINT: 'http://127.0.0.1:9' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: done.status, output: `${done.stdout}${done.stderr}` };
}

const status = (): StatusJson => JSON.parse(readFileSync(path.join(storeDir, storeKeys.configFile(SWEEP, CONFIG, 'status')), 'utf8')) as StatusJson;
const control = async (): Promise<ControlJson> => JSON.parse((await store.read(storeKeys.configFile(SWEEP, CONFIG, 'control')))!) as ControlJson;

const started: string[] = [];
// No instance is live between the runs: the runner of the first job had ended (STOPPED) before the redeploy.
const deps: RestartDeps = {
  store,
  startGroup: async (group) => void started.push(group),
  liveInstances: async () => [],
  replaceInstance: async (id) => {
    throw new Error(`nothing should be replaced, asked for ${id}`);
  },
  log: () => undefined,
};
const props = (job: string) => ({ Config: CONFIG, GroupName: `SpotSweep-${SWEEP}-${CONFIG}`, Job: job });
const update = (before: string, after: string): RestartEvent => ({
  RequestType: 'Update',
  PhysicalResourceId: props(after).GroupName,
  OldResourceProperties: props(before),
  ResourceProperties: props(after),
});

test('a config stopped with spot-sweep stop and redeployed with a changed job.json runs the new job to its end; an unchanged redeploy starts nothing', async () => {
  const first = jobText(['--fold', '1']);
  const edited = jobText(['--fold', '2']);
  expect(edited).not.toBe(first);

  // Deployed, then stopped before its instance ran the job: the runner obeys the stop at start.
  expect((await onEvent(deps, SWEEP, { RequestType: 'Create', ResourceProperties: props(first) })).Data.Started).toBe('true');
  const stop = await requestControl(store, SWEEP, CONFIG, { action: 'stop', by: REQUESTERS.cli, reason: 'stopped with spot-sweep stop' });
  const stopped = runRunner(first);
  expect(stopped.code).toBe(EXIT_CODES.runner.stopped);
  expect(status()).toMatchObject({ state: 'STOPPED', stopRequestId: stop.id });

  // cdk deploy with the edited config: CloudFormation sends Update with the old and new job.json.
  const redeploy = await onEvent(deps, SWEEP, update(first, edited));
  expect(redeploy.Data.Started).toBe('true');
  expect(await control()).toMatchObject({ action: 'start', by: DEPLOY_REQUESTER });
  expect(started).toEqual(['SpotSweep-redeploy-o', 'SpotSweep-redeploy-o']);

  // The instance the group launches runs the new job from scratch, past every sync tick, to SUCCEEDED.
  const ran = runRunner(edited);
  expect({ code: ran.code, state: status().state }).toEqual({ code: EXIT_CODES.runner.ok, state: 'SUCCEEDED' });
  expect(ran.output).toContain('job.json changed since the last attempt');
  // The digest the handler compares is the one the runner records.
  expect(status().jobDigest).toBe(redeploy.Data.JobDigest);

  // Redeployed unchanged (CloudFormation re-sends the same value, or another property changed): nothing starts.
  const again = await onEvent(deps, SWEEP, update(edited, edited));
  expect(again.Data).toMatchObject({ Started: 'false', JobDigest: status().jobDigest });
  expect(started).toHaveLength(2);
});
