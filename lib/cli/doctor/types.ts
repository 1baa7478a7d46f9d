import type { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { AwsSession } from '../aws';
import { CallerIdentity, getCallerIdentity, listServiceQuotas, ServiceQuota } from './identity-quotas';

/** What one check found. */
export type CheckResult = 'ok' | 'warn' | 'blocker' | 'skipped';

/** One line of `spot-sweep doctor`: the check, its result, what it found and, unless ok, the fix. */
export interface Check {
  readonly name: string;
  readonly result: CheckResult;
  readonly finding: string;
  /** What to do about it; empty when there is nothing to do. */
  readonly fix: string;
}

export const check = (name: string, result: CheckResult, finding: string, fix = ''): Check => ({ name, result, finding, fix });

/** Service Quotas, as the checks use it (tests pass their own). */
export interface QuotaSource {
  /** Every applied quota of a service (ListServiceQuotas, all pages). */
  list(serviceCode: string): Promise<readonly ServiceQuota[]>;
}

/** The clients the checks call, injected so tests can hand in emulated or mocked ones. */
export interface DoctorDeps {
  readonly region: string;
  readonly env: NodeJS.ProcessEnv;
  readonly cloudFormation: CloudFormationClient;
  readonly ec2: EC2Client;
  readonly s3: S3Client;
  readonly ssm: SSMClient;
  readonly sts: { callerIdentity(): Promise<CallerIdentity> };
  readonly quotas: QuotaSource;
}

/**
 * The deps of a real run: the session's clients, and SSM, STS and Service Quotas with the same credentials
 * (the session's provider chain) and region. Endpoints from AWS_ENDPOINT_URL_<SERVICE ID> else
 * AWS_ENDPOINT_URL, as the SDKs read them (service ids SSM, STS, "Service Quotas").
 * @see https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html
 * @see https://docs.aws.amazon.com/sdkref/latest/guide/ss-endpoints-table.html
 */
export function sessionDeps(session: AwsSession, env: NodeJS.ProcessEnv): DoctorDeps {
  const ec2 = session.ec2();
  const credentials = ec2.config.credentials;
  const { SSMClient: Client } = require('@aws-sdk/client-ssm') as typeof import('@aws-sdk/client-ssm');
  return {
    region: session.region,
    env,
    cloudFormation: session.cloudFormation(),
    ec2,
    s3: session.s3(),
    ssm: new Client({ region: session.region, credentials, maxAttempts: 3, ...(endpointOf(env, 'SSM') ? { endpoint: endpointOf(env, 'SSM') } : {}) }),
    sts: { callerIdentity: () => getCallerIdentity(callTarget(session, env, 'STS')) },
    quotas: serviceQuotas(session, env),
  };
}

const endpointOf = (env: NodeJS.ProcessEnv, id: string): string | undefined => env[`AWS_ENDPOINT_URL_${id}`] ?? env.AWS_ENDPOINT_URL;

function callTarget(session: AwsSession, env: NodeJS.ProcessEnv, id: string) {
  const endpoint = endpointOf(env, id);
  return { region: session.region, credentials: session.ec2().config.credentials, ...(endpoint ? { endpoint } : {}) };
}

/** Service Quotas with the session's credentials and region. */
export function serviceQuotas(session: AwsSession, env: NodeJS.ProcessEnv): QuotaSource {
  return { list: (serviceCode) => listServiceQuotas(callTarget(session, env, 'SERVICE_QUOTAS'), serviceCode) };
}

/** Releases the client sessionDeps made beyond the session's own (session.close() releases the rest). */
export function closeDeps(deps: DoctorDeps): void {
  deps.ssm.destroy();
}
