import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { FOUNDATION_STACK, METRICS, STACK_OUTPUTS, sweepStackName } from '../../contract';
import { loadSpec } from '../../spec/load';
import { readStatus, s3Store, SweepStore } from '../../store';
import { Command, OptionTable, parseCommandLine } from '../args';
import { aws, AwsSession, AwsSetupError, explainAwsError, sleep } from '../aws';
import { findPython } from '../commands/local';
import { start } from '../commands/start';
import { stop } from '../commands/stop';
import { CliIo } from '../io';
import { Headroom, quotaHeadroom } from '../doctor/quotas';
import { serviceQuotas } from '../doctor/types';
import { CanaryDeps, GpuDatapoints, InstancePick } from './deps';
import { CANARY_DATA_ARGS } from './spec';

/** The repository root (this file is lib/cli/canary/aws-deps.ts): where the CDK app and training/ are. */
const REPO = path.resolve(__dirname, '..', '..', '..');

/** Runs the project's CDK CLI with `args`; its exit code and output. */
export type CdkRunner = (args: readonly string[]) => Promise<{ code: number; output: string }>;

/**
 * `npx --no-install cdk ARGS` in the repository, with the session's region. The child runs in its own
 * process group (detached): a Ctrl-C at the terminal reaches only the canary, which lets a deploy in
 * progress finish and then destroys the stack, instead of leaving CloudFormation half-way with nobody to
 * clean up.
 */
export function spawnCdk(env: NodeJS.ProcessEnv, region: string): CdkRunner {
  return (args) =>
    new Promise((resolve) => {
      const child = spawn('npx', ['--no-install', 'cdk', ...args], {
        cwd: REPO,
        env: { ...env, AWS_REGION: region, CDK_DISABLE_CLI_TELEMETRY: 'true' },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      let output = '';
      child.stdout?.on('data', (d) => (output += String(d)));
      child.stderr?.on('data', (d) => (output += String(d)));
      child.on('error', (err) => resolve({ code: 127, output: `${output}${err.message}` }));
      child.on('close', (code) => resolve({ code: code ?? 1, output }));
    });
}

/** The last lines of a command's output, for an error message. */
const tail = (output: string, lines = 15): string => output.trim().split('\n').slice(-lines).join('\n');

/**
 * The CDK commands of the canary. The sweep stack is deployed and destroyed alone (`-e`, --exclusively):
 * the user's foundation is deployed only when missing, never updated behind their back. `--require-approval
 * never` and `destroy --force`: the canary runs unattended.
 * @see https://docs.aws.amazon.com/cdk/v2/guide/ref-cli-cmd-deploy.html
 * @see https://docs.aws.amazon.com/cdk/v2/guide/ref-cli-cmd-destroy.html
 */
export function cdkDeps(cdk: CdkRunner): Pick<CanaryDeps, 'deployFoundation' | 'deploySweep' | 'destroySweep'> {
  const run = async (what: string, args: string[]): Promise<void> => {
    const { code, output } = await cdk(args);
    if (code !== 0) throw new Error(`npx cdk ${args.join(' ')} exited ${code} (${what}); its last lines:\n${tail(output)}`);
  };
  const stackOf = (specFile: string): string => sweepStackName(loadSpec(specFile).name);
  return {
    deployFoundation: () => run('deploy of the foundation', ['deploy', FOUNDATION_STACK, '--require-approval', 'never']),
    deploySweep: (specFile) => run('deploy of the canary sweep', ['deploy', stackOf(specFile), '-e', '-c', `sweep=${specFile}`, '--require-approval', 'never']),
    destroySweep: (specFile) => run('destroy of the canary sweep', ['destroy', stackOf(specFile), '-e', '--force', '-c', `sweep=${specFile}`]),
  };
}

/**
 * The first candidate EC2 offers in the region whose spot vCPU quota holds one instance of it (a new account
 * has 0 for the G and P families, and a canary on such a type would wait for capacity forever).
 * DescribeInstanceTypeOfferings with location type `region` lists the types offered in the current Region (in at
 * least one of its zones). The quota comes from `headroom` (spot-sweep doctor's lib/cli/doctor/quotas.ts); a
 * type whose quota cannot be read, or that no listed quota covers, is taken with a note, not refused.
 * @see https://docs.aws.amazon.com/sdk-for-sap-abap/v1/api/latest/ec2/operation/DESCRINSTANCETYPEOFFERINGS.html
 */
export async function pickOfferedType(
  session: AwsSession,
  candidates: readonly string[],
  headroom?: (types: readonly string[]) => Promise<ReadonlyMap<string, Headroom>>,
): Promise<InstancePick> {
  const { DescribeInstanceTypeOfferingsCommand } = await import('@aws-sdk/client-ec2');
  const offered = new Set<string>();
  let token: string | undefined;
  do {
    const page = await aws('EC2 DescribeInstanceTypeOfferings', () =>
      session.ec2().send(new DescribeInstanceTypeOfferingsCommand({ LocationType: 'region', Filters: [{ Name: 'instance-type', Values: [...candidates] }], NextToken: token })),
    );
    for (const o of page.InstanceTypeOfferings ?? []) if (o.InstanceType) offered.add(o.InstanceType);
    token = page.NextToken || undefined;
  } while (token);
  const inRegion = candidates.filter((c) => offered.has(c));
  if (inRegion.length === 0) return { reason: `none of ${candidates.join(', ')} is offered in ${session.region} (DescribeInstanceTypeOfferings); run the canary in a region that has them (--region).` };
  const notes = candidates.filter((c) => !offered.has(c)).map((c) => `${c} not offered`);
  let quotas: ReadonlyMap<string, Headroom> | undefined;
  let quotaProblem: string | undefined;
  if (headroom) {
    try {
      quotas = await headroom(inRegion);
    } catch (err) {
      quotaProblem = `the spot vCPU quotas could not be read (${(err as Error).message.split('\n')[0]})`;
    }
  } else quotaProblem = 'its spot vCPU quota is not checked here (spot-sweep doctor does)';
  for (const type of inRegion) {
    const h = quotas?.get(type);
    if (h?.quotaCode !== undefined && !h.ok) {
      notes.push(`${type}: spot quota ${h.quotaCode} (${h.quotaName}) is ${h.limitVcpus ?? 0} vCPUs, it needs ${h.neededVcpus}`);
      continue;
    }
    if (quotas && h?.quotaCode === undefined) quotaProblem = `no spot vCPU quota listed covers ${type}`;
    const why = [...notes, ...(quotaProblem ? [quotaProblem] : [])];
    return { instanceType: type, reason: `the cheapest candidate offered in ${session.region} that the spot quota allows${why.length > 0 ? ` (${why.join('; ')})` : ''}` };
  }
  return {
    reason: `no candidate fits its spot vCPU quota in ${session.region}: ${notes.join('; ')}. Fix: request an increase in Service Quotas (spot-sweep doctor prints the command), then run the canary again.`,
  };
}

/** The foundation's artifact bucket, or undefined when the stack is not deployed in the region. */
export async function foundationBucket(session: AwsSession): Promise<string | undefined> {
  const { DescribeStacksCommand } = await import('@aws-sdk/client-cloudformation');
  let stack;
  try {
    stack = (await session.cloudFormation().send(new DescribeStacksCommand({ StackName: FOUNDATION_STACK }))).Stacks?.[0];
  } catch (err) {
    // DescribeStacks answers ValidationError for a stack that does not exist.
    // @see https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStacks.html
    if ((err as Error).name === 'ValidationError') return undefined;
    throw new AwsSetupError(`CloudFormation DescribeStacks ${FOUNDATION_STACK} failed: ${(err as Error).message}`);
  }
  if (!stack || stack.StackStatus === 'DELETE_COMPLETE') return undefined;
  return stack.Outputs?.find((o) => o.OutputKey === STACK_OUTPUTS.artifactBucket)?.OutputValue;
}

/** Every file under `dir`, as paths relative to it with `/` separators. */
function filesUnder(dir: string, rel = ''): string[] {
  return readdirSync(path.join(dir, rel), { withFileTypes: true }).flatMap((e) => {
    const name = rel ? `${rel}/${e.name}` : e.name;
    return e.isDirectory() ? filesUnder(dir, name) : e.isFile() ? [name] : [];
  });
}

/**
 * Uploads the data set with PutObject, one object per file, and deletes it with DeleteObject.
 * @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html
 * @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObject.html
 */
export function datasetDeps(session: AwsSession): Pick<CanaryDeps, 'uploadDataset' | 'removeDataset'> {
  return {
    async uploadDataset(dir, bucket, prefix) {
      const { PutObjectCommand } = await import('@aws-sdk/client-s3');
      const keys: string[] = [];
      for (const file of filesUnder(dir)) {
        const key = `${prefix}${file}`;
        await aws(`S3 PutObject s3://${bucket}/${key}`, () => session.s3().send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: readFileSync(path.join(dir, file)) })));
        keys.push(key);
      }
      return keys;
    },
    async removeDataset(bucket, keys) {
      const { DeleteObjectCommand } = await import('@aws-sdk/client-s3');
      for (const key of keys) await aws(`S3 DeleteObject s3://${bucket}/${key}`, () => session.s3().send(new DeleteObjectCommand({ Bucket: bucket, Key: key })));
    },
  };
}

/**
 * Every key under a prefix, ListObjectsV2 page by page (up to 1,000 keys a page, then NextContinuationToken).
 * @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html
 */
export async function listKeys(session: AwsSession, bucket: string, prefix: string): Promise<string[]> {
  const { ListObjectsV2Command } = await import('@aws-sdk/client-s3');
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await aws(`S3 ListObjectsV2 s3://${bucket}/${prefix}`, () => session.s3().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token })));
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

/**
 * GPU utilisation of the group as the idle alarm reads it (lib/monitoring/metrics.ts gpuUtilizationMetric:
 * CWAgent, nvidia_smi_utilization_gpu, the group dimension only, Average over 60 s, no unit). Without a
 * Unit, GetMetricStatistics returns the data "collected with any unit ... along with the corresponding
 * units", so the count is what the alarm sees and the units are what the agent sent. GetMetricStatistics,
 * not ListMetrics: a new metric can take up to 15 minutes to appear in ListMetrics.
 * @see https://docs.aws.amazon.com/sdk-for-kotlin/api/latest/cloudwatch/aws.sdk.kotlin.services.cloudwatch.model/-get-metric-statistics-request/unit.html
 * @see https://docs.aws.amazon.com/goto/cli2/monitoring-2010-08-01/ListMetrics
 */
export async function gpuDatapoints(client: CloudWatchClient, groupName: string, from: Date, to: Date): Promise<GpuDatapoints> {
  const { GetMetricStatisticsCommand } = await import('@aws-sdk/client-cloudwatch');
  const r = await aws('CloudWatch GetMetricStatistics', () =>
    client.send(
      new GetMetricStatisticsCommand({
        Namespace: METRICS.agentNamespace,
        MetricName: METRICS.gpuUtilization,
        Dimensions: [{ Name: METRICS.dimensions.group, Value: groupName }],
        StartTime: from,
        EndTime: to,
        Period: 60,
        Statistics: ['Average'],
      }),
    ),
  );
  const points = r.Datapoints ?? [];
  return { count: points.length, units: [...new Set(points.map((p) => p.Unit ?? 'None'))] };
}

/** Runs a verb of this CLI (stop, start) in this process, as the user would; what it printed. */
async function runVerb(command: Command<OptionTable>, args: string[], io: CliIo): Promise<string> {
  let printed = '';
  const capture = (t: string): void => {
    printed += t;
  };
  try {
    await command.run(parseCommandLine(command, args), { ...io, out: capture, err: capture });
  } catch (err) {
    if (!(err instanceof AwsSetupError)) throw err;
    printed += `spot-sweep ${command.name}: ${err.message}\n`;
  }
  return printed;
}

/** The canary's real dependencies: AWS through the session, the project's CDK CLI, the venv's Python. */
export function awsCanaryDeps(session: AwsSession, io: CliIo, cdk: CdkRunner = spawnCdk(io.env, session.region)): CanaryDeps {
  // The bucket is known once the foundation is (the canary may deploy it first); the store reads it.
  let artifacts: { bucket: string; store: SweepStore } | undefined;
  const current = (): { bucket: string; store: SweepStore } => {
    if (!artifacts) throw new Error('the artifact bucket was read before the foundation was found');
    return artifacts;
  };
  const region = ['--region', session.region];
  return {
    pickInstanceType: (candidates) => pickOfferedType(session, candidates, (types) => quotaHeadroom(serviceQuotas(session), types, 'spot')),
    foundationBucket: async () => {
      const name = await foundationBucket(session);
      if (name !== undefined) artifacts = { bucket: name, store: s3Store({ client: session.s3(), bucket: name, explain: explainAwsError }) };
      return name;
    },
    ...cdkDeps(cdk),
    makeDataset: (dir) => makeDataset(dir, io.env),
    ...datasetDeps(session),
    readStatus: async (sweep, config) => (await readStatus(current().store, sweep, config)).status,
    readText: (key) => current().store.read(key),
    listKeys: (prefix) => listKeys(session, current().bucket, prefix),
    stop: (specFile, waitSeconds) => runVerb(stop as unknown as Command<OptionTable>, [specFile, '--wait', String(waitSeconds), '--reason', 'spot-sweep canary: a stop mid-training', ...region], io),
    start: (specFile) => runVerb(start as unknown as Command<OptionTable>, [specFile, '--reason', 'spot-sweep canary: resume from the checkpoint', ...region], io),
    gpuDatapoints: (group, from, to) => gpuDatapoints(session.cloudWatch(), group, from, to),
    group: async (name) => {
      const { DescribeAutoScalingGroupsCommand } = await import('@aws-sdk/client-auto-scaling');
      const r = await aws('Auto Scaling DescribeAutoScalingGroups', () => session.autoScaling().send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [name] })));
      const g = r.AutoScalingGroups?.[0];
      return g ? { desired: g.DesiredCapacity ?? 0, instances: (g.Instances ?? []).filter((i) => i.LifecycleState !== 'Terminated').length } : undefined;
    },
    now: () => new Date(),
    sleep,
  };
}

/** `python -m two_tower.synth --out DIR` with the venv's Python (the one `local` uses). */
function makeDataset(dir: string, env: NodeJS.ProcessEnv): Promise<void> {
  const python = findPython(undefined, env);
  return new Promise((resolve, reject) => {
    const child = spawn(python, ['-m', 'two_tower.synth', '--out', dir, ...CANARY_DATA_ARGS], { env: { ...env, PYTHONPATH: path.join(REPO, 'training') }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d) => (stderr += String(d)));
    child.on('error', (err) => reject(new Error(`${python} could not run (${err.message}): set up the venv with bash training/setup-venv.sh, or set SPOT_SWEEP_PYTHON.`)));
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${python} -m two_tower.synth exited ${code}: ${tail(stderr, 3)}; set up the venv with bash training/setup-venv.sh, or set SPOT_SWEEP_PYTHON.`)),
    );
  });
}
