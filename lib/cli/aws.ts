import * as path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import type { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import type { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import type { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { FOUNDATION_STACK, STACK_OUTPUTS, sweepStackName } from '../contract';
import { SweepSpec } from '../spec/types';
import { S3AccessDenied, s3Store, SweepStore } from '../store';
import { hasAwsCredentials } from './spot-prices';

/**
 * Shared by `status`, `logs`, `results` and `stop`: the AWS
 * clients (credentials, region and endpoints from the environment the CLI was given), the stack
 * look-ups and the translation of AWS errors into sentences a user can act on.
 */

/** A problem with the AWS setup, said as a sentence; the CLI prints it and exits EXIT_CODES.cli.aws. */
export class AwsSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AwsSetupError';
  }
}

export { FOUNDATION_STACK };

export const NO_CREDENTIALS = 'no AWS credentials: run aws configure or set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).';

/** Options every AWS command accepts. */
export interface AwsOptions {
  /** `--region`; @default - AWS_REGION, AWS_DEFAULT_REGION, then the profile's region */
  readonly region?: string;
  /** `--bucket`; @default - the FoundationStack's ArtifactBucketName output */
  readonly bucket?: string;
}

/** SDK service ids, as AWS_ENDPOINT_URL_<id> names them. @see https://docs.aws.amazon.com/sdkref/latest/guide/ss-endpoints-table.html */
type ServiceId = 'S3' | 'CLOUDFORMATION' | 'AUTO_SCALING' | 'EC2' | 'SSM' | 'CLOUDWATCH' | 'STS' | 'SERVICE_QUOTAS';

/**
 * The AWS clients of one CLI run, built from the environment the CLI was given (so tests pass their
 * own): credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY when set, else the SDK's default
 * chain for AWS_PROFILE (profiles, SSO, web identity); endpoints from AWS_ENDPOINT_URL_<SERVICE> or
 * AWS_ENDPOINT_URL (a local emulator such as moto_server).
 * @see https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html
 */
export class AwsSession {
  private readonly cache = new Map<ServiceId, unknown>();

  private constructor(
    public readonly region: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /** Checks credentials and region before any call; throws AwsSetupError with the fix. */
  static async open(options: AwsOptions, env: NodeJS.ProcessEnv): Promise<AwsSession> {
    if (!hasAwsCredentials(env)) throw new AwsSetupError(NO_CREDENTIALS);
    const region = options.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? (await profileRegion(env));
    if (!region) {
      throw new AwsSetupError('no AWS region: pass --region (e.g. --region us-east-1), set AWS_REGION, or set a region in your AWS profile (aws configure).');
    }
    return new AwsSession(region, env);
  }

  /**
   * The configuration every client of this session gets: its region, the profile or keys of its environment,
   * and the endpoint from AWS_ENDPOINT_URL_<service> else AWS_ENDPOINT_URL. Public for clients made per call
   * (doctor's STS and Service Quotas).
   */
  clientConfig(service: ServiceId): Record<string, unknown> {
    const env = this.env;
    const endpoint = env[`AWS_ENDPOINT_URL_${service}`] ?? env.AWS_ENDPOINT_URL;
    return {
      region: this.region,
      maxAttempts: 3,
      ...(env.AWS_PROFILE ? { profile: env.AWS_PROFILE } : {}),
      ...(env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
        ? { credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, sessionToken: env.AWS_SESSION_TOKEN } }
        : {}),
      ...(endpoint ? { endpoint } : {}),
    };
  }

  private client<T>(service: ServiceId, make: (config: Record<string, unknown>) => T): T {
    if (!this.cache.has(service)) this.cache.set(service, make(this.clientConfig(service)));
    return this.cache.get(service) as T;
  }

  // The SDK packages are loaded when first used: each takes a noticeable moment to load.
  s3(): S3Client {
    return this.client('S3', (c) => {
      const { S3Client: Client } = require('@aws-sdk/client-s3') as typeof import('@aws-sdk/client-s3');
      // Path-style addressing for emulators, whose endpoint has no bucket subdomains.
      return new Client({ ...c, forcePathStyle: c.endpoint !== undefined, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
    });
  }

  cloudFormation(): CloudFormationClient {
    return this.client('CLOUDFORMATION', (c) => new (require('@aws-sdk/client-cloudformation') as typeof import('@aws-sdk/client-cloudformation')).CloudFormationClient(c));
  }

  autoScaling(): AutoScalingClient {
    return this.client('AUTO_SCALING', (c) => new (require('@aws-sdk/client-auto-scaling') as typeof import('@aws-sdk/client-auto-scaling')).AutoScalingClient(c));
  }

  ec2(): EC2Client {
    return this.client('EC2', (c) => new (require('@aws-sdk/client-ec2') as typeof import('@aws-sdk/client-ec2')).EC2Client(c));
  }

  ssm(): SSMClient {
    return this.client('SSM', (c) => new (require('@aws-sdk/client-ssm') as typeof import('@aws-sdk/client-ssm')).SSMClient(c));
  }

  cloudWatch(): CloudWatchClient {
    return this.client('CLOUDWATCH', (c) => new (require('@aws-sdk/client-cloudwatch') as typeof import('@aws-sdk/client-cloudwatch')).CloudWatchClient(c));
  }

  /** Releases the clients' sockets so the process can exit. */
  close(): void {
    for (const c of this.cache.values()) (c as { destroy(): void }).destroy();
    this.cache.clear();
  }

  /**
   * The outputs of a deployed stack; throws AwsSetupError with the deploy command when it is not
   * deployed in this region.
   */
  async stackOutputs(stackName: string, deployHint: string): Promise<ReadonlyMap<string, string>> {
    const { DescribeStacksCommand } = await import('@aws-sdk/client-cloudformation');
    const notFound = new AwsSetupError(`stack ${stackName} not found in ${this.region}: deploy it with ${deployHint}.`);
    let stack;
    try {
      stack = (await this.cloudFormation().send(new DescribeStacksCommand({ StackName: stackName }))).Stacks?.[0];
    } catch (err) {
      // DescribeStacks answers ValidationError "Stack with id X does not exist" for an unknown stack.
      // @see https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStacks.html
      // Stack names here come from lib/contract and validated sweep names, so a ValidationError can
      // only mean the stack is missing: the name is enough, the message text is not parsed.
      if ((err as Error).name === 'ValidationError') throw notFound;
      throw explainAwsError(err, `CloudFormation DescribeStacks ${stackName}`);
    }
    if (!stack || stack.StackStatus === 'DELETE_COMPLETE') throw notFound;
    return new Map((stack.Outputs ?? []).filter((o) => o.OutputKey && o.OutputValue !== undefined).map((o) => [o.OutputKey as string, o.OutputValue as string]));
  }

  /** The artifact bucket: `--bucket`, else the FoundationStack's ArtifactBucketName output. */
  async bucket(options: AwsOptions): Promise<string> {
    if (options.bucket) return options.bucket;
    const outputs = await this.stackOutputs(FOUNDATION_STACK, `npx cdk deploy ${FOUNDATION_STACK}`);
    const name = outputs.get(STACK_OUTPUTS.artifactBucket);
    if (!name) throw new AwsSetupError(`stack ${FOUNDATION_STACK} in ${this.region} has no ${STACK_OUTPUTS.artifactBucket} output: deploy the current version with npx cdk deploy ${FOUNDATION_STACK}, or pass --bucket NAME.`);
    return name;
  }

  /** Throws AwsSetupError unless the sweep's stack is deployed. */
  async requireSweepStack(spec: SweepSpec): Promise<void> {
    const file = spec.specFile ? relativeSpec(spec.specFile) : `<spec of ${spec.name}>.json`;
    await this.stackOutputs(sweepStackName(spec.name), `npx cdk deploy -c sweep=${file} --all`);
  }
}

function relativeSpec(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel.startsWith('..') ? file : rel;
}

/** The region of the profile in the shared config file, through the SDK's own resolution. */
async function profileRegion(env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const { S3Client: Client } = await import('@aws-sdk/client-s3');
  const probe = new Client(env.AWS_PROFILE ? { profile: env.AWS_PROFILE } : {});
  try {
    return await probe.config.region();
  } catch {
    return undefined;
  } finally {
    probe.destroy();
  }
}

const CREDENTIAL_ERRORS = new Set([
  'CredentialsProviderError',
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AuthFailure',
]);

const ACCESS_ERRORS = new Set(['AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation', 'Forbidden', 'AllAccessDisabled']);
/** Node's socket error codes for an endpoint that cannot be reached. */
const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * An AWS SDK error as a sentence: credentials, permissions or network. Anything else keeps the
 * service's own message, with the call that failed.
 */
export function explainAwsError(err: unknown, call: string): AwsSetupError {
  const e = err as { name?: string; message?: string; code?: string };
  const name = e.name ?? 'Error';
  const message = (e.message ?? String(err)).split('\n')[0];
  if (name === 'CredentialsProviderError') return new AwsSetupError(NO_CREDENTIALS);
  // The store already names the permission and the ARN (lib/store S3AccessDenied).
  if (err instanceof S3AccessDenied) return new AwsSetupError(`${err.message} Grant it to the identity you use (aws sts get-caller-identity names it).`);
  if (name === 'NoSuchBucket') {
    return new AwsSetupError(`${call}: the bucket does not exist in this account; check --bucket, or deploy the foundation with npx cdk deploy ${FOUNDATION_STACK}.`);
  }
  if (CREDENTIAL_ERRORS.has(name)) {
    return new AwsSetupError(`AWS refused the credentials (${name}: ${message}) during ${call}: refresh them (aws sso login, or aws configure) and try again.`);
  }
  if (ACCESS_ERRORS.has(name)) {
    return new AwsSetupError(`access denied during ${call} (${message}): the identity you use needs that permission.`);
  }
  if (e.code !== undefined && NETWORK_ERRORS.has(e.code)) {
    return new AwsSetupError(`cannot reach AWS during ${call} (${message}): check the network, or AWS_ENDPOINT_URL if you set one.`);
  }
  return new AwsSetupError(`${call} failed: ${name}: ${message}`);
}

/** Runs an AWS call and turns its errors into {@link AwsSetupError}s naming the call. */
export async function aws<T>(call: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof AwsSetupError) throw err;
    throw explainAwsError(err, call);
  }
}

/**
 * The sweep store in the artifact bucket (lib/store, the same module the Lambdas use), through the
 * session's S3 client so `--region` and the endpoint apply; SDK errors become sentences.
 */
export async function openStore(session: AwsSession, options: AwsOptions): Promise<{ bucket: string; store: SweepStore }> {
  const bucket = await session.bucket(options);
  return { bucket, store: s3Store({ client: session.s3(), bucket, explain: explainAwsError }) };
}

/** Text from a stream of byte chunks, never splitting a UTF-8 character between two chunks. */
export function utf8Stream(): (chunk: Buffer) => string {
  const decoder = new StringDecoder('utf8');
  return (chunk) => decoder.write(chunk);
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}
