import { ArnFormat, CustomResource, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { storeKeys } from '../contract';
import { ConfigFleet } from './config-fleet';
import { acknowledgeWildcardResource, SpotSweepFunction } from './spot-sweep-function';

/** The custom resource type of every restart resource (CloudFormation: `Custom::` and up to 60 characters). */
export const RESTART_RESOURCE_TYPE = 'Custom::SpotSweepConfigRestart';

/** One config whose group the deploy starts. */
export interface RestartedConfig {
  /** The config's name in the sweep. */
  readonly config: string;
  /** Its fleet: the group the deploy starts, and the association that must exist before an instance boots. */
  readonly fleet: ConfigFleet;
  /** The SSM parameter CloudFormation writes the config's job.json into (lib/contract `jobParameterName`). */
  readonly job: ssm.StringParameter;
}

export interface ConfigRestartProps {
  readonly sweepName: string;
  /** The artifact bucket: the handler reads each config's status.json, results.json and control.json, and writes control.json. */
  readonly bucket: s3.IBucket;
  /** Every config of the sweep. */
  readonly configs: readonly RestartedConfig[];
  /**
   * The spec's maxParallel: the handler then starts no group itself and leaves that to the sweep's
   * Scheduler (lib/constructs/scheduler.ts).
   * @default undefined (no cap: each resource starts its config's group)
   */
  readonly maxParallel?: number;
}

/**
 * What makes `cdk deploy` start configs: one custom resource per config (type {@link RESTART_RESOURCE_TYPE})
 * whose `Job` property is the config's job.json, the very value CloudFormation writes into the job
 * parameter, handled by a Lambda (lambda/config-restart) behind CDK's Provider framework.
 *
 * Why a custom resource: the groups' size in the template cannot do it. CDK gives every group the update
 * policy AutoScalingScheduledAction with IgnoreUnmodifiedGroupSizeProperties, so CloudFormation leaves
 * min, max and desired alone unless their values in the template change; after a job ended (the instance
 * decremented desired), an alarm, a budget stop or `spot-sweep stop`, a redeploy would start nothing. The
 * groups carry no DesiredCapacity at all (created at min, 0) and this resource sets them to 0/1/1 on Create
 * and on Update, which CloudFormation sends only when the property, the config's job.json, changed; the
 * handler compares the old and new digests itself, so a change of form alone starts nothing. See
 * lambda/config-restart/restart.ts.
 * @see https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-updatepolicy.html
 * @see https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-requesttypes-update.html
 * @see https://docs.aws.amazon.com/cdk/api/v2/docs/aws-cdk-lib.custom_resources-readme.html
 *
 * Each resource depends on its job parameter, on its group (it must exist to be scaled) and on its association
 * (an instance that registers with SSM before the association exists would boot and run nothing until State
 * Manager caught up), and through the group on the data uploads and the instance's access (lib/sweep-stack.ts).
 */
export class ConfigRestart extends Construct {
  public readonly function: SpotSweepFunction;
  public readonly provider: cr.Provider;
  /** The restart resource of each config, by config name. */
  public readonly resources: ReadonlyMap<string, CustomResource>;

  constructor(scope: Construct, id: string, props: ConfigRestartProps) {
    super(scope, id);
    const { sweepName: sweep, bucket, configs } = props;
    if (configs.length === 0) throw new Error(`ConfigRestart for sweep "${sweep}": configs is empty; pass every config of the sweep.`);

    this.function = new SpotSweepFunction(this, 'Function', {
      name: 'config-restart',
      description: `spot-sweep ${sweep}: start a config's group when cdk deploy creates it or changes its job.json`,
      timeout: Duration.minutes(1),
      environment: { SWEEP: sweep, BUCKET: bucket.bucketName, ...(props.maxParallel === undefined ? {} : { MAX_PARALLEL: String(props.maxParallel) }) },
    });
    const role = this.function.role!;
    const stack = Stack.of(this);
    // arn:aws:autoscaling:region:account:autoScalingGroup:<group id>:autoScalingGroupName/<name>: exactly the
    // sweep's groups, by name (the id part is unknown until they exist).
    // @see https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2autoscaling.html#amazonec2autoscaling-resources-for-iam-policies
    const groupArns = configs.map((c) =>
      stack.formatArn({ service: 'autoscaling', resource: 'autoScalingGroup', resourceName: `*:autoScalingGroupName/${c.fleet.groupName}`, arnFormat: ArnFormat.COLON_RESOURCE_NAME }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'StartSweepGroups',
        // UpdateAutoScalingGroup sends only MinSize, MaxSize and DesiredCapacity, and TerminateInstanceInAutoScalingGroup
        // (an instance still running the old job) no launch template either. The guide lists ec2:RunInstances,
        // iam:PassRole and ec2:CreateTags as needed "when a launch template is provided", for CreateAutoScalingGroup;
        // "ec2:RunInstances are checked when an Auto Scaling group is created or updated using a launch template".
        // @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-api-permissions.html
        // @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-launch-template-permissions.html
        actions: ['autoscaling:UpdateAutoScalingGroup', 'autoscaling:TerminateInstanceInAutoScalingGroup'],
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
    const key = (config: string, file: 'status' | 'results' | 'control'): string => bucket.arnForObjects(storeKeys.configFile(sweep, config, file));
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReadJobState',
        // GetObject also allows HeadObject (whether results.json exists).
        // @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html
        actions: ['s3:GetObject'],
        resources: configs.flatMap((c) => [key(c.config, 'status'), key(c.config, 'results'), key(c.config, 'control')]),
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'WriteStartRequests',
        // One writer per file: status.json is the job runner's; the deploy only answers a standing stop in control.json.
        actions: ['s3:PutObject'],
        resources: configs.map((c) => key(c.config, 'control')),
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ListArtifactBucket',
        // Lets a config without status.json yet read as NoSuchKey (404) instead of AccessDenied (403): S3
        // answers 404 only to a caller with s3:ListBucket on the bucket. No s3:prefix condition: a GetObject
        // carries no s3:prefix, so a prefix-scoped grant does not count (see InstanceRole).
        // @see https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html
        actions: ['s3:ListBucket'],
        resources: [bucket.bucketArn],
      }),
    );

    // The framework's own function: its logs in a group removed with the stack, its role writing only there.
    const frameworkLogs = new logs.LogGroup(this, 'ProviderLogs', { retention: logs.RetentionDays.ONE_MONTH, removalPolicy: RemovalPolicy.DESTROY });
    const frameworkRole = new iam.Role(this, 'ProviderRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `spot-sweep ${sweep} config-restart provider framework`,
    });
    frameworkLogs.grantWrite(frameworkRole);
    this.provider = new cr.Provider(this, 'Provider', { onEventHandler: this.function, logGroup: frameworkLogs, frameworkOnEventRole: frameworkRole });

    const resources = new Map<string, CustomResource>();
    for (const c of configs) {
      const resource = new CustomResource(this, `Config-${c.config}`, {
        serviceToken: this.provider.serviceToken,
        resourceType: RESTART_RESOURCE_TYPE,
        // The parameter's own Value, the same expression, so CloudFormation resolves it to the same bytes the job
        // runner reads (not Fn::GetAtt of the parameter: moto, which the smoke test deploys to, cannot resolve it).
        // MaxParallel only with a cap: its removal is an Update the handler answers by starting the configs
        // that were still waiting for a slot (the scheduler goes with that deploy).
        properties: {
          Config: c.config,
          GroupName: c.fleet.groupName,
          Job: (c.job.node.defaultChild as ssm.CfnParameter).value,
          ...(props.maxParallel === undefined ? {} : { MaxParallel: String(props.maxParallel) }),
        },
      });
      resource.node.addDependency(c.job, c.fleet.group, c.fleet.association);
      resources.set(c.config, resource);
    }
    this.resources = resources;

    for (const arn of groupArns) {
      acknowledgeWildcardResource(role, arn, 'The group id in an Auto Scaling group ARN is assigned at creation; the exact group name pins the resource.');
    }
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'autoscaling:DescribeAutoScalingGroups supports no resource-level permissions (Service Authorization Reference); it only reads.',
    });
    // The framework may invoke the handler's versions too (`<arn>:*`); it invokes nothing else.
    acknowledgeWildcardResource(
      frameworkRole,
      `${this.function.functionArn}:*`,
      "CDK's Provider framework grants its function lambda:InvokeFunction on the onEvent handler and its qualified versions; it invokes no other function.",
    );
  }
}
