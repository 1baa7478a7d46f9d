import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { CloudFormationClient, CreateStackCommand } from '@aws-sdk/client-cloudformation';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { main } from '../../lib/cli/main';
import { FOUNDATION_STACK, sweepStackName } from '../../lib/contract';

/**
 * The AWS API emulator for the CLI tests: moto_server on 127.0.0.1, a free port, one per test file.
 * @see https://docs.getmoto.org/en/latest/docs/server_mode.html
 */
export interface Moto {
  readonly endpoint: string;
  /** An environment with dummy credentials, the region and the emulator's endpoint. */
  readonly env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

export const REGION = 'us-east-1';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function startMoto(): Promise<Moto> {
  const port = await freePort();
  const child: ChildProcess = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr += String(d)));
  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const r = await fetch(`${endpoint}/moto-api/`);
      if (r.ok) break;
    } catch {
      // not up yet
    }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`moto_server did not start on ${endpoint}: ${stderr.slice(-500)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const home = mkdtempSync(path.join(os.tmpdir(), 'spot-sweep-home-'));
  return {
    endpoint,
    env: { PATH: process.env.PATH, HOME: home, AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_REGION: REGION, AWS_ENDPOINT_URL: endpoint },
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

const clientConfig = (moto: Moto) => ({ region: REGION, endpoint: moto.endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });

/** A stand-in FoundationStack: a bucket and the ArtifactBucketName output the CLI reads. */
export async function deployFoundation(moto: Moto, bucket: string): Promise<void> {
  const cfn = new CloudFormationClient(clientConfig(moto));
  await cfn.send(
    new CreateStackCommand({
      StackName: FOUNDATION_STACK,
      TemplateBody: JSON.stringify({
        Resources: { Artifacts: { Type: 'AWS::S3::Bucket', Properties: { BucketName: bucket } } },
        Outputs: { ArtifactBucketName: { Value: { Ref: 'Artifacts' } } },
      }),
    }),
  );
  cfn.destroy();
}

/** A stand-in sweep stack `SpotSweep-<sweep>` (the CLI only checks that it exists). */
export async function deploySweepStack(moto: Moto, sweep: string): Promise<void> {
  const cfn = new CloudFormationClient(clientConfig(moto));
  await cfn.send(
    new CreateStackCommand({
      StackName: sweepStackName(sweep),
      TemplateBody: JSON.stringify({ Resources: { Marker: { Type: 'AWS::SSM::Parameter', Properties: { Type: 'String', Value: sweep, Name: `/spot-sweep-test/${sweep}` } } } }),
    }),
  );
  cfn.destroy();
}

export async function putObjects(moto: Moto, bucket: string, objects: Record<string, string | object>): Promise<void> {
  const s3 = new S3Client({ ...clientConfig(moto), forcePathStyle: true });
  for (const [key, body] of Object.entries(objects)) {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: typeof body === 'string' ? body : JSON.stringify(body) }));
  }
  s3.destroy();
}

export function s3Client(moto: Moto): S3Client {
  return new S3Client({ ...clientConfig(moto), forcePathStyle: true });
}

export function clientOptions(moto: Moto) {
  return clientConfig(moto);
}

/** Reads an object of the bucket; undefined when there is none. */
export async function getObject(moto: Moto, bucket: string, key: string): Promise<string | undefined> {
  const s3 = s3Client(moto);
  try {
    return await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body?.transformToString();
  } catch (err) {
    if ((err as Error).name === 'NoSuchKey') return undefined;
    throw err;
  } finally {
    s3.destroy();
  }
}

/** Writes a sweep spec with the given config names into a temporary directory; returns its path. */
export function writeSpec(name: string, configs: readonly string[], budgetUsd = 50): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'spot-sweep-spec-'));
  const file = path.join(dir, `${name}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      name,
      budgetUsd,
      data: 's3://example-data/two-tower/',
      defaults: { instanceTypes: ['g5.xlarge'], market: 'spot', maxRuntimeHours: 2, train: { folds: 3, epochs: 2 } },
      configs: configs.map((c) => ({ name: c, examples: 10000 })),
    }),
  );
  return file;
}

/** Runs the CLI in this process with `env`; collects what it prints. `isTTY` plays a terminal. */
export async function cli(env: NodeJS.ProcessEnv, args: string[], extra: { signal?: AbortSignal; isTTY?: boolean } = {}) {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { out: (t) => (stdout += t), err: (t) => (stderr += t), env, ...extra });
  return { code, stdout, stderr };
}
