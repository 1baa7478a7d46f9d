/**
 * Deploy/destroy smoke test against the moto AWS emulator on 127.0.0.1: `cdk bootstrap`, deploy the
 * foundation and the seed-plan sweep, check that every config's Auto Scaling group launched an
 * instance with the config's tag, update the sweep, `cdk destroy` both, and check nothing is left.
 *
 * Run: npx tsx test/smoke/moto-deploy.ts   (test/all.sh runs it; needs `moto_server` on PATH)
 * Prints one line per check and ends with "N passed, N failed"; exit status 1 when a check failed.
 *
 * The emulator's gaps, worked around here and covered by the template assertions instead:
 * - it refuses SSM parameters under /aws/, so the AMI comes from a stand-in parameter
 *   (`-c amiParameter=...`);
 * - change sets misbehave: deploy with `--method=direct`, updates with `--no-previous-parameters`;
 * - it reads templates and assets from "S3" only when AWS_ENDPOINT_URL_S3_FOR_CLOUDFORMATION
 *   names it as localhost;
 * - its stack delete leaves route tables and the internet gateway behind, so they are removed first;
 * - its stack delete leaves an AWS::IAM::ManagedPolicy attached (its model has no delete), so the sweep's
 *   instance policy is detached from the foundation role and deleted by hand, as CloudFormation does;
 * - it silently skips alarms, scaling policies, associations and bucket policies;
 * - it runs no Lambda without Docker, so it never answers a custom resource (a stack with one stays
 *   CREATE_IN_PROGRESS), and it sends custom resources no Update: the test plays CloudFormation and the
 *   Provider framework for the config restart resources ({@link RestartResponder}), calling the real
 *   handler logic against the emulator; their Update path is tested in test/lambda/config-restart/;
 * - its CloudFormation builds a stack's resources lazily: any call that reads them (DescribeStackResources,
 *   DescribeStacks with outputs, a custom resource response, which checks whether all are created) builds the
 *   ones not built yet in the caller's own thread, so a call made while CreateStack is still running builds
 *   resources twice, and the stack, its custom resources answered or not, never completes. The CLI talks to the
 *   emulator through a {@link StackOperationGate}, which tells the responder when no CreateStack or UpdateStack
 *   call is running; the responder reads the stack only then.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, IncomingMessage, request as httpRequest, ServerResponse } from 'node:http';
import { AddressInfo, createServer } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { AutoScalingClient, DescribeAutoScalingGroupsCommand, UpdateAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import { CloudFormationClient, DescribeStackResourcesCommand, DescribeStacksCommand, GetTemplateCommand } from '@aws-sdk/client-cloudformation';
import {
  DeleteInternetGatewayCommand,
  DeleteRouteTableCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeInternetGatewaysCommand,
  DescribeRouteTablesCommand,
  DescribeVpcsCommand,
  DetachInternetGatewayCommand,
  DisassociateRouteTableCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { DeletePolicyCommand, DetachRolePolicyCommand, IAMClient, ListAttachedRolePoliciesCommand } from '@aws-sdk/client-iam';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { GetParameterCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { RESTART_RESOURCE_TYPE } from '../../lib/constructs/config-restart';
import { FOUNDATION_STACK, groupName, jobParameterName, jobTagValue, storeKeys, sweepStackName, TAGS } from '../../lib/contract';
import { s3Store } from '../../lib/store';
import { onEvent, RestartProperties } from '../../lambda/config-restart/restart';

const ROOT = path.join(__dirname, '..', '..');
const ACCOUNT = '123456789012'; // moto's default account
const REGION = 'us-east-1';
const AMI_PARAMETER = '/spot-sweep/smoke/ami-id';
const FOUNDATION = FOUNDATION_STACK;

let passed = 0;
let failed = 0;
function check(name: string, ok: boolean, detail = ''): void {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? 'ok' : 'not ok'} - ${name}${!ok && detail ? `: ${detail}` : ''}`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/**
 * A pass-through HTTP proxy in front of the emulator for the CDK CLI, which counts the CreateStack and
 * UpdateStack calls in flight (the emulator builds a stack's resources inside those calls; see the header).
 */
class StackOperationGate {
  private inFlight = 0;
  private readers = 0;
  private server = createHttpServer((req, res) => void this.forward(req, res));

  private constructor(private readonly target: number) {}

  static async start(target: number): Promise<{ gate: StackOperationGate; endpoint: string }> {
    const gate = new StackOperationGate(target);
    await new Promise<void>((resolve) => gate.server.listen(0, '127.0.0.1', resolve));
    return { gate, endpoint: `http://127.0.0.1:${(gate.server.address() as AddressInfo).port}` };
  }

  /**
   * Runs `read` (calls that read the stack) once no CreateStack or UpdateStack call is running; such a call
   * that comes meanwhile waits until `read` has finished.
   */
  async whileIdle<T>(read: () => Promise<T>): Promise<T> {
    while (this.inFlight > 0) await new Promise((r) => setTimeout(r, 100));
    this.readers++;
    try {
      return await read();
    } finally {
      this.readers--;
    }
  }

  close(): void {
    this.server.closeAllConnections();
    this.server.close();
  }

  private async forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    // The query protocol names the action in the form body; the JSON protocols in X-Amz-Target.
    const action = `${req.headers['x-amz-target'] ?? ''} ${body.subarray(0, 200).toString('latin1')}`;
    const stackOperation = /(^|[.&\s])(Action=)?(CreateStack|UpdateStack)(&|\s|$)/.test(action);
    if (stackOperation) {
      this.inFlight++;
      while (this.readers > 0) await new Promise((r) => setTimeout(r, 50));
    }
    const done = (): void => {
      if (stackOperation) this.inFlight--;
    };
    const upstream = httpRequest({ host: '127.0.0.1', port: this.target, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
      answer.on('end', done);
    });
    upstream.on('error', (err) => {
      done();
      res.writeHead(502).end(String(err));
    });
    upstream.end(body);
  }
}

/**
 * Runs the CDK CLI against the emulator; resolves to whether it succeeded, printing its output on failure.
 * Asynchronous, so that the {@link RestartResponder} answers the stack's custom resources meanwhile.
 */
function cdk(env: NodeJS.ProcessEnv, args: string[]): Promise<boolean> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn('npx', ['--no-install', 'cdk', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.on('data', (d) => (output += String(d)));
    child.stderr?.on('data', (d) => (output += String(d)));
    const timer = setTimeout(() => child.kill('SIGTERM'), 600_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      console.log(`# cdk ${args.slice(0, 2).join(' ')}: exit ${code} after ${((Date.now() - started) / 1000).toFixed(0)} s`);
      if (code !== 0) console.log(output.split('\n').slice(-40).join('\n'));
      resolve(code === 0);
    });
  });
}

/**
 * CloudFormation and the Provider framework for the sweep's restart resources, as far as the emulator
 * needs them: for each restart resource of the stack not seen yet, the real handler logic
 * (lambda/config-restart/restart.ts) handles its Create against the emulator (the store in its S3, the
 * group in its Auto Scaling), with the properties resolved as CloudFormation would (Job: the value of the
 * config's job parameter); then, while the stack is being created, the response moto waits for goes to its
 * cfnresponse URL (during an update moto waits for none).
 */
class RestartResponder {
  private readonly handled = new Map<string, Promise<void>>();
  private stopped = false;
  private loop: Promise<void> | undefined;
  readonly errors: string[] = [];

  constructor(
    private readonly endpoint: string,
    private readonly clients: { cfn: CloudFormationClient; ssm: SSMClient; asg: AutoScalingClient; s3: S3Client },
    private readonly stack: string,
    private readonly sweep: string,
    private readonly gate: StackOperationGate,
  ) {}

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        await this.gate.whileIdle(() => this.poll()).catch(() => undefined); // the stacks may not exist yet
        await new Promise((r) => setTimeout(r, 500));
      }
    })();
  }

  /** Waits until the restart resource of `config` has been handled (or `ms` pass). */
  async handledConfig(config: string, ms = 60_000): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const done = this.handled.get(config);
      if (done) return done.then(() => true, () => false);
      await new Promise((r) => setTimeout(r, 200));
    }
    return false;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async poll(): Promise<void> {
    const { cfn, ssm, asg } = this.clients;
    const stack = (await cfn.send(new DescribeStacksCommand({ StackName: this.stack }))).Stacks?.[0];
    if (!stack?.StackId) return;
    const foundation = (await cfn.send(new DescribeStacksCommand({ StackName: FOUNDATION }))).Stacks?.[0];
    const bucket = foundation?.Outputs?.find((o) => o.OutputKey === 'ArtifactBucketName')?.OutputValue;
    if (!bucket) return;
    const store = s3Store({ client: this.clients.s3, bucket });
    const resources = (await cfn.send(new DescribeStackResourcesCommand({ StackName: this.stack }))).StackResources ?? [];
    const restarts = resources.filter((r) => r.ResourceType === RESTART_RESOURCE_TYPE);
    if (restarts.length === 0) return;
    const template = JSON.parse((await cfn.send(new GetTemplateCommand({ StackName: this.stack }))).TemplateBody ?? '{}') as { Resources: Record<string, { Properties: RestartProperties }> };
    for (const r of restarts) {
      const logicalId = r.LogicalResourceId ?? '';
      const { Config, GroupName } = template.Resources[logicalId]?.Properties ?? {};
      if (!Config || this.handled.has(Config)) continue;
      const creating = stack.StackStatus === 'CREATE_IN_PROGRESS';
      this.handled.set(
        Config,
        (async () => {
          const Job = (await ssm.send(new GetParameterCommand({ Name: jobParameterName(this.sweep, Config) }))).Parameter?.Value ?? '';
          const deps = {
            store,
            startGroup: async (name: string) => void (await asg.send(new UpdateAutoScalingGroupCommand({ AutoScalingGroupName: name, MinSize: 0, MaxSize: 1, DesiredCapacity: 1 }))),
            // A Create: the group is new, nothing runs an old job.
            liveInstances: async () => [],
            replaceInstance: async () => undefined,
            log: () => undefined,
          };
          const answer = await onEvent(deps, this.sweep, { RequestType: 'Create', ResourceProperties: { Config, GroupName, Job } });
          if (!creating) return;
          const res = await fetch(`${this.endpoint}/cloudformation_${REGION}/cfnresponse?stack=${encodeURIComponent(stack.StackId!)}`, {
            method: 'PUT',
            body: JSON.stringify({ Status: 'SUCCESS', StackId: stack.StackId, LogicalResourceId: logicalId, PhysicalResourceId: answer.PhysicalResourceId, Data: answer.Data }),
          });
          if (!res.ok) throw new Error(`moto refused the response for ${logicalId}: HTTP ${res.status}`);
        })().catch((err: Error) => {
          this.errors.push(`${Config}: ${err.message}`);
          throw err;
        }),
      );
    }
  }
}

/**
 * The emulator's gap: a deleted stack's AWS::IAM::ManagedPolicy stays, attached to the foundation's instance role,
 * which then cannot be deleted. Detaches and deletes every customer managed policy of that role, as CloudFormation
 * does when it deletes the sweep stack.
 */
async function removeLeftoverManagedPolicies(iam: IAMClient, cfn: CloudFormationClient, foundation: string): Promise<void> {
  const resources = (await cfn.send(new DescribeStackResourcesCommand({ StackName: foundation }))).StackResources ?? [];
  const role = resources.find((r) => r.ResourceType === 'AWS::IAM::Role' && r.LogicalResourceId?.startsWith('InstanceRole'))?.PhysicalResourceId;
  if (!role) return;
  for (const policy of (await iam.send(new ListAttachedRolePoliciesCommand({ RoleName: role }))).AttachedPolicies ?? []) {
    if (!policy.PolicyArn || policy.PolicyArn.includes(':iam::aws:policy/')) continue;
    await iam.send(new DetachRolePolicyCommand({ RoleName: role, PolicyArn: policy.PolicyArn }));
    await iam.send(new DeletePolicyCommand({ PolicyArn: policy.PolicyArn }));
    console.log(`# removed the managed policy the emulator left on ${role}: ${policy.PolicyArn}`);
  }
}

async function main(): Promise<void> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'spot-sweep-smoke-'));
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const moto: ChildProcess = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  moto.on('error', (err) => {
    console.log(`not ok - moto_server could not start (${err.message}); install it with: pip install "moto[server]"`);
    console.log('0 passed, 1 failed');
    process.exit(1);
  });
  const { gate, endpoint: gated } = await StackOperationGate.start(port);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_REGION: REGION,
    AWS_DEFAULT_REGION: REGION,
    AWS_ENDPOINT_URL: gated,
    AWS_ENDPOINT_URL_S3_FOR_CLOUDFORMATION: `http://localhost:${port}`,
    CDK_DISABLE_CLI_TELEMETRY: 'true',
  };
  const client = { region: REGION, endpoint, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } };
  const ec2 = new EC2Client(client);
  const asg = new AutoScalingClient(client);
  const cfn = new CloudFormationClient(client);
  const s3 = new S3Client({ ...client, forcePathStyle: true });
  const ssm = new SSMClient(client);
  let responder: RestartResponder | undefined;

  try {
    for (let i = 0; ; i++) {
      try {
        await ec2.send(new DescribeVpcsCommand({}));
        break;
      } catch (err) {
        if (i > 100) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }

    check('cdk bootstrap', await cdk(env, ['bootstrap', `aws://${ACCOUNT}/${REGION}`]));
    const images = await ec2.send(new DescribeImagesCommand({}));
    const ami = images.Images?.find((i) => i.ImageId)?.ImageId ?? 'ami-00000000';
    await ssm.send(new PutParameterCommand({ Name: AMI_PARAMETER, Value: ami, Type: 'String', DataType: 'aws:ec2:image' }));

    // The seed plan, copied so the update below can change it.
    const spec = path.join(work, 'seed-plan.json');
    copyFileSync(path.join(ROOT, 'sweeps', 'seed-plan.json'), spec);
    const sweep = JSON.parse(readFileSync(spec, 'utf8')) as { name: string; configs: { name: string }[] };
    const stack = sweepStackName(sweep.name);
    const deployArgs = (out: string): string[] => [
      'deploy', FOUNDATION, stack, '-c', `sweep=${spec}`, '-c', `amiParameter=${AMI_PARAMETER}`,
      '--method=direct', '--require-approval', 'never', '--no-previous-parameters', '-o', path.join(work, out),
    ];
    responder = new RestartResponder(endpoint, { cfn, ssm, asg, s3 }, stack, sweep.name, gate);
    responder.start();
    check('cdk deploy of the foundation and the seed-plan sweep', await cdk(env, deployArgs('cdk.out.1')));
    check('every config restart resource was handled without an error', responder.errors.length === 0, responder.errors.join('; '));

    const stacks = async (): Promise<Map<string, string>> => {
      const r = await cfn.send(new DescribeStacksCommand({}));
      return new Map((r.Stacks ?? []).map((s) => [s.StackName ?? '', s.StackStatus ?? '']));
    };
    const afterDeploy = await stacks();
    check(`${FOUNDATION} and ${stack} are CREATE_COMPLETE`, afterDeploy.get(FOUNDATION) === 'CREATE_COMPLETE' && afterDeploy.get(stack) === 'CREATE_COMPLETE', JSON.stringify([...afterDeploy]));

    const groupsOf = async (): Promise<Map<string, { desired: number; instances: string[] }>> => {
      const r = await asg.send(new DescribeAutoScalingGroupsCommand({}));
      return new Map(
        (r.AutoScalingGroups ?? []).map((g) => [g.AutoScalingGroupName ?? '', { desired: g.DesiredCapacity ?? 0, instances: (g.Instances ?? []).map((i) => i.InstanceId ?? '') }]),
      );
    };
    const taggedInstances = async (job: string): Promise<string[]> => {
      const r = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: `tag:${TAGS.job}`, Values: [job] }, { Name: 'instance-state-name', Values: ['pending', 'running'] }] }));
      return (r.Reservations ?? []).flatMap((res) => (res.Instances ?? []).map((i) => i.InstanceId ?? ''));
    };
    const groups = await groupsOf();
    for (const c of sweep.configs) {
      const group = groups.get(groupName(sweep.name, c.name));
      const tagged = await taggedInstances(jobTagValue(sweep.name, c.name));
      check(
        `config ${c.name}: its restart resource set group ${groupName(sweep.name, c.name)} to desired 1, which launched an instance tagged ${TAGS.job}=${jobTagValue(sweep.name, c.name)}`,
        group !== undefined && group.desired === 1 && group.instances.length === 1 && tagged.includes(group.instances[0]),
        `group ${JSON.stringify(group)}, tagged ${JSON.stringify(tagged)}`,
      );
    }

    const artifacts = (await cfn.send(new DescribeStacksCommand({ StackName: FOUNDATION }))).Stacks?.[0]?.Outputs?.find((o) => o.OutputKey === 'ArtifactBucketName')?.OutputValue;
    const job = JSON.parse((await ssm.send(new GetParameterCommand({ Name: jobParameterName(sweep.name, 'o') }))).Parameter?.Value ?? '{}');
    check(`config o: its job.json is in ${jobParameterName(sweep.name, 'o')} with the artifact bucket as its store`, job.config === 'o' && job.store === `s3://${artifacts}/${storeKeys.config(sweep.name, 'o')}`, JSON.stringify(job).slice(0, 200));

    // Update: a new config and a changed one; the stack updates in place.
    const updated = JSON.parse(readFileSync(spec, 'utf8'));
    updated.configs.push({ name: 's', description: 'added by the smoke test', examples: 876000 });
    updated.configs[0].train = { ...(updated.configs[0].train ?? {}), epochs: 4 };
    writeFileSync(spec, JSON.stringify(updated, null, 2));
    check('cdk deploy of the updated sweep', await cdk(env, deployArgs('cdk.out.2')));
    check(`${stack} is UPDATE_COMPLETE`, (await stacks()).get(stack) === 'UPDATE_COMPLETE', (await stacks()).get(stack));
    // The added config's restart resource is created by the update (the emulator does not wait for it).
    check('the added config s was started by its restart resource', await responder.handledConfig('s'), responder.errors.join('; '));
    check('the added config s launched its instance', (await taggedInstances(jobTagValue(sweep.name, 's'))).length === 1);

    // Destroy. The emulator leaves the foundation VPC's route tables and internet gateway behind.
    const foundation = (await cfn.send(new DescribeStacksCommand({ StackName: FOUNDATION }))).Stacks?.[0];
    const bucket = foundation?.Outputs?.find((o) => o.OutputKey === 'ArtifactBucketName')?.OutputValue ?? '';
    const vpcId = foundation?.Outputs?.find((o) => o.OutputKey === 'VpcId')?.OutputValue ?? '';
    check('cdk destroy of the sweep', await cdk(env, ['destroy', '--force', stack, '-c', `sweep=${spec}`, '-c', `amiParameter=${AMI_PARAMETER}`, '-o', path.join(work, 'cdk.out.3')]));
    const leftInstances = (await Promise.all(updated.configs.map((c: { name: string }) => taggedInstances(jobTagValue(sweep.name, c.name))))).flat();
    const sweepGroups = new Set(updated.configs.map((c: { name: string }) => groupName(sweep.name, c.name)));
    const leftGroups = [...(await groupsOf()).keys()].filter((g) => sweepGroups.has(g));
    check('no Auto Scaling group and no running instance of the sweep is left', leftGroups.length === 0 && leftInstances.length === 0, `groups ${leftGroups}, instances ${leftInstances}`);

    await removeLeftoverManagedPolicies(new IAMClient(client), cfn, FOUNDATION);

    const tables = await ec2.send(new DescribeRouteTablesCommand({ Filters: [{ Name: 'vpc-id', Values: [vpcId] }] }));
    for (const table of tables.RouteTables ?? []) {
      if (table.Associations?.some((a) => a.Main)) continue;
      for (const a of table.Associations ?? []) if (a.RouteTableAssociationId) await ec2.send(new DisassociateRouteTableCommand({ AssociationId: a.RouteTableAssociationId }));
      await ec2.send(new DeleteRouteTableCommand({ RouteTableId: table.RouteTableId }));
    }
    const gateways = await ec2.send(new DescribeInternetGatewaysCommand({ Filters: [{ Name: 'attachment.vpc-id', Values: [vpcId] }] }));
    for (const igw of gateways.InternetGateways ?? []) {
      await ec2.send(new DetachInternetGatewayCommand({ InternetGatewayId: igw.InternetGatewayId, VpcId: vpcId }));
      await ec2.send(new DeleteInternetGatewayCommand({ InternetGatewayId: igw.InternetGatewayId }));
    }
    check('cdk destroy of the foundation', await cdk(env, ['destroy', '--force', FOUNDATION, '-o', path.join(work, 'cdk.out.4')]));
    const afterDestroy = await stacks();
    const live = [...afterDestroy].filter(([name, status]) => [FOUNDATION, stack].includes(name) && status !== 'DELETE_COMPLETE');
    check('no spot-sweep stack is left', live.length === 0, JSON.stringify(live));
    const vpcs = await ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: 'vpc-id', Values: [vpcId] }] }));
    check('the foundation VPC is gone', (vpcs.Vpcs ?? []).length === 0);
    // The artifact bucket is kept on destroy by default (results outlive the stacks).
    const kept = await s3.send(new ListObjectsV2Command({ Bucket: bucket })).then(() => true, () => false);
    check('the artifact bucket and its results are kept', kept);
  } catch (err) {
    check('the smoke test ran to its end', false, (err as Error).stack ?? String(err));
  } finally {
    await responder?.stop();
    gate.close();
    moto.kill();
    rmSync(work, { recursive: true, force: true });
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed === 0 ? 0 : 1;
}

void main();
