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
 * The deps of a real run: the session's clients (SSM among them), and STS and Service Quotas with the same
 * configuration (AwsSession.clientConfig: region, credentials, AWS_ENDPOINT_URL_<service id> else
 * AWS_ENDPOINT_URL, as the SDKs read them). session.close() releases them all.
 * @see https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html
 */
export function sessionDeps(session: AwsSession, env: NodeJS.ProcessEnv): DoctorDeps {
  return {
    region: session.region,
    env,
    cloudFormation: session.cloudFormation(),
    ec2: session.ec2(),
    s3: session.s3(),
    ssm: session.ssm(),
    sts: { callerIdentity: () => getCallerIdentity(session.clientConfig('STS')) },
    quotas: serviceQuotas(session),
  };
}

/** Service Quotas with the session's credentials and region. */
export function serviceQuotas(session: AwsSession): QuotaSource {
  return { list: (serviceCode) => listServiceQuotas(session.clientConfig('SERVICE_QUOTAS'), serviceCode) };
}
