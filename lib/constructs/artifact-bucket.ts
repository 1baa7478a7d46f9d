import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { CHECKPOINT_TAG, storeKeys } from '../contract';

export interface ArtifactBucketProps {
  /**
   * Delete the bucket and every object in it on `cdk destroy`.
   *
   * Off by default: results and data sets outlive the stacks. Turn on with `-c destroyData=true`.
   * @default false
   */
  readonly destroyData?: boolean;

  /**
   * Days after which checkpoint objects expire: the job runner tags every checkpoint upload with the
   * contract's CHECKPOINT_TAG (`spot-sweep-kind=checkpoint`, training/contract/names.json `objectTags`);
   * they live under each config's `checkpoints/` folder. Checkpoints only serve to resume an interrupted
   * run, and a run lasts at most 48 h, so a week leaves room to resume a stopped config by hand.
   * @default Duration.days(7)
   */
  readonly checkpointExpiration?: Duration;
}

/**
 * The artifact bucket: data sets, job specs, checkpoints, logs and results of every sweep.
 *
 * - SSE-S3 encryption (no KMS key to pay for or to grant), Block Public Access, TLS-only policy.
 * - No versioning: the trainer rewrites its checkpoints every few minutes and keeps the newest two;
 *   with versioning every rewrite would leave a noncurrent copy (GBs per run) to pay for. Results are
 *   reproducible from spec + code + data (their digests are in results.json).
 * - Events to EventBridge (`eventBridgeEnabled`): each sweep stack's results collector has a rule on
 *   `Object Created` under its `sweeps/<sweep>/` prefix. Set as the bucket's own CloudFormation property
 *   (NotificationConfiguration.EventBridgeConfiguration) rather than the L2 `eventBridgeEnabled` prop,
 *   which adds a custom-resource Lambda (BucketNotificationsHandler) to the stack: one more function,
 *   role and cdk-nag exception, and a resource the local CloudFormation emulator cannot run.
 *   @see https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-s3-bucket-eventbridgeconfiguration.html
 * - Lifecycle: checkpoints expire, and incomplete multipart uploads (a spot instance killed mid-upload) are
 *   aborted after one day. A lifecycle filter takes one literal prefix and tags, never a wildcard like
 *   `sweeps/*\/checkpoints/`, so checkpoints are found by the contract's tag, which the job runner puts on
 *   every checkpoint upload and its `.sha256` digest, within the store's prefix `sweeps/`: S3 "uses a logical
 *   AND to combine the filters", and "each tag must match both key and value exactly". results.json, train.log
 *   and everything else the runner uploads is untagged and kept; so is a checkpoint copied out of `sweeps/`
 *   to keep it (CopyObject copies the tag-set unless told otherwise: "The default value is COPY").
 *   @see https://docs.aws.amazon.com/AmazonS3/latest/userguide/intro-lifecycle-filters.html
 *   @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html
 *   @see https://docs.aws.amazon.com/AmazonS3/latest/userguide/intro-lifecycle-rules.html
 */
export class ArtifactBucket extends Construct {
  public readonly bucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: ArtifactBucketProps = {}) {
    super(scope, id);
    const expiration = props.checkpointExpiration ?? Duration.days(7);
    if (expiration.toDays() < 3) {
      throw new Error(
        `checkpointExpiration is ${expiration.toDays()} days; use at least 3 days so that a run (up to 48 h) can still resume from its checkpoints.`,
      );
    }
    const destroy = props.destroyData ?? false;

    this.bucket = new s3.Bucket(this, 'Bucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      versioned: false,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy: destroy ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
      autoDeleteObjects: destroy,
      lifecycleRules: [
        {
          id: 'expire-checkpoints',
          prefix: storeKeys.sweepsRoot,
          tagFilters: { [CHECKPOINT_TAG.key]: CHECKPOINT_TAG.value },
          expiration,
        },
        {
          id: 'abort-incomplete-multipart-uploads',
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
      ],
    });

    (this.bucket.node.defaultChild as s3.CfnBucket).notificationConfiguration = {
      eventBridgeConfiguration: { eventBridgeEnabled: true },
    };

    Validations.of(this.bucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        'Server access logs are not kept: only the sweep instance role (scoped to this bucket\'s prefixes) and the account owner write here, ' +
        'and every run records what it read and wrote (data digests, job.json, results.json). Turn on CloudTrail S3 data events for an audit trail.',
    });
  }
}
