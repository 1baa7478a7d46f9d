import { ArnFormat, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { groupName, storeKeys } from '../contract';
import { acknowledgeWildcardResource, SpotSweepFunction } from './spot-sweep-function';

export interface SchedulerProps {
  readonly sweepName: string;
  /** Every config of the sweep, in spec order (the order pending configs start in), with its job parameter (lib/contract `jobParameterName`). */
  readonly configs: readonly { readonly config: string; readonly job: ssm.IStringParameter }[];
  /** The spec's `maxParallel`: at most this many configs hold an instance at once (a whole number >= 1). */
  readonly maxParallel: number;
  /** The artifact bucket: the scheduler reads each config's status.json and control.json (it writes nothing there). */
  readonly bucket: s3.IBucket;
  /**
   * How often the scheduler runs in any case: it starts the first configs after a deploy, and is the safety net
   * for an instance-terminated event EventBridge did not deliver (best effort).
   * @default Duration.minutes(1)
   */
  readonly interval?: Duration;
}

/**
 * The sweep's `maxParallel` cap: a Lambda (lambda/scheduler, logic in schedule.ts) that sets the first pending
 * configs in spec order to 0/1/1 while fewer than `maxParallel` groups are at desired 1. With a cap the restart
 * resources (lib/constructs/config-restart.ts) start no group themselves; they still answer a standing stop and
 * replace an instance running an old job.json, which makes the config pending for this scheduler.
 *
 * Runs: on a schedule (`interval`), which starts the first configs within a minute of the deploy, and on every
 * "EC2 Instance Terminate Successful" event of the sweep's groups, so the next config starts as soon as a job
 * ended (its instance removed itself, an alarm, the budget guard or `spot-sweep stop` scaled the group to 0).
 * Why not invoked by the restart resources: that needs the Lambda Invoke API from the restart handler, and a
 * deploy that fails on a scheduling error would stop nothing and start nothing either; the schedule does the same
 * within a minute.
 *
 * Two runs at once must not both fill one free slot: the function has reserved concurrency 1, and both
 * triggers invoke it asynchronously, so a run that finds the function busy is throttled and Lambda puts the
 * event back in its queue and retries it (for up to 6 hours), instead of running beside the other.
 * Reserving concurrency needs an account whose concurrency quota leaves 100 unreserved ("You can reserve up to the
 * Unreserved account concurrency value that is shown, minus 100"); a new account's quota can be lower.
 * @see https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html
 * @see https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html
 * @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-event-reference.html
 * @see https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-autoscaling.html
 */
export class Scheduler extends Construct {
  public readonly function: SpotSweepFunction;
  /** The schedule. */
  public readonly tick: events.Rule;
  /** Auto Scaling's instance-terminated events of the sweep's groups. */
  public readonly terminated: events.Rule;

  constructor(scope: Construct, id: string, props: SchedulerProps) {
    super(scope, id);
    const { sweepName: sweep, maxParallel, bucket } = props;
    const configs = props.configs.map((c) => c.config);
    const interval = props.interval ?? Duration.minutes(1);
    const problems: string[] = [];
    if (configs.length === 0) problems.push('configs is empty; pass every config of the sweep');
    if (!Number.isInteger(maxParallel) || maxParallel < 1) problems.push(`maxParallel is ${maxParallel}; set the spec's maxParallel to a whole number >= 1`);
    // EventBridge rates take whole minutes. @see https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html
    if (interval.toSeconds() < 60 || interval.toSeconds() % 60 !== 0) problems.push(`interval is ${interval.toSeconds()} s; use whole minutes, at least Duration.minutes(1)`);
    if (problems.length > 0) throw new Error(`Scheduler for sweep "${sweep}": ${problems.join('; ')}.`);

    this.function = new SpotSweepFunction(this, 'Function', {
      name: 'scheduler',
      description: `spot-sweep ${sweep}: start pending configs, at most ${maxParallel} at once`,
      timeout: Duration.minutes(1),
      environment: { SWEEP: sweep, BUCKET: bucket.bucketName, CONFIGS: JSON.stringify(configs), MAX_PARALLEL: String(maxParallel) },
      reservedConcurrentExecutions: 1,
    });

    const role = this.function.role!;
    const stack = Stack.of(this);
    const names = configs.map((c) => groupName(sweep, c));
    // Exactly the sweep's groups, by name (the group id in the ARN is assigned at creation).
    // @see https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2autoscaling.html#amazonec2autoscaling-resources-for-iam-policies
    const groupArns = names.map((n) => stack.formatArn({ service: 'autoscaling', resource: 'autoScalingGroup', resourceName: `*:autoScalingGroupName/${n}`, arnFormat: ArnFormat.COLON_RESOURCE_NAME }));
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'StartSweepGroups',
        // Sizes only, no launch template: no ec2:RunInstances or iam:PassRole for the caller.
        // @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-launch-template-permissions.html
        actions: ['autoscaling:UpdateAutoScalingGroup'],
        resources: groupArns,
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'DescribeGroups',
        // Describe* actions of Auto Scaling have no resource-level permissions.
        // @see https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2autoscaling.html
        actions: ['autoscaling:DescribeAutoScalingGroups'],
        resources: ['*'],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadJobParameters',
        // The current job.json of each config: its digest tells a finished job from a changed one.
        actions: ['ssm:GetParameter'],
        resources: props.configs.map((c) => c.job.parameterArn),
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadJobState',
        actions: ['s3:GetObject'],
        resources: configs.flatMap((c) => (['status', 'control', 'scheduled'] as const).map((f) => bucket.arnForObjects(storeKeys.configFile(sweep, c, f)))),
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'RecordStarts',
        // scheduled.json, the scheduler's own record of each start (its only writer): what it started is not
        // started again by the next tick, however the job ended.
        actions: ['s3:PutObject'],
        resources: configs.map((c) => bucket.arnForObjects(storeKeys.configFile(sweep, c, 'scheduled'))),
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ListArtifactBucket',
        // A missing status.json must read as NoSuchKey (404), not AccessDenied (403): S3 answers 404 only to a
        // caller with s3:ListBucket. @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html
        actions: ['s3:ListBucket'],
        resources: [bucket.bucketArn],
      }),
    );

    // retryAttempts 0: a failed run is not worth retrying, the next tick is a whole retry.
    const target = new targets.LambdaFunction(this.function, { retryAttempts: 0 });
    this.tick = new events.Rule(this, 'Tick', {
      description: `spot-sweep ${sweep}: start pending configs up to maxParallel ${maxParallel}`,
      schedule: events.Schedule.rate(interval),
      targets: [target],
    });
    this.terminated = new events.Rule(this, 'InstanceTerminated', {
      description: `spot-sweep ${sweep}: a config's instance is gone, start the next pending one`,
      // The event's detail carries the group's name (AutoScalingGroupName).
      eventPattern: { source: ['aws.autoscaling'], detailType: ['EC2 Instance Terminate Successful'], detail: { AutoScalingGroupName: names } },
      targets: [target],
    });

    for (const arn of groupArns) {
      acknowledgeWildcardResource(role, arn, 'The group id in an Auto Scaling group ARN is assigned at creation; the exact group name pins the resource.');
    }
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'autoscaling:DescribeAutoScalingGroups supports no resource-level permissions (Service Authorization Reference); it only reads.',
    });
  }
}
