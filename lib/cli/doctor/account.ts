import { DescribeStacksCommand, Stack } from '@aws-sdk/client-cloudformation';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { FOUNDATION_STACK, STACK_OUTPUTS } from '../../contract';
import { explainAwsError } from '../aws';
import { CallerIdentity } from './identity-quotas';
import { Check, check, DoctorDeps } from './types';

/** The CDK bootstrap stack's default name (`cdk bootstrap` deploys "the CDK bootstrap stack, named CDKToolkit"). */
export const DEFAULT_TOOLKIT_STACK = 'CDKToolkit';

/** Credentials and region: whose they are, from STS GetCallerIdentity. */
export async function credentialsCheck(deps: DoctorDeps): Promise<{ check: Check; identity?: CallerIdentity }> {
  try {
    const identity = await deps.sts.callerIdentity();
    return { check: check('credentials', 'ok', `account ${identity.account} as ${identity.arn}, region ${deps.region}.`), identity };
  } catch (err) {
    const message = explainAwsError(err, 'STS GetCallerIdentity').message;
    return { check: check('credentials', 'blocker', `${message}`, 'refresh the credentials (aws sso login, or aws configure), then run spot-sweep doctor again.') };
  }
}

/**
 * A stack by name; undefined when it does not exist (DescribeStacks answers ValidationError for an unknown
 * stack, and lists a deleted one as DELETE_COMPLETE only by its id).
 * @see https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStacks.html
 */
export async function describeStack(deps: DoctorDeps, name: string): Promise<Stack | undefined> {
  try {
    const stack = (await deps.cloudFormation.send(new DescribeStacksCommand({ StackName: name }))).Stacks?.[0];
    return stack && stack.StackStatus !== 'DELETE_COMPLETE' ? stack : undefined;
  } catch (err) {
    if ((err as Error).name === 'ValidationError') return undefined;
    throw explainAwsError(err, `CloudFormation DescribeStacks ${name}`);
  }
}

/** Statuses a stack cannot be used or updated from without a fix (a failed create, a failed rollback). */
const BROKEN = /(_FAILED|^ROLLBACK_COMPLETE)$/;

/**
 * The CDK bootstrap stack (default CDKToolkit): `cdk deploy` stages assets through it, so without it the
 * first deploy fails.
 * @see https://docs.aws.amazon.com/cdk/v2/guide/ref-cli-cmd-bootstrap.html
 */
export async function bootstrapCheck(deps: DoctorDeps, toolkitStack: string, account: string | undefined): Promise<Check> {
  const name = 'cdk bootstrap';
  const stack = await describeStack(deps, toolkitStack);
  const env = `aws://${account ?? '<account>'}/${deps.region}`;
  const custom = toolkitStack === DEFAULT_TOOLKIT_STACK ? '' : ` --toolkit-stack-name ${toolkitStack}`;
  if (!stack) return check(name, 'blocker', `no stack ${toolkitStack} in ${deps.region}: this environment is not bootstrapped for CDK.`, `run npx cdk bootstrap ${env}${custom}.`);
  const status = stack.StackStatus ?? '?';
  if (BROKEN.test(status)) return check(name, 'blocker', `stack ${toolkitStack} is ${status}.`, `fix or delete it in the CloudFormation console, then run npx cdk bootstrap ${env}${custom}.`);
  const version = stack.Outputs?.find((o) => o.OutputKey === 'BootstrapVersion')?.OutputValue;
  return check(name, 'ok', `stack ${toolkitStack} is ${status}${version ? ` (bootstrap version ${version})` : ''}.`);
}

/** What the foundation check learnt, for the checks that need the foundation's outputs. */
export interface FoundationFacts {
  readonly outputs?: ReadonlyMap<string, string>;
}

/** The foundation stack deployed, usable, and at this checkout's version (its FoundationVersion output). */
export async function foundationCheck(deps: DoctorDeps, checkoutVersion: string): Promise<{ check: Check; facts: FoundationFacts }> {
  const name = 'foundation';
  const deploy = `npx cdk deploy ${FOUNDATION_STACK}`;
  const stack = await describeStack(deps, FOUNDATION_STACK);
  if (!stack) return { check: check(name, 'blocker', `stack ${FOUNDATION_STACK} is not deployed in ${deps.region}.`, `run ${deploy} (add -c availabilityZones=... to choose its zones).`), facts: {} };
  const outputs = new Map((stack.Outputs ?? []).filter((o) => o.OutputKey && o.OutputValue !== undefined).map((o) => [o.OutputKey as string, o.OutputValue as string]));
  const status = stack.StackStatus ?? '?';
  if (BROKEN.test(status)) return { check: check(name, 'blocker', `stack ${FOUNDATION_STACK} is ${status}.`, `see its events in the CloudFormation console, fix the cause, then run ${deploy}.`), facts: { outputs } };
  if (status.endsWith('_IN_PROGRESS')) return { check: check(name, 'warn', `stack ${FOUNDATION_STACK} is ${status}.`, 'wait for it to finish, then run spot-sweep doctor again.'), facts: { outputs } };
  const deployed = outputs.get(STACK_OUTPUTS.foundationVersion);
  if (deployed !== checkoutVersion) {
    const was = deployed === undefined ? `by a version older than ${checkoutVersion} (it has no ${STACK_OUTPUTS.foundationVersion} output)` : `at version ${deployed}`;
    return { check: check(name, 'blocker', `stack ${FOUNDATION_STACK} was deployed ${was}; this checkout is ${checkoutVersion}.`, `deploy this checkout's foundation: ${deploy} (with the same -c options as before).`), facts: { outputs } };
  }
  return { check: check(name, 'ok', `stack ${FOUNDATION_STACK} is ${status} at version ${deployed}.`), facts: { outputs } };
}

/**
 * The artifact bucket answers HeadBucket: 200 when it exists and the caller may access it, else a bare
 * 404 or 403 (no message body).
 * @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadBucket.html
 */
export async function bucketCheck(deps: DoctorDeps, bucket: string | undefined): Promise<Check> {
  const name = 'artifact bucket';
  if (!bucket) {
    return check(name, 'blocker', `no bucket to check: --bucket was not given and the foundation has no ${STACK_OUTPUTS.artifactBucket} output.`, `deploy the foundation (npx cdk deploy ${FOUNDATION_STACK}) or pass --bucket NAME.`);
  }
  try {
    await deps.s3.send(new HeadBucketCommand({ Bucket: bucket }));
    return check(name, 'ok', `s3://${bucket} is reachable.`);
  } catch (err) {
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    const e = err as Error;
    if (status === 404 || e.name === 'NotFound' || e.name === 'NoSuchBucket') {
      return check(name, 'blocker', `s3://${bucket} does not exist.`, `check --bucket, or redeploy the foundation (npx cdk deploy ${FOUNDATION_STACK}), which creates it.`);
    }
    if (status === 403 || e.name === 'Forbidden' || e.name === 'AccessDenied') {
      return check(name, 'blocker', `access to s3://${bucket} is denied (403).`, 'the identity you use needs s3:ListBucket on it, or the bucket is another account\'s: check --bucket.');
    }
    return check(name, 'blocker', explainAwsError(err, `S3 HeadBucket ${bucket}`).message, 'check the network and the bucket name, then run spot-sweep doctor again.');
  }
}
