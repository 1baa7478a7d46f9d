import { ArnFormat, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { acknowledgeWildcardResource, SpotSweepFunction } from './spot-sweep-function';

/** One config's Auto Scaling group, as the guard sees it. */
export interface GuardedGroupProps {
  readonly config: string;
  /** The group's explicit name, `SpotSweep-<sweep>-<config>`. */
  readonly groupName: string;
  /** The config's market from the sweep spec. */
  readonly market: 'spot' | 'on-demand' | 'spot-then-on-demand';
  /** The config's instance types (for the record; prices are looked up per launched instance). */
  readonly instanceTypes: readonly string[];
}

export interface BudgetGuardProps {
  readonly sweepName: string;
  /** The sweep's budget; every group goes to zero once the spend reaches it. */
  readonly budgetUsd: number;
  /** The artifact bucket: the guard keeps its ledger and updates status.json under `sweeps/<sweep>/`. */
  readonly bucket: s3.IBucket;
  readonly groups: readonly GuardedGroupProps[];
  /**
   * How often the guard runs. Spend can overshoot the budget by at most one interval of the sweep's instances.
   * @default Duration.minutes(5)
   */
  readonly schedule?: Duration;
  /**
   * Spot interruptions plus failed spot launches after which a `spot-then-on-demand` group is moved to on-demand.
   * @default 2
   */
  readonly spotFailuresBeforeOnDemand?: number;
}

/** Namespace and names of the guard's metrics (.ci/CONTRACTS.md, "Issue 5 — shared names"). */
export const SPEND_NAMESPACE = 'SpotSweep';

/**
 * The sweep budget: a scheduled Lambda (lambda/budget-guard) that keeps the sweep's spend ledger
 * (`sweeps/<sweep>/spend.json`), publishes `SpotSweep` `SpendUsd` {Sweep} and `InstanceHours`
 * {Sweep, Config}, merges `spendUsd` into each config's status.json, scales every group to zero at
 * the budget and moves `spot-then-on-demand` groups to on-demand after repeated spot losses; plus an
 * alarm on the spend.
 */
export class BudgetGuard extends Construct {
  public readonly function: SpotSweepFunction;
  public readonly rule: events.Rule;
  /** The sweep's spend so far, USD (Maximum over the schedule's period). */
  public readonly spendMetric: cloudwatch.IMetric;
  /** In alarm once the spend reaches the budget. */
  public readonly alarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: BudgetGuardProps) {
    super(scope, id);
    const schedule = props.schedule ?? Duration.minutes(5);
    const limit = props.spotFailuresBeforeOnDemand ?? 2;
    const problems: string[] = [];
    if (!(props.budgetUsd > 0)) problems.push(`budgetUsd is ${props.budgetUsd}; give the sweep a budget above 0 USD.`);
    if (props.groups.length === 0) problems.push('groups is empty; pass one entry per config of the sweep.');
    if (schedule.toSeconds() < 60 || schedule.toSeconds() % 60 !== 0) problems.push(`schedule is ${schedule.toSeconds()} s; use whole minutes, at least Duration.minutes(1) (EventBridge rates are in minutes).`);
    if (!Number.isInteger(limit) || limit < 1) problems.push(`spotFailuresBeforeOnDemand is ${limit}; use a whole number of at least 1.`);
    for (const g of props.groups) {
      if (g.groupName !== `SpotSweep-${props.sweepName}-${g.config}`) {
        problems.push(`group of config "${g.config}" is named "${g.groupName}"; name it SpotSweep-${props.sweepName}-${g.config} (the guard's IAM policy and the CLI rely on it).`);
      }
    }
    if (problems.length > 0) throw new Error(`BudgetGuard for sweep "${props.sweepName}":\n  - ${problems.join('\n  - ')}`);

    const sweep = props.sweepName;
    this.function = new SpotSweepFunction(this, 'Function', {
      name: 'budget-guard',
      description: `spot-sweep ${sweep}: spend ledger, spend metric, scale to zero at the budget`,
      timeout: Duration.minutes(2),
      environment: {
        SWEEP: sweep,
        BUCKET: props.bucket.bucketName,
        BUDGET_USD: String(props.budgetUsd),
        GROUPS: JSON.stringify(props.groups.map(({ config, groupName, market }) => ({ config, groupName, market }))),
        SPOT_FAILURES_BEFORE_ON_DEMAND: String(limit),
      },
    });
    const role = this.function.role!;
    const stack = Stack.of(this);

    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'DescribeInstancesAndSpotPrices',
        // Neither action supports resource-level permissions: the only resource is `*`.
        // @see https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html
        actions: ['ec2:DescribeInstances', 'ec2:DescribeSpotPriceHistory'],
        resources: ['*'],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'DescribeScalingActivities',
        // Describe* actions of Auto Scaling have no resource-level permissions.
        // @see https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2autoscaling.html
        actions: ['autoscaling:DescribeScalingActivities'],
        resources: ['*'],
      }),
    );
    // arn:aws:autoscaling:region:account:autoScalingGroup:<group id>:autoScalingGroupName/<name>
    // @see https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2autoscaling.html#amazonec2autoscaling-resources-for-iam-policies
    const groupArns = props.groups.map((g) =>
      stack.formatArn({ service: 'autoscaling', resource: 'autoScalingGroup', resourceName: `*:autoScalingGroupName/${g.groupName}`, arnFormat: ArnFormat.COLON_RESOURCE_NAME }),
    );
    const sweepObjects = props.bucket.arnForObjects(`sweeps/${sweep}/*`);
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'UpdateSweepGroups',
        actions: ['autoscaling:UpdateAutoScalingGroup'],
        // Exactly the sweep's groups, by name (the group id part of the ARN is unknown until they exist).
        // @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/control-access-using-iam.html
        resources: groupArns,
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'PutSpendMetrics',
        actions: ['cloudwatch:PutMetricData'],
        // PutMetricData has no resource-level permissions; the namespace condition key limits it.
        // @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/iam-cw-condition-keys-namespace.html
        resources: ['*'],
        conditions: { StringEquals: { 'cloudwatch:namespace': SPEND_NAMESPACE } },
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadWriteSweepObjects',
        actions: ['s3:GetObject', 's3:PutObject'],
        resources: [sweepObjects],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ListSweepPrefix',
        // Lets a missing status.json/spend.json read as NoSuchKey instead of AccessDenied.
        // @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html
        actions: ['s3:ListBucket'],
        resources: [props.bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`sweeps/${sweep}/*`] } },
      }),
    );

    // EventBridge rates take whole minutes. @see https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html
    this.rule = new events.Rule(this, 'Schedule', {
      description: `spot-sweep ${sweep}: run the budget guard`,
      schedule: events.Schedule.rate(schedule),
      targets: [new targets.LambdaFunction(this.function, { retryAttempts: 0 })],
    });

    this.spendMetric = new cloudwatch.Metric({
      namespace: SPEND_NAMESPACE,
      metricName: 'SpendUsd',
      dimensionsMap: { Sweep: sweep },
      statistic: cloudwatch.Stats.MAXIMUM,
      period: Duration.minutes(Math.max(5, schedule.toMinutes())),
    });
    this.alarm = new cloudwatch.Alarm(this, 'BudgetAlarm', {
      alarmName: `SpotSweep-${sweep}-budget`,
      alarmDescription: `spot-sweep ${sweep}: the sweep has spent its budget of ${props.budgetUsd} USD; the budget guard scales every config to zero.`,
      metric: this.spendMetric,
      threshold: props.budgetUsd,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      // A period without a figure means the guard has not run again yet, not that the spend fell: keep the state.
      treatMissingData: cloudwatch.TreatMissingData.IGNORE,
    });

    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'ec2:DescribeInstances, ec2:DescribeSpotPriceHistory, autoscaling:DescribeScalingActivities and cloudwatch:PutMetricData support no resource-level permissions ' +
        '(Service Authorization Reference); PutMetricData is limited to the SpotSweep namespace by condition.',
    });
    acknowledgeWildcardResource(
      role,
      sweepObjects,
      `The ledger and each config's status.json live under sweeps/${sweep}/, keyed by config at run time; the wildcard is limited to the sweep's prefix.`,
    );
    for (const arn of groupArns) {
      acknowledgeWildcardResource(role, arn, 'The group id in an Auto Scaling group ARN is assigned at creation; the exact group name pins the resource.');
    }
  }
}
