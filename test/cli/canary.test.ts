import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AutoScalingClient, CreateAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { CreateLaunchTemplateCommand, EC2Client } from '@aws-sdk/client-ec2';
import { AwsSession } from '../../lib/cli/aws';
import { awsCanaryDeps, cdkDeps, CdkRunner, pickOfferedType } from '../../lib/cli/canary/aws-deps';
import { CanaryDeps, CanaryTimeouts } from '../../lib/cli/canary/deps';
import { resumedLine, RESUME_LOG_LINE, runCanary, setupLines } from '../../lib/cli/canary/run';
import { CANARY_CANDIDATES, CANARY_CONFIG, canaryDataPrefix } from '../../lib/cli/canary/spec';
import { EXIT } from '../../lib/cli/main';
import { groupName, METRICS, REQUESTERS, StatusJson, storeKeys, sweepStackName } from '../../lib/contract';
import { statusDoc } from '../results/fixtures';
import { cli, clientOptions, deployFoundation, getObject, Moto, putObjects, startMoto } from './aws-fixture';

/**
 * The canary's orchestration (lib/cli/canary/run.ts) against a simulated account: a fake clock (sleep moves
 * it, so the waits take no time), a job that boots, trains, obeys the stop, resumes and removes itself, and
 * each way a promise can break. Then the real dependencies (lib/cli/canary/aws-deps.ts) against moto_server.
 */

const TIMEOUTS: CanaryTimeouts = { jobStart: 600, firstStep: 600, stop: 120, resume: 900, metrics: 300, results: 300, selfRemoval: 120, removal: 300, poll: 15 };
const START = Date.parse('2026-12-01T10:00:00Z');

interface World {
  deps: CanaryDeps;
  out: () => string;
  write: (text: string) => void;
  calls: string[];
  /** Seconds of fake time since the start. */
  clock: () => number;
}

/** What the simulated job does; each field breaks one promise. */
interface Script {
  offered?: boolean;
  foundation?: boolean;
  /** Seconds after the resumed job started at which the group is at zero (the job ends at 120). */
  removedAfter?: number;
  deployFails?: boolean;
  destroyFails?: boolean;
  /** The stop is obeyed (STOPPED, a checkpoint); false: the job goes on TRAINING. */
  obeysStop?: boolean;
  /** The next attempt resumes from the checkpoint (its log says so); false: it starts over. */
  resumes?: boolean;
  metrics?: boolean;
  setup?: boolean;
  spend?: boolean;
  /** Called at every sleep with the fake time, e.g. to press Ctrl-C. */
  onSleep?: (seconds: number) => void;
}

function world(script: Script = {}): World {
  const s = { offered: true, foundation: true, deployFails: false, destroyFails: false, obeysStop: true, resumes: true, metrics: true, setup: true, spend: true, removedAfter: 180, ...script };
  let t = 0;
  let out = '';
  const calls: string[] = [];
  let deployedAt: number | undefined;
  let stoppedAt: number | undefined;
  let startedAt: number | undefined;
  let sweep = '';
  const files = new Map<string, string>();
  const config = CANARY_CONFIG;
  const since = (at: number | undefined): number => (at === undefined ? -1 : t - at);

  const status = (): Partial<StatusJson> | undefined => {
    if (startedAt !== undefined && since(startedAt) >= 120) {
      return statusDoc(sweep, config, 'SUCCEEDED', { attempts: 2, interruptions: 1, history: [{ state: 'BOOTSTRAPPING', at: '2026-12-01T10:01:00Z', attempt: 1 }, { state: 'SUCCEEDED', at: '2026-12-01T10:20:00Z', attempt: 2 }] });
    }
    if (stoppedAt !== undefined && s.obeysStop) {
      return statusDoc(sweep, config, 'STOPPED', { attempts: 1, stoppedBy: REQUESTERS.cli, fold: 0, step: 40, history: [{ state: 'BOOTSTRAPPING', at: '2026-12-01T10:01:00Z', attempt: 1 }, { state: 'STOPPED', at: '2026-12-01T10:08:00Z', attempt: 1 }] });
    }
    if (since(deployedAt) >= 180) return statusDoc(sweep, config, 'TRAINING', { step: 5, instanceType: 'g4dn.xlarge', market: 'spot', history: [{ state: 'BOOTSTRAPPING', at: '2026-12-01T10:01:00Z', attempt: 1 }, { state: 'TRAINING', at: '2026-12-01T10:03:00Z', attempt: 1 }] });
    if (since(deployedAt) >= 60) return statusDoc(sweep, config, 'BOOTSTRAPPING', { instanceType: 'g4dn.xlarge', market: 'spot' });
    return undefined;
  };
  const done = (): boolean => startedAt !== undefined && since(startedAt) >= 120;

  const deps: CanaryDeps = {
    pickInstanceType: async (candidates) => (s.offered ? { instanceType: candidates[0], reason: 'offered' } : { reason: `none of ${candidates.join(', ')} is offered` }),
    foundationBucket: async () => (s.foundation ? 'artifacts' : undefined),
    deployFoundation: async () => {
      calls.push('deployFoundation');
      s.foundation = true;
    },
    makeDataset: async (dir) => {
      calls.push(`makeDataset ${dir}`);
    },
    uploadDataset: async (_dir, bucket, prefix) => {
      calls.push(`upload s3://${bucket}/${prefix}`);
      return [`${prefix}pairs.csv`, `${prefix}doc_embeddings.npy`];
    },
    removeDataset: async (_bucket, keys) => {
      calls.push(`removeDataset ${keys.length}`);
    },
    deploySweep: async (specFile) => {
      calls.push(`deploySweep ${specFile}`);
      sweep = path.basename(specFile, '.json');
      t += 240;
      if (s.deployFails) throw new Error('npx cdk deploy exited 1 (deploy of the canary sweep); its last lines:\nCREATE_FAILED');
      deployedAt = t;
    },
    destroySweep: async (specFile) => {
      calls.push(`destroySweep ${specFile}`);
      if (s.destroyFails) throw new Error('npx cdk destroy exited 1');
    },
    readStatus: async () => status(),
    readText: async (key) => {
      if (key === storeKeys.configFile(sweep, config, 'log') && done()) {
        const resume = s.resumes ? `${RESUME_LOG_LINE}ckpt-00000003.pt, ckpt-00000003.pt.sha256\n` : '';
        return `=== attempt 1 on g4dn.xlarge (spot) at x ===\nstep 40\n=== attempt 2 on g4dn.xlarge (spot) at y ===\n${resume}done\n`;
      }
      if (key === storeKeys.configFile(sweep, config, 'results') && done()) {
        const setup = s.setup ? { setup: { phases: [{ name: 'torch', seconds: 95 }, { name: 'data', seconds: 4 }], bootedAt: 'b', firstStepAt: 'f', bootToFirstStepSeconds: 212 } } : {};
        return JSON.stringify({ mode: 'train', ndcg10: { mean: 0.9712, std: 0.001, ddof: 1 }, job: { attempts: 2, ...setup } });
      }
      if (key === storeKeys.sweepFile(sweep, 'report') && done()) return '<html></html>';
      if (key === storeKeys.sweepFile(sweep, 'spend') && s.spend && deployedAt !== undefined) return JSON.stringify({ totalUsd: 0.04 });
      return files.get(key);
    },
    listKeys: async (prefix) => (stoppedAt !== undefined && s.obeysStop ? [`${prefix}ckpt-00000003.pt`, `${prefix}ckpt-00000003.pt.sha256`] : []),
    stop: async (specFile, wait) => {
      calls.push(`stop ${specFile} --wait ${wait}`);
      stoppedAt = t;
      t += s.obeysStop ? 45 : wait;
      return 'Stopping "canary":\n  demo: stopped by the job\n';
    },
    start: async (specFile) => {
      calls.push(`start ${specFile}`);
      startedAt = t;
      return 'Starting "canary":\n  demo: start requested\n';
    },
    gpuDatapoints: async (group) => {
      calls.push(`metrics ${group}`);
      return s.metrics ? { count: 7, units: ['None'] } : { count: 0, units: [] };
    },
    group: async () => (done() && since(startedAt) >= s.removedAfter ? { desired: 0, instances: 0 } : { desired: 1, instances: 1 }),
    now: () => new Date(START + t * 1000),
    sleep: async (ms) => {
      t += ms / 1000;
      s.onSleep?.(t);
    },
  };
  return {
    deps,
    out: () => out,
    write: (text) => {
      out += text;
    },
    calls,
    clock: () => t,
  };
}

async function run(w: World, extra: { keep?: boolean; signal?: AbortSignal } = {}) {
  const root = mkdtempSync(path.join(os.tmpdir(), 'canary-'));
  const result = await runCanary(w.deps, { workRoot: root, keep: extra.keep ?? false, timeouts: TIMEOUTS, signal: extra.signal, out: w.write });
  return { result, root };
}

const line = (out: string, promise: string): string | undefined => out.split('\n').find((l) => l.includes(promise));

describe('spot-sweep canary orchestration', () => {
  test('all green: every promise is an ok line with its timing, then the cost, and the stack is destroyed', async () => {
    const w = world();
    const { result } = await run(w);
    const out = w.out();
    expect(result.code).toBe(EXIT.ok);
    expect(result.checks.filter((c) => c.state === 'fail')).toEqual([]);
    const summary = out.slice(out.indexOf('Canary checklist'));
    for (const promise of [
      'a GPU type this account can launch as spot',
      'cdk deploy of',
      'the association starts the job (status.json BOOTSTRAPPING)',
      'the bootstrap ends in training',
      'a stop request mid-training checkpoints',
      '`start` resumes from that checkpoint',
      'GPU metrics arrive as the idle alarm reads them (no unit)',
      'results.json and report.html land',
      'the instance removes itself',
    ]) {
      expect(line(summary, promise)).toMatch(/^ {2}ok {4}/);
    }
    expect(line(summary, 'the association starts the job')).toMatch(/\[\d+ s\]|\[\d+ min\]/);
    expect(line(summary, 'a stop request mid-training')).toContain('ckpt-00000003.pt');
    expect(line(summary, '`start` resumes')).toContain('attempt 2 resumed from ckpt-00000003.pt');
    expect(line(summary, 'GPU metrics')).toContain(`${METRICS.agentNamespace} ${METRICS.gpuUtilization}`);
    expect(line(summary, 'GPU metrics')).toContain('unit None');
    expect(line(summary, 'bootstrap phase torch')).toContain('[95 s]');
    expect(line(summary, 'launch to first training step')).toContain('[3 min 32 s]');
    expect(summary).toContain('cost $0.04 (spend.json');
    expect(summary).toContain(`Destroyed: stack ${sweepStackName(result.sweep)}`);
    expect(summary).toContain('Every promise held.');
    expect(w.calls).toContain(`removeDataset 2`);
    expect(w.calls.filter((c) => c.startsWith('destroySweep'))).toHaveLength(1);
    expect(w.calls.find((c) => c.startsWith('upload'))).toBe(`upload s3://artifacts/${canaryDataPrefix(result.sweep)}`);
  });

  test('writes a valid one-config spec of the demo on the picked type over the uploaded data set', async () => {
    const w = world();
    const { root, result } = await run(w);
    const files = readdirSync(path.join(root, result.sweep));
    expect(files).toEqual([`${result.sweep}.json`]);
    const spec = JSON.parse(readFileSync(path.join(root, result.sweep, files[0]), 'utf8'));
    expect(spec.configs.map((c: { name: string }) => c.name)).toEqual([CANARY_CONFIG]);
    expect(spec.defaults.instanceTypes).toEqual([CANARY_CANDIDATES[0]]);
    expect(spec.data).toBe(`s3://artifacts/${canaryDataPrefix(result.sweep)}`);
    expect(spec.budgetUsd).toBeLessThanOrEqual(1);
  });

  test('the cheapest candidate comes first: g4dn.xlarge', () => {
    expect(CANARY_CANDIDATES[0]).toBe('g4dn.xlarge');
  });

  test('fails when GPU metrics never arrive: names the promise, exits non-zero, still destroys', async () => {
    const w = world({ metrics: false });
    const { result } = await run(w);
    const out = w.out();
    expect(result.code).toBe(EXIT.someFailed);
    expect(line(out.slice(out.indexOf('Canary checklist')), 'GPU metrics')).toMatch(/^ {2}FAIL/);
    expect(out).toContain('1 promise(s) failed: GPU metrics arrive as the idle alarm reads them (no unit).');
    expect(w.calls.filter((c) => c.startsWith('destroySweep'))).toHaveLength(1);
    // It gave up after the metrics timeout, not later.
    expect(line(out, 'FAIL  GPU metrics')).toContain(`[${TIMEOUTS.metrics / 60} min 00 s]`);
  });

  test('fails when the group reaches zero only as late as an idle-GPU alarm would scale it in: that is no self-removal', async () => {
    // The job ended at 120 s; the group is at zero 12 minutes later, after the canary config's idleMinutes (10).
    const w = world({ removedAfter: 120 + 12 * 60 });
    const { result } = await run(w);
    const summary = w.out().slice(w.out().indexOf('Canary checklist'));
    expect(result.code).toBe(EXIT.someFailed);
    expect(line(summary, 'the instance removes itself')).toMatch(/^ {2}FAIL.*was not at desired 0 within 120 s of the job's end.*the instance did not remove itself/);
    expect(w.calls.filter((c) => c.startsWith('destroySweep'))).toHaveLength(1);
  });

  test('fails when the stop never checkpoints: the later promises are not checked, and the stack is destroyed', async () => {
    const w = world({ obeysStop: false });
    const { result } = await run(w);
    const out = w.out();
    const summary = out.slice(out.indexOf('Canary checklist'));
    expect(result.code).toBe(EXIT.someFailed);
    expect(line(summary, 'a stop request mid-training')).toMatch(/^ {2}FAIL.*status.json is TRAINING after spot-sweep stop --wait 120/);
    expect(line(summary, '`start` resumes')).toMatch(/^ {2}- {5}.*not checked/);
    expect(line(summary, 'the instance removes itself')).toMatch(/not checked/);
    expect(w.calls.some((c) => c.startsWith('start'))).toBe(false);
    expect(w.calls.filter((c) => c.startsWith('destroySweep'))).toHaveLength(1);
  });

  test('fails when the next attempt starts over instead of resuming', async () => {
    const w = world({ resumes: false });
    const { result } = await run(w);
    expect(result.code).toBe(EXIT.someFailed);
    expect(line(w.out(), 'FAIL  `start` resumes')).toContain('started over');
  });

  test('Ctrl-C mid-way stops checking and destroys what was deployed', async () => {
    const abort = new AbortController();
    const w = world({ onSleep: (t) => t > 400 && abort.abort() });
    const { result } = await run(w, { signal: abort.signal });
    const out = w.out();
    expect(result.interrupted).toBe(true);
    expect(result.code).toBe(EXIT.someFailed);
    expect(out).toContain('Interrupted (Ctrl-C) while');
    expect(out).toContain('STOP  interrupted by Ctrl-C');
    expect(w.calls.some((c) => c.startsWith('stop'))).toBe(false);
    expect(w.calls.filter((c) => c.startsWith('destroySweep'))).toHaveLength(1);
    expect(w.calls).toContain('removeDataset 2');
  });

  test('a failed deploy is reported with cdk output, and the half-made stack is destroyed', async () => {
    const w = world({ deployFails: true });
    const { result } = await run(w);
    const out = w.out();
    expect(result.code).toBe(EXIT.someFailed);
    expect(out).toMatch(/FAIL {2}cdk deploy of .*its last lines:\n {8}CREATE_FAILED/);
    expect(w.calls.filter((c) => c.startsWith('destroySweep'))).toHaveLength(1);
    expect(out).toContain(`Destroyed: stack ${sweepStackName(result.sweep)}`);
    expect(w.calls.some((c) => c.startsWith('metrics'))).toBe(false);
  });

  test('fails when no candidate type is offered: nothing is deployed or destroyed', async () => {
    const w = world({ offered: false });
    const { result } = await run(w);
    expect(result.code).toBe(EXIT.someFailed);
    expect(line(w.out(), 'FAIL  a GPU type')).toContain('none of g4dn.xlarge');
    expect(w.calls).toEqual([]);
  });

  test('deploys the foundation when it is missing, and keeps it', async () => {
    const w = world({ foundation: false });
    const { result } = await run(w);
    expect(result.code).toBe(EXIT.ok);
    expect(w.calls[0]).toBe('deployFoundation');
    expect(line(w.out(), 'the foundation is deployed')).toContain('deployed now');
  });

  test('fails when the destroy fails: exit aws, with the command that removes the stack', async () => {
    const w = world({ destroyFails: true });
    const { result } = await run(w);
    expect(result.code).toBe(EXIT.aws);
    expect(w.out()).toMatch(/LEFT DEPLOYED: SpotSweep-canary-\S+: cdk destroy failed .*npx cdk destroy -e --force SpotSweep-canary-\S+ -c sweep=\S+\.json/);
  });

  test('--keep leaves the stack and the data set, and prints how to remove them', async () => {
    const w = world();
    const { result } = await run(w, { keep: true });
    expect(result.code).toBe(EXIT.ok);
    expect(w.calls.some((c) => c.startsWith('destroySweep') || c.startsWith('removeDataset'))).toBe(false);
    expect(w.out()).toContain(`LEFT DEPLOYED: ${sweepStackName(result.sweep)} (--keep): destroy it with npx cdk destroy -e --force`);
  });

  test('without spend.json the cost is the instance time at the typical spot price', async () => {
    const w = world({ spend: false });
    await run(w);
    expect(w.out()).toMatch(/cost at most about \$0\.\d\d \(no spend\.json yet: .* x \$0\.2104\/h typical spot\)/);
  });

  test('setup phases not recorded in results.json print "not recorded"', () => {
    expect(setupLines({ job: { attempts: 1 } }).map((c) => c.detail)).toEqual([
      'not recorded (results.json has no job.setup.phases)',
      'not recorded (results.json has no job.setup.bootToFirstStepSeconds)',
    ]);
    expect(setupLines({ job: { setup: { phases: [{ name: 'x' }, 'junk'], bootToFirstStepSeconds: 'soon' } } }).map((c) => c.detail)[0]).toContain('not recorded');
  });

  test('resumedLine reads only attempts after the stopped one', () => {
    const log = `=== attempt 1 on a (spot) at x ===\n${RESUME_LOG_LINE}old\n=== attempt 2 on a (spot) at y ===\nfresh start\n`;
    expect(resumedLine(log, 1)).toBeUndefined();
    expect(resumedLine(log, 0)).toContain('old');
  });
});

describe('canary cdk commands', () => {
  test('deploys and destroys the sweep stack alone, unattended, with the spec', async () => {
    const seen: string[][] = [];
    const runner: CdkRunner = async (args) => {
      seen.push([...args]);
      return { code: 0, output: '' };
    };
    const dir = mkdtempSync(path.join(os.tmpdir(), 'canary-spec-'));
    const file = path.join(dir, 'canary-x.json');
    writeFileSync(file, JSON.stringify({ name: 'canary-x', budgetUsd: 1, data: 's3://bkt-x/datasets/x/', configs: [{ name: 'demo' }] }));
    const cdk = cdkDeps(runner);
    await cdk.deploySweep(file);
    await cdk.destroySweep(file);
    await cdk.deployFoundation();
    expect(seen[0]).toEqual(['deploy', 'SpotSweep-canary-x', '-e', '-c', `sweep=${file}`, '--require-approval', 'never']);
    expect(seen[1]).toEqual(['destroy', 'SpotSweep-canary-x', '-e', '--force', '-c', `sweep=${file}`]);
    expect(seen[2]).toEqual(['deploy', 'SpotSweep-Foundation', '--require-approval', 'never']);
  });

  test('fails with cdk\'s last lines when it exits non-zero', async () => {
    const cdk = cdkDeps(async () => ({ code: 1, output: 'line 1\nResource handler returned message: "quota"\n' }));
    await expect(cdk.deployFoundation()).rejects.toThrow(/exited 1 \(deploy of the foundation\)[\s\S]*\nResource handler returned message: "quota"$/);
  });
});

describe('canary AWS dependencies against moto_server', () => {
  jest.setTimeout(90_000);
  let moto: Moto;
  let session: AwsSession;
  const BUCKET = 'spot-sweep-artifacts-canary';
  const io = () => ({ out: () => undefined, err: () => undefined, env: moto.env });

  beforeAll(async () => {
    moto = await startMoto();
    session = await AwsSession.open({}, moto.env);
  });
  afterAll(async () => {
    session?.close();
    await moto?.stop();
  });

  test('finds no foundation before it is deployed, then its bucket; uploads, lists and deletes the data set', async () => {
    const deps = awsCanaryDeps(session, io());
    expect(await deps.foundationBucket()).toBeUndefined();
    await deployFoundation(moto, BUCKET);
    expect(await deps.foundationBucket()).toBe(BUCKET);

    const dir = mkdtempSync(path.join(os.tmpdir(), 'canary-data-'));
    await deps.makeDataset(dir);
    const made = readdirSync(dir).sort();
    expect(made).toEqual(expect.arrayContaining(['pairs.csv', 'doc_embeddings.npy', 'query_embeddings.npy']));
    const prefix = canaryDataPrefix('canary-moto');
    const keys = await deps.uploadDataset(dir, BUCKET, prefix);
    expect(keys.sort()).toEqual(made.map((f) => `${prefix}${f}`));
    expect((await deps.listKeys(prefix)).sort()).toEqual(keys.sort());
    expect((await getObject(moto, BUCKET, `${prefix}pairs.csv`))?.startsWith('query_id,doc_id,relevance')).toBe(true);
    await deps.removeDataset(BUCKET, keys);
    expect(await deps.listKeys(prefix)).toEqual([]);
  });

  test('reads status.json and store files of the canary sweep', async () => {
    const deps = awsCanaryDeps(session, io());
    await deployFoundation(moto, `${BUCKET}-2`).catch(() => undefined);
    expect(await deps.foundationBucket()).toBe(BUCKET);
    const doc = statusDoc('canary-moto', CANARY_CONFIG, 'TRAINING', { step: 3 });
    await putObjects(moto, BUCKET, { [storeKeys.configFile('canary-moto', CANARY_CONFIG, 'status')]: doc });
    expect(await deps.readStatus('canary-moto', CANARY_CONFIG)).toEqual(doc);
    expect(await deps.readStatus('canary-moto', 'other')).toBeUndefined();
    expect(await deps.readText(storeKeys.sweepFile('canary-moto', 'spend'))).toBeUndefined();
  });

  test('picks the cheapest candidate offered in the region', async () => {
    const deps = awsCanaryDeps(session, io());
    const pick = await deps.pickInstanceType(CANARY_CANDIDATES);
    expect(pick.instanceType).toBe('g4dn.xlarge');
    const none = await deps.pickInstanceType(['g4dn.nosuchsize']);
    expect(none.instanceType).toBeUndefined();
    expect(none.reason).toContain('none of g4dn.nosuchsize is offered in us-east-1');
  });

  test('skips a candidate whose spot vCPU quota cannot hold it (a new account), and says which quota to raise', async () => {
    const quota = (type: string, limitVcpus: number) => ({ family: type.split('.')[0], market: 'spot' as const, quotaCode: 'L-3819A6DF', quotaName: 'All G and VT Spot Instance Requests', limitVcpus, neededVcpus: 4, ok: limitVcpus >= 4 });
    const zero = await pickOfferedType(session, CANARY_CANDIDATES, async (types) => new Map(types.map((t) => [t, quota(t, t === 'g4dn.xlarge' ? 0 : 8)])));
    expect(zero.instanceType).toBe(CANARY_CANDIDATES.find((c) => c !== 'g4dn.xlarge'));
    expect(zero.reason).toContain('g4dn.xlarge: spot quota L-3819A6DF (All G and VT Spot Instance Requests) is 0 vCPUs, it needs 4');
    const none = await pickOfferedType(session, CANARY_CANDIDATES, async (types) => new Map(types.map((t) => [t, quota(t, 0)])));
    expect(none.instanceType).toBeUndefined();
    expect(none.reason).toMatch(/no candidate fits its spot vCPU quota in us-east-1: .*Fix: request an increase in Service Quotas/);
    // A quota that cannot be read does not block the canary; the pick says so.
    const unread = await pickOfferedType(session, CANARY_CANDIDATES, async () => {
      throw new Error('AccessDenied: servicequotas:ListServiceQuotas');
    });
    expect(unread.instanceType).toBe('g4dn.xlarge');
    expect(unread.reason).toContain('the spot vCPU quotas could not be read (AccessDenied');
  });

  test('reads GPU datapoints without a unit, as the idle alarm does, and reports the unit they carry', async () => {
    const deps = awsCanaryDeps(session, io());
    const group = groupName('canary-moto', CANARY_CONFIG);
    const cw = new CloudWatchClient(clientOptions(moto));
    const at = new Date(Date.now() - 120_000);
    await cw.send(
      new PutMetricDataCommand({
        Namespace: METRICS.agentNamespace,
        MetricData: [{ MetricName: METRICS.gpuUtilization, Dimensions: [{ Name: METRICS.dimensions.group, Value: group }], Timestamp: at, Value: 87 }],
      }),
    );
    cw.destroy();
    const from = new Date(Date.now() - 600_000);
    const points = await deps.gpuDatapoints(group, from, new Date());
    expect(points.count).toBeGreaterThan(0);
    expect(points.units).toEqual(['None']);
    expect((await deps.gpuDatapoints(groupName('canary-moto', 'idle'), from, new Date())).count).toBe(0);
  });

  test('reads the group: desired capacity and instances', async () => {
    const deps = awsCanaryDeps(session, io());
    const ec2 = new EC2Client(clientOptions(moto));
    await ec2.send(new CreateLaunchTemplateCommand({ LaunchTemplateName: 'canary', LaunchTemplateData: { ImageId: 'ami-12c6146b', InstanceType: 'g4dn.xlarge' } }));
    ec2.destroy();
    const asg = new AutoScalingClient(clientOptions(moto));
    const name = groupName('canary-moto', CANARY_CONFIG);
    await asg.send(new CreateAutoScalingGroupCommand({ AutoScalingGroupName: name, LaunchTemplate: { LaunchTemplateName: 'canary', Version: '$Latest' }, MinSize: 0, MaxSize: 1, DesiredCapacity: 0, AvailabilityZones: ['us-east-1a'] }));
    asg.destroy();
    expect(await deps.group(name)).toEqual({ desired: 0, instances: 0 });
    expect(await deps.group('SpotSweep-nosuch-group')).toBeUndefined();
  });

  test('spot-sweep canary --help lists it, with its exit codes', async () => {
    const r = await cli(moto.env, ['canary', '--help']);
    expect(r.code).toBe(EXIT.ok);
    expect(r.stdout).toContain('Usage: spot-sweep canary [--keep] [--region REGION]');
    expect(r.stdout).toMatch(/4 +a promise failed/);
  });
});
