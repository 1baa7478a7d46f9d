import { ArnFormat, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { NAMES, storeKeys } from '../contract';

/** The part of a contract name template before its first placeholder: `SpotSweep-{sweep}-{config}` -> `SpotSweep-`. */
const fixedPart = (template: string): string => template.split('{')[0];
/** The first folder of a store key: `cache/wheels` -> `cache/`. */
const topFolder = (key: string): string => `${key.split('/')[0]}/`;

/** Every sweep's Auto Scaling groups are named `SpotSweep-<sweep>-<config>` (lib/contract `groupName`). */
export const SWEEP_GROUP_PREFIX = fixedPart(NAMES.groupName);

/** Prefixes of the artifact bucket the instances read and write: every sweep's files, the wheel cache. */
export const READ_WRITE_PREFIXES = [storeKeys.sweepsRoot, topFolder(storeKeys.wheelCache)] as const;
/** Prefixes the instances only read: uploaded code bundles and data sets. */
export const READ_ONLY_PREFIXES = [NAMES.store.code, fixedPart(NAMES.store.datasets)] as const;

export interface InstanceRoleProps {
  /** The artifact bucket; the role gets access to its prefixes only. */
  readonly bucket: s3.IBucket;
}

/**
 * Role and instance profile of the training instances.
 *
 * - AmazonSSMManagedInstanceCore: the SSM agent registers and runs the training document (no SSH).
 *   @see https://docs.aws.amazon.com/systems-manager/latest/userguide/setup-instance-permissions.html
 * - CloudWatchAgentServerPolicy: the CloudWatch agent publishes GPU utilisation for the idle alarm.
 *   @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/create-iam-roles-for-cloudwatch-agent.html
 * - S3: read/write under `sweeps/` and `cache/`, read under `code/` and `datasets/`, list the bucket (so a
 *   missing key reads as 404, not 403), read its encryption configuration (SSM command output). No `*`
 *   action, no `*` resource. Data sets in other buckets need a grant in the sweep stack.
 */
export class InstanceRole extends Construct {
  public readonly role: iam.Role;
  public readonly instanceProfile: iam.InstanceProfile;

  constructor(scope: Construct, id: string, props: InstanceRoleProps) {
    super(scope, id);
    const { bucket } = props;

    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description: 'spot-sweep training instances: SSM, CloudWatch agent, artifact bucket prefixes',
      managedPolicies: [
        iam.ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore'),
        iam.ManagedPolicy.fromAwsManagedPolicyName('CloudWatchAgentServerPolicy'),
      ],
    });

    const objects = (prefixes: readonly string[]): string[] => prefixes.map((p) => bucket.arnForObjects(`${p}*`));
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadWriteSweepObjects',
        actions: [
          's3:GetObject',
          's3:PutObject',
          // The job runner tags checkpoint uploads (see ArtifactBucket's lifecycle rule).
          's3:PutObjectTagging',
          // The trainer keeps its two newest checkpoints and deletes older ones.
          's3:DeleteObject',
          's3:AbortMultipartUpload',
          's3:ListMultipartUploadParts',
        ],
        resources: objects(READ_WRITE_PREFIXES),
      }),
    );
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadCodeAndData',
        actions: ['s3:GetObject'],
        resources: objects(READ_ONLY_PREFIXES),
      }),
    );
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ListArtifactBucket',
        // Without an s3:prefix condition: S3 answers a GetObject of a missing key with 404 only to a caller
        // that has s3:ListBucket on the bucket, else with 403 ("If you have the s3:ListBucket permission on
        // the bucket, Amazon S3 returns an HTTP status code 404 Not Found error. If you don't ..., 403 Access
        // Denied"). s3:prefix is a key of list requests, not of a GetObject, and "if the key that you specify in
        // a policy condition is not present in the request context, the values do not match": a prefix-scoped
        // grant would turn every not-yet-written status.json, control.json or checkpoint into AccessDenied.
        // The bucket is private to spot-sweep; listing shows key names only.
        // @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html
        // @see https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html (s3:prefix)
        // @see https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
        actions: ['s3:ListBucket'],
        resources: [bucket.bucketArn],
      }),
    );
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'CommandOutputToEncryptedBucket',
        // The SSM Agent uploads the train document's output (sweeps/<sweep>/<config>/ssm/) with this role,
        // which then also needs s3:GetEncryptionConfiguration on the bucket ARN itself: "The
        // GetEncryptionConfiguration element is required if your S3 bucket is configured to use encryption",
        // and every bucket is (this one with SSE-S3). The PutObject it needs is in ReadWriteSweepObjects.
        // @see https://docs.aws.amazon.com/systems-manager/latest/userguide/setup-instance-permissions.html#instance-profile-custom-s3-policy
        // @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketEncryption.html
        actions: ['s3:GetEncryptionConfiguration'],
        resources: [bucket.bucketArn],
      }),
    );

    // When its job ends (success or failure, not a spot interruption) an instance removes itself
    // from its group with the desired capacity decremented, so nothing keeps billing. Resource-level
    // permission on the group ARN, limited to spot-sweep's groups (SpotSweep-<sweep>-<config>).
    // @see https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2autoscaling.html
    const groups = Stack.of(this).formatArn({
      service: 'autoscaling',
      resource: 'autoScalingGroup',
      resourceName: `*:autoScalingGroupName/${SWEEP_GROUP_PREFIX}*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'RemoveSelfFromOwnGroup',
        actions: ['autoscaling:TerminateInstanceInAutoScalingGroup'],
        resources: [groups],
      }),
    );

    // Every termination of the instance (its self-removal above, a scale-in) waits in the config's termination
    // lifecycle hook; the bootstrap ends that wait once the job has uploaded its checkpoint. The action takes
    // the group ARN as resource, so it is scoped to spot-sweep's groups like the removal.
    // @see https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_CompleteLifecycleAction.html
    // @see https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2autoscaling.html
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'CompleteOwnTerminationHook',
        actions: ['autoscaling:CompleteLifecycleAction'],
        resources: [groups],
      }),
    );

    this.instanceProfile = new iam.InstanceProfile(this, 'InstanceProfile', { role: this.role });

    for (const policy of ['AmazonSSMManagedInstanceCore', 'CloudWatchAgentServerPolicy']) {
      Validations.of(this.role).acknowledge({
        id: `AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/${policy}]`,
        reason:
          policy === 'AmazonSSMManagedInstanceCore'
            ? 'AWS-maintained minimum for an SSM managed node; the instances are reached only through SSM (no SSH, no ingress).'
            : 'AWS-maintained minimum for the CloudWatch agent, which publishes the GPU metrics the idle-GPU alarm watches.',
      });
    }
    Validations.of(this.role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:autoscaling:<AWS::Region>:<AWS::AccountId>:autoScalingGroup:*:autoScalingGroupName/${SWEEP_GROUP_PREFIX}*]`,
      reason:
        'An instance may only remove itself from a spot-sweep group (SpotSweep-<sweep>-<config>) and complete its termination lifecycle action there; ' +
        'the group ids are only known after the sweep stacks deploy.',
    });
    const bucketRef = `<${Stack.of(bucket).getLogicalId(bucket.node.defaultChild as s3.CfnBucket)}.Arn>`;
    for (const prefix of [...READ_WRITE_PREFIXES, ...READ_ONLY_PREFIXES]) {
      Validations.of(this.role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${bucketRef}/${prefix}*]`,
        reason: `Object keys under ${prefix} are created per sweep and config at run time; the wildcard is limited to that prefix of the artifact bucket.`,
      });
    }
  }
}
