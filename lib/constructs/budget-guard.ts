import { Annotations, ArnFormat, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { CONFIG_FILES, groupName, METRICS, storeKeys } from '../contract';
import { budgetAlarm, guardSilentAlarm, guardSilentStopMinutes } from '../monitoring/alarms';
import { spendMetric } from '../monitoring/metrics';
import { acknowledgeWildcardResource, SpotSweepFunction } from './spot-sweep-function';

/** One config's Auto Scaling group, as the guard sees it. */
export interface GuardedGroupProps {
  readonly config: string;
  /** The group's explicit name, lib/contract `groupName`: `SpotSweep-<sweep>-<config>`. */
  readonly groupName: string;
  /** The config's market from the sweep spec. */
  readonly market: 'spot' | 'on-demand' | 'spot-then-on-demand';
  /** The config's instance types (for the record; prices are looked up per launched instance). */
  readonly instanceTypes: readonly string[];
  /**
   * The launch templates the group launches from: the guard may launch from these (and no other) templates,
   * which Auto Scaling checks whenever the guard updates the group.
   */
  readonly launchTemplates: readonly ec2.ILaunchTemplate[];
  /**
   * What stops the group without the guard: the config's scale-to-zero policy as an alarm action
   * (ConfigFleet.scaleToZero). The config's budget and guard-silent alarms invoke it.
   */
  readonly stopAction: cloudwatch.IAlarmAction;
}

/** The alarms of one config that stop it when the guard cannot. */
export interface GuardAlarms {
  readonly config: string;
  /** The sweep's spend reached the budget (two periods in a row). */
  readonly budget: cloudwatch.Alarm;
  /** The guard stopped running while the group has an instance in service. */
  readonly guardSilent: cloudwatch.Alarm;
}

export interface BudgetGuardProps {
  readonly sweepName: string;
  /** The sweep's budget; every job is asked to stop, and every group goes to zero, once the spend reaches it. */
  readonly budgetUsd: number;
  /** The artifact bucket: the guard keeps its ledger (spend.json) there and writes stop requests (control.json). */
  readonly bucket: s3.IBucket;
  /** The role of the instances' profile (in the groups' launch templates): the guard may pass it to EC2 only. */
  readonly instanceRole: iam.IRole;
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
  /**
   * How long a job has, after the guard wrote its stop request, to checkpoint, upload and end STOPPED
   * before the guard scales its group to zero anyway. The job runner reads control.json every 30 s; the
   * guard scales on its first run after the grace period (with the default schedule, the next one).
   * @default Duration.seconds(180)
   */
  readonly stopGrace?: Duration;
}

/**
 * The sweep budget: a scheduled Lambda (lambda/budget-guard) that keeps the sweep's spend ledger
 * (spend.json, the only file it writes besides stop requests), publishes `SpendUsd` {Sweep} and
 * `InstanceHours` {Sweep, Config} (lib/contract `METRICS`), moves `spot-then-on-demand` groups to
 * on-demand after repeated spot losses, and at the budget asks every unfinished job to stop (a stop
 * request in its control.json, which the job runner obeys: checkpoint, STOPPED) and scales each group
 * to zero once its job is final, never started, or had its grace period; plus, per config, a budget alarm and a
 * guard-silent alarm that scale the group to zero without the guard (lib/monitoring/alarms.ts).
 * status.json is the job runner's alone: the guard only reads it.
 */
export class BudgetGuard extends Construct {
  public readonly function: SpotSweepFunction;
  public readonly rule: events.Rule;
  /** The sweep's spend so far, USD (Maximum over the schedule's period). */
  public readonly spendMetric: cloudwatch.IMetric;
  /**
   * Per config: the budget alarm and the guard-silent fail-safe, each scaling its group to zero. One pair per
   * config because an alarm takes at most five actions per state ("The actions (up to five) to execute when
   * this alarm transitions into an ALARM state") and a sweep may have more configs.
   * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/cli/cli-mon-put-metric-alarm.html
   * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html
   */
  public readonly alarms: readonly GuardAlarms[];

  constructor(scope: Construct, id: string, props: BudgetGuardProps) {
    super(scope, id);
    const schedule = props.schedule ?? Duration.minutes(5);
    const limit = props.spotFailuresBeforeOnDemand ?? 2;
    const grace = props.stopGrace ?? Duration.seconds(180);
    const problems: string[] = [];
    if (!(props.budgetUsd > 0)) problems.push(`budgetUsd is ${props.budgetUsd}; give the sweep a budget above 0 USD.`);
    if (props.groups.length === 0) problems.push('groups is empty; pass one entry per config of the sweep.');
    if (schedule.toSeconds() < 60 || schedule.toSeconds() % 60 !== 0) problems.push(`schedule is ${schedule.toSeconds()} s; use whole minutes, at least Duration.minutes(1) (EventBridge rates are in minutes).`);
    if (!Number.isInteger(limit) || limit < 1) problems.push(`spotFailuresBeforeOnDemand is ${limit}; use a whole number of at least 1.`);
    if (grace.toSeconds() < 60) {
      problems.push(`stopGrace is ${grace.toSeconds()} s; give the job at least Duration.seconds(60) to see the stop request (read every 30 s), checkpoint and upload.`);
    }
    for (const g of props.groups) {
      const expected = groupName(props.sweepName, g.config);
      if (g.groupName !== expected) {
        problems.push(`group of config "${g.config}" is named "${g.groupName}"; name it ${expected} (the guard's IAM policy and the CLI rely on it).`);
      }
      if (g.launchTemplates.length === 0 || g.launchTemplates.some((lt) => lt.launchTemplateId === undefined)) {
        problems.push(`group of config "${g.config}" has no launch template with an id; pass the templates its group launches from (ConfigFleet.launchTemplates).`);
      }
    }
    if (problems.length > 0) throw new Error(`BudgetGuard for sweep "${props.sweepName}":\n  - ${problems.join('\n  - ')}`);

    const sweep = props.sweepName;
    this.function = new SpotSweepFunction(this, 'Function', {
      name: 'budget-guard',
      description: `spot-sweep ${sweep}: spend ledger, spend metric, stop requests and scale to zero at the budget`,
      timeout: Duration.minutes(2),
      environment: {
        SWEEP: sweep,
        BUCKET: props.bucket.bucketName,
        BUDGET_USD: String(props.budgetUsd),
        GROUPS: JSON.stringify(props.groups.map(({ config, groupName, market }) => ({ config, groupName, market }))),
        SPOT_FAILURES_BEFORE_ON_DEMAND: String(limit),
        STOP_GRACE_SECONDS: String(grace.toSeconds()),
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
    const sweepPrefix = storeKeys.sweep(sweep);
    const sweepObjects = props.bucket.arnForObjects(`${sweepPrefix}*`);
    // One writer per file: the guard writes its ledger and stop requests, nothing else (status.json is the runner's).
    // A `*` inside a resource ARN matches any characters, `/` included, so `<prefix>*/control.json` is every
    // config's control.json and no other key. @see https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html
    const ledgerObject = props.bucket.arnForObjects(storeKeys.sweepFile(sweep, 'spend'));
    const controlObjects = props.bucket.arnForObjects(`${sweepPrefix}*/${CONFIG_FILES.control}`);
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'UpdateSweepGroups',
        actions: ['autoscaling:UpdateAutoScalingGroup'],
        // Exactly the sweep's groups, by name (the group id part of the ARN is unknown until they exist).
        // @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/control-access-using-iam.html
        resources: groupArns,
      }),
    );
    // The guard updates groups that launch from launch templates (the on-demand switch, the scale to zero at the
    // budget), and Auto Scaling checks the caller's right to launch from the template: "ec2:RunInstances are
    // checked when an Auto Scaling group is created or updated using a launch template"; iam:PassRole for a
    // template "that specifies an instance profile"; ec2:CreateTags "if there are tags specified in the launch
    // template" (ours tag instances and volumes). The guides do not say whether an update that sends no template
    // (the guard sends sizes, or InstancesDistribution only) is exempt, so the guard may launch from exactly this
    // sweep's templates: a refused update would disable the budget's kill path.
    // @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-launch-template-permissions.html
    // @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-api-permissions.html
    const templateArns = [...new Set(props.groups.flatMap((g) => g.launchTemplates))].map((lt) =>
      stack.formatArn({ service: 'ec2', resource: 'launch-template', resourceName: lt.launchTemplateId }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'LaunchFromSweepTemplates',
        // Every resource of the launch (instance, volume, network interface, subnet, security group, image, the
        // template), but only from this sweep's templates: the ec2:LaunchTemplate condition, as in the EC2 User
        // Guide's "Tags in a launch template" example policy (Resource "*", ArnLike ec2:LaunchTemplate).
        // @see https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ExamplePolicies_EC2.html#iam-example-tags-launch-template
        actions: ['ec2:RunInstances'],
        resources: ['*'],
        conditions: { ArnLike: { 'ec2:LaunchTemplate': templateArns } },
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'PassInstanceRoleToEc2',
        // The instance role only, and only to EC2.
        // @see https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/permission-to-pass-iam-roles.html
        // @see https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_iam-condition-keys.html#ck_PassedToService
        actions: ['iam:PassRole'],
        resources: [props.instanceRole.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } },
      }),
    );
    const launchTags = stack.formatArn({ service: 'ec2', resource: '*', resourceName: '*' });
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'TagAtLaunch',
        // Tags on creation by RunInstances only, as the Auto Scaling guide's "Permissions required to tag
        // instances and volumes" example grants (resource arn:...:ec2:region:account:*/*).
        // @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-launch-template-permissions.html
        actions: ['ec2:CreateTags'],
        resources: [launchTags],
        conditions: { StringEquals: { 'ec2:CreateAction': 'RunInstances' } },
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'PutSpendMetrics',
        actions: ['cloudwatch:PutMetricData'],
        // PutMetricData has no resource-level permissions; the namespace condition key limits it.
        // @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/iam-cw-condition-keys-namespace.html
        resources: ['*'],
        conditions: { StringEquals: { 'cloudwatch:namespace': METRICS.namespace } },
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadSweepObjects',
        // spend.json, and each config's status.json and control.json.
        actions: ['s3:GetObject'],
        resources: [sweepObjects],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'WriteLedgerAndStopRequests',
        actions: ['s3:PutObject'],
        resources: [ledgerObject, controlObjects],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ListArtifactBucket',
        // Lets a missing status.json/control.json/spend.json read as NoSuchKey (404) instead of AccessDenied
        // (403): S3 answers 404 only to a caller with s3:ListBucket on the bucket. No s3:prefix condition: a
        // GetObject carries no s3:prefix, so a prefix-scoped grant does not count (see InstanceRole).
        // @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html
        actions: ['s3:ListBucket'],
        resources: [props.bucket.bucketArn],
      }),
    );

    // EventBridge rates take whole minutes. @see https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html
    this.rule = new events.Rule(this, 'Schedule', {
      description: `spot-sweep ${sweep}: run the budget guard`,
      schedule: events.Schedule.rate(schedule),
      targets: [new targets.LambdaFunction(this.function, { retryAttempts: 0 })],
    });

    this.spendMetric = spendMetric(sweep, { period: Duration.minutes(Math.max(5, schedule.toMinutes())), label: false });
    const period = Duration.minutes(Math.max(5, schedule.toMinutes()));
    this.alarms = props.groups.map((g) => {
      const budget = budgetAlarm(this, `BudgetAlarm-${g.config}`, { sweep, config: g.config, budgetUsd: props.budgetUsd, period });
      const guardSilent = guardSilentAlarm(this, `GuardSilent-${g.config}`, { sweep, config: g.config, groupName: g.groupName, scheduleMinutes: schedule.toMinutes() });
      budget.addAlarmAction(g.stopAction);
      guardSilent.addAlarmAction(g.stopAction);
      return { config: g.config, budget, guardSilent };
    });
    const stopMinutes = guardSilentStopMinutes(schedule.toMinutes());
    if (stopMinutes > 15) {
      Annotations.of(this).addWarningV2(
        'spot-sweep:guardSilentSlow',
        `BudgetGuard for sweep "${sweep}": with a ${schedule.toMinutes()}-minute schedule a dead guard stops the sweep up to ${stopMinutes} minutes after its last run, not within 15; use a schedule of at most 6 minutes.`,
      );
    }

    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'ec2:DescribeInstances, ec2:DescribeSpotPriceHistory, autoscaling:DescribeScalingActivities and cloudwatch:PutMetricData support no resource-level permissions ' +
        `(Service Authorization Reference); PutMetricData is limited to the ${METRICS.namespace} namespace by condition. ` +
        "ec2:RunInstances (checked by Auto Scaling when the guard updates a group) is limited by the ec2:LaunchTemplate condition to this sweep's launch templates.",
    });
    acknowledgeWildcardResource(
      role,
      launchTags,
      'Auto Scaling checks ec2:CreateTags for the tags of the launch template when the guard updates a group; the ec2:CreateAction condition allows tagging only on creation by RunInstances.',
    );
    acknowledgeWildcardResource(
      role,
      sweepObjects,
      `The guard reads each config's status.json and control.json under ${sweepPrefix}<config>/; the wildcard is limited to the sweep's prefix, and read-only.`,
    );
    acknowledgeWildcardResource(
      role,
      controlObjects,
      `The guard writes stop requests into each config's control.json (${sweepPrefix}<config>/${CONFIG_FILES.control}) and no other file of a config.`,
    );
    for (const arn of groupArns) {
      acknowledgeWildcardResource(role, arn, 'The group id in an Auto Scaling group ARN is assigned at creation; the exact group name pins the resource.');
    }
  }
}
