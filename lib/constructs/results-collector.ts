import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { CONFIG_FILES, storeKeys } from '../contract';
import { acknowledgeWildcardResource, SpotSweepFunction } from './spot-sweep-function';

export interface ResultsCollectorProps {
  readonly sweepName: string;
  /** The artifact bucket; it must send events to EventBridge (ArtifactBucket does). */
  readonly bucket: s3.IBucket;
  /** Every config of the sweep: the collector reads each one's results.json, status.json and control.json. */
  readonly configs: readonly string[];
  /**
   * The config the report's decision section compares every other config with (the spec's `baseline`).
   * @default - the first of `configs`
   */
  readonly baseline?: string;
}

/**
 * Results: a Lambda (lambda/results-collector) that rebuilds `sweeps/<sweep>/leaderboard.json` and the
 * self-contained `sweeps/<sweep>/report.html` whenever a config's results.json is written, triggered by
 * an EventBridge rule on the bucket's `Object Created` events.
 * @see https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html
 */
export class ResultsCollector extends Construct {
  public readonly function: SpotSweepFunction;
  public readonly rule: events.Rule;

  constructor(scope: Construct, id: string, props: ResultsCollectorProps) {
    super(scope, id);
    const { sweepName: sweep, bucket, configs } = props;
    if (configs.length === 0) throw new Error(`ResultsCollector for sweep "${sweep}": configs is empty; pass every config name of the sweep.`);

    this.function = new SpotSweepFunction(this, 'Function', {
      name: 'results-collector',
      description: `spot-sweep ${sweep}: rebuild leaderboard.json and report.html from the configs' results`,
      timeout: Duration.minutes(1),
      environment: { SWEEP: sweep, BUCKET: bucket.bucketName, CONFIGS: JSON.stringify(configs), BASELINE: props.baseline ?? configs[0] },
    });
    const role = this.function.role!;
    const sweepPrefix = storeKeys.sweep(sweep);
    const sweepObjects = bucket.arnForObjects(`${sweepPrefix}*`);
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadSweepObjects',
        actions: ['s3:GetObject'],
        resources: [sweepObjects],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'WriteLeaderboardAndReport',
        actions: ['s3:PutObject'],
        resources: [bucket.arnForObjects(storeKeys.sweepFile(sweep, 'leaderboard')), bucket.arnForObjects(storeKeys.sweepFile(sweep, 'report'))],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ListArtifactBucket',
        // Lets a config without results yet read as NoSuchKey (404) instead of AccessDenied (403): S3 answers
        // 404 only to a caller with s3:ListBucket on the bucket. No s3:prefix condition: a GetObject carries no
        // s3:prefix, so a prefix-scoped grant does not count (see InstanceRole's ListArtifactBucket).
        // @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html
        actions: ['s3:ListBucket'],
        resources: [bucket.bucketArn],
      }),
    );

    // S3 event fields: detail.bucket.name, detail.object.key. The wildcard matches any config folder.
    // @see https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html
    // @see https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html#eb-filtering-wildcard-matching
    this.rule = new events.Rule(this, 'OnResults', {
      description: `spot-sweep ${sweep}: a config wrote ${CONFIG_FILES.results}`,
      eventPattern: {
        source: ['aws.s3'],
        detailType: ['Object Created'],
        detail: {
          bucket: { name: [bucket.bucketName] },
          object: { key: events.Match.wildcard(`${sweepPrefix}*/${CONFIG_FILES.results}`) },
        },
      },
      targets: [new targets.LambdaFunction(this.function, { retryAttempts: 2 })],
    });

    acknowledgeWildcardResource(
      role,
      sweepObjects,
      `Each config's results.json, status.json and control.json live under ${sweepPrefix}<config>/; reads are limited to the sweep's prefix, writes to the two report objects.`,
    );
  }
}
