import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { groupName, REQUESTERS, storeKeys } from '../../../lib/contract';
import { fileStore, readControl, SweepStore } from '../../../lib/store';
import { jobDigest, onEvent, RestartDeps } from '../../../lambda/config-restart/restart';
import { controlDoc, statusDoc, text } from '../../results/fixtures';

/** The restart handler of a sweep with maxParallel: it makes configs pending and leaves starting them to the scheduler. */
const SWEEP = 'capped';
const JOB_A = JSON.stringify({ version: 1, config: 'a', train: { epochs: 2 } });
const JOB_B = JSON.stringify({ version: 1, config: 'a', train: { epochs: 3 } });
let dir: string;
let store: SweepStore;
let calls: string[];

function deps(live: string[] = []): RestartDeps {
  return {
    store,
    maxParallel: 2,
    startGroup: async (g) => void calls.push(`start ${g}`),
    liveInstances: async () => live,
    replaceInstance: async (id) => void calls.push(`replace ${id}`),
    log: () => undefined,
  };
}
const props = (job: string) => ({ Config: 'a', GroupName: groupName(SWEEP, 'a'), Job: job });

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'capped-restart-'));
  store = fileStore(dir);
  calls = [];
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test('Create starts no group itself and says the scheduler will', async () => {
  const r = await onEvent(deps(), SWEEP, { RequestType: 'Create', ResourceProperties: props(JOB_A) });
  expect(calls).toEqual([]);
  expect(r.Data).toMatchObject({ Started: 'false', Why: 'deployed for the first time; the scheduler starts it once fewer than 2 configs hold an instance (maxParallel)' });
});

test('a standing stop is still answered with a start request, so the scheduler sees the config pending', async () => {
  await store.write(storeKeys.configFile(SWEEP, 'a', 'control'), text(controlDoc('stop', REQUESTERS.cli, 'by hand')));
  await onEvent(deps(), SWEEP, { RequestType: 'Update', PhysicalResourceId: 'x', OldResourceProperties: props(JOB_A), ResourceProperties: props(JOB_B) });
  expect((await readControl(store, SWEEP, 'a')).control).toMatchObject({ action: 'start', by: REQUESTERS.deploy });
  expect(calls).toEqual([]);
});

test('an instance running the old job is replaced and keeps its slot (Started true), without resizing the group', async () => {
  await store.write(storeKeys.configFile(SWEEP, 'a', 'status'), text(statusDoc(SWEEP, 'a', 'TRAINING', { jobDigest: jobDigest(JOB_A) })));
  const r = await onEvent(deps(['i-0old']), SWEEP, { RequestType: 'Update', PhysicalResourceId: 'x', OldResourceProperties: props(JOB_A), ResourceProperties: props(JOB_B) });
  expect(calls).toEqual(['replace i-0old']);
  expect(r.Data.Started).toBe('true');
});

test('Create over a STOPPED status.json of the same job.json (stack destroyed and deployed again) writes a start request for the scheduler', async () => {
  await store.write(storeKeys.configFile(SWEEP, 'a', 'status'), text(statusDoc(SWEEP, 'a', 'STOPPED', { jobDigest: jobDigest(JOB_A) })));
  const r = await onEvent(deps(), SWEEP, { RequestType: 'Create', ResourceProperties: props(JOB_A) });
  expect((await readControl(store, SWEEP, 'a')).control).toMatchObject({ action: 'start', by: REQUESTERS.deploy });
  expect(r.Data.Why).toMatch(/a start request asks the scheduler to run this job\.json again; the scheduler starts it once fewer than 2/);
  expect(calls).toEqual([]);
});

test('a deploy that removes maxParallel starts the configs still waiting for a slot, and only those', async () => {
  // The new handler has no cap (its environment lost MAX_PARALLEL with the scheduler); the old properties had one.
  const uncapped = (): RestartDeps => ({ ...deps(), maxParallel: undefined });
  const update = (config: string) =>
    onEvent(uncapped(), SWEEP, {
      RequestType: 'Update',
      PhysicalResourceId: 'x',
      OldResourceProperties: { ...props(JOB_A), Config: config, GroupName: groupName(SWEEP, config), MaxParallel: '2' },
      ResourceProperties: { ...props(JOB_A), Config: config, GroupName: groupName(SWEEP, config) },
    });
  const waiting = await update('waiting');
  expect(waiting.Data).toMatchObject({ Started: 'true', Why: 'maxParallel 2 removed' });
  expect(calls).toEqual([`start ${groupName(SWEEP, 'waiting')}`]);

  calls = [];
  await store.write(storeKeys.configFile(SWEEP, 'ended', 'status'), text(statusDoc(SWEEP, 'ended', 'FAILED', { jobDigest: jobDigest(JOB_A) })));
  const ended = await update('ended');
  expect(ended.Data).toMatchObject({ Started: 'false', Why: 'maxParallel 2 removed, but this job.json already ran (FAILED); spot-sweep start runs it again' });
  expect(calls).toEqual([]);
});

test('a changed maxParallel with the same job.json starts nothing (the scheduler applies the new cap)', async () => {
  const r = await onEvent(deps(), SWEEP, {
    RequestType: 'Update',
    PhysicalResourceId: 'x',
    OldResourceProperties: { ...props(JOB_A), MaxParallel: '2' },
    ResourceProperties: { ...props(JOB_A), MaxParallel: '3' },
  });
  expect(r.Data).toMatchObject({ Started: 'false', Why: 'job.json unchanged' });
  expect(calls).toEqual([]);
});
