import { Duration, Tags, Validations } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { groupName, jobTagValue, storeKeys, TAGS, TERMINATION_HOOK } from '../contract';
import { lookupInstance } from '../cost/instances';
import { idleGpuAlarm, maxRuntimeAlarm } from '../monitoring/alarms';
import { Market, ResolvedConfig } from '../spec';
import { AGENT_CONFIG_DIR, cloudWatchAgentCommands } from './cloudwatch-agent-config';
import { configLaunchTemplates } from './config-launch-template';
import { instanceDeadlineCommands } from './instance-deadline';
import { INSTANCE_LOG_DIR, TrainDocument } from './train-document';

export interface ConfigFleetProps {
  /** The sweep's name (spec `name`). */
  readonly sweepName: string;
  /** The config, every default applied. */
  readonly config: ResolvedConfig;
  readonly vpc: ec2.IVpc;
  /** Subnets to launch into; the group spreads over all of them (and so over their AZs). */
  readonly subnets: ec2.SubnetSelection;
  /** The foundation's instance security group (no ingress). */
  readonly securityGroup: ec2.ISecurityGroup;
  /** The foundation's instance profile (SSM, CloudWatch agent, artifact bucket prefixes). */
  readonly instanceProfile: iam.IInstanceProfile;
  /** The foundation's "train" document; its log group receives the job logs. */
  readonly trainDocument: TrainDocument;
  /** The artifact bucket: the association writes its command output under the config's `ssm/` folder (lib/contract `storeKeys`). */
  readonly bucket: s3.IBucket;
  /** Where the config's job.json is, as the train document takes it (lib/contract `jobUri`: `ssm:<parameter name>`). */
  readonly jobUri: string;
  /** `s3://` URI of the zipped training code. */
  readonly codeUri: string;
  /**
   * SSM parameter holding the AMI id, for every instance type of the config (`-c amiParameter=...`).
   * For emulators that refuse `/aws/` parameters, or to pin your own image.
   * @default - the DLAMI parameter for each type's GPU (see DLAMI_PARAMETERS)
   */
  readonly amiParameterName?: string;
  /**
   * GPU utilisation (percent) under which a minute counts as idle.
   * @default 5
   */
  readonly idleThresholdPercent?: number;
}

/**
 * One config of a sweep: launch template(s), an Auto Scaling group of at most one instance, the SSM
 * association that runs the train document on every instance the group launches, and the alarms that
 * scale the group to zero.
 *
 * The group is created empty (min 0, max 1, no desired capacity in the template, so it starts at 0) and
 * nothing here starts it: the config's restart resource (config-restart.ts) sets it to 0/1/1 when the
 * stack creates the config and whenever a deploy changes its job.json; `spot-sweep start` does the same
 * by hand. A redeploy with the job unchanged leaves the group as it is, whatever ended the job (success,
 * an alarm, the budget, `spot-sweep stop`).
 *
 * Markets:
 * - `spot`: spot only, price-capacity-optimized over the listed types in every subnet's AZ.
 * - `on-demand`: 100 % on-demand, types tried in the listed order (prioritized).
 * - `spot-then-on-demand`: starts exactly like `spot`. The budget guard Lambda moves it to on-demand after
 *   repeated spot launch failures or interruptions, by calling UpdateAutoScalingGroup on {@link groupName}
 *   with `MixedInstancesPolicy.InstancesDistribution.OnDemandPercentageAboveBaseCapacity = 100`; the group
 *   carries the market tag (lib/contract `TAGS.market`) so the guard can tell. A redeploy that leaves the
 *   group's template unchanged does not put it back on spot: CloudFormation updates only the resources
 *   whose template changed.
 *
 * The launch templates live in config-launch-template.ts, the CloudWatch agent configuration their user
 * data loads in cloudwatch-agent-config.ts.
 *
 * Capacity rebalancing is off: it would start a replacement and terminate a training instance on a mere
 * rebalance recommendation; the trainer reacts to the two-minute interruption notice instead.
 * @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-capacity-rebalancing.html
 */
/**
 * How long a terminating instance may wait for its job: the trainer's grace period after SIGTERM (100 s),
 * the checkpoint and log uploads, and the runner's poll of the lifecycle state (5 s). The bootstrap completes
 * the action as soon as the upload is done, so this bounds only a hung job's extra billed time.
 * PutLifecycleHook accepts 30 to 7200 s.
 * @see https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PutLifecycleHook.html
 */
export const TERMINATION_HEARTBEAT = Duration.minutes(10);

export class ConfigFleet extends Construct {
  public readonly groupName: string;
  public readonly group: autoscaling.AutoScalingGroup;
  public readonly market: Market;
  public readonly instanceTypes: readonly string[];
  /** Launch templates by AMI family (one, or two when the config mixes V100 and newer GPUs). */
  public readonly launchTemplates: ReadonlyMap<string, ec2.LaunchTemplate>;
  public readonly association: ssm.CfnAssociation;
  /** Policy that sets the group's desired capacity to 0; every kill alarm invokes it. */
  public readonly scaleToZero: autoscaling.StepScalingAction;
  public readonly idleAlarm: cloudwatch.Alarm;
  public readonly runtimeAlarm: cloudwatch.Alarm;
  /** Holds every terminating instance in Terminating:Wait until its job has checkpointed and uploaded. */
  public readonly terminationHook: autoscaling.LifecycleHook;

  constructor(scope: Construct, id: string, props: ConfigFleetProps) {
    super(scope, id);
    const { sweepName, config } = props;
    this.groupName = groupName(sweepName, config.name);
    this.market = config.market;
    this.instanceTypes = config.instanceTypes;

    // Throw early: every type must be in the price table (the spec validator guarantees it for specs).
    const gpus = config.instanceTypes.map((type) => {
      const found = lookupInstance(type);
      if (found.kind !== 'gpu') {
        throw new Error(`config "${config.name}": instance type "${type}" is not a GPU type of the price table (lib/cost/instances.ts); list GPU types such as g5.xlarge.`);
      }
      return found.info.gpuModel;
    });
    if (gpus.length === 0) {
      throw new Error(`config "${config.name}": no instance types; list at least one, e.g. "instanceTypes": ["g5.xlarge"].`);
    }
    if (props.amiParameterName !== undefined && !/^\/[A-Za-z0-9_.\-/]+$/.test(props.amiParameterName)) {
      throw new Error(`amiParameter "${props.amiParameterName}" is not an SSM parameter name; use a path such as /spot-sweep/ami-id.`);
    }

    const { byType, byFamily } = configLaunchTemplates(this, {
      gpus,
      userData: this.userData(props),
      instanceProfile: props.instanceProfile,
      securityGroup: props.securityGroup,
      volumeGb: config.volumeGb,
      amiParameterName: props.amiParameterName,
      allowV100: config.allowV100,
    });
    const overrides = config.instanceTypes.map((type, i) => ({ instanceType: new ec2.InstanceType(type), launchTemplate: byType[i] }));
    this.launchTemplates = byFamily;

    const onDemand = config.market === 'on-demand';
    this.group = new autoscaling.AutoScalingGroup(this, 'Group', {
      autoScalingGroupName: this.groupName,
      vpc: props.vpc,
      vpcSubnets: props.subnets,
      // No desiredCapacity: the group is created at its minimum, 0, and CloudFormation never sets its size again
      // (CDK's IgnoreUnmodifiedGroupSizeProperties: sizes change only when their template values do). The config's
      // restart resource (config-restart.ts) starts it, once its association exists, and again whenever its
      // job.json changes. "If you do not specify a desired capacity, the default is the minimum size of the group."
      // @see https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_CreateAutoScalingGroup.html
      // @see https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-updatepolicy.html
      minCapacity: 0,
      maxCapacity: 1,
      capacityRebalance: false,
      mixedInstancesPolicy: {
        launchTemplate: overrides[0].launchTemplate,
        launchTemplateOverrides: overrides,
        instancesDistribution: {
          onDemandBaseCapacity: 0,
          onDemandPercentageAboveBaseCapacity: onDemand ? 100 : 0,
          // On-demand: the spec lists types most preferred first.
          onDemandAllocationStrategy: autoscaling.OnDemandAllocationStrategy.PRIORITIZED,
          // Spot: the pools least likely to be interrupted, among the cheapest.
          // @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/allocation-strategies.html
          spotAllocationStrategy: autoscaling.SpotAllocationStrategy.PRICE_CAPACITY_OPTIMIZED,
        },
      },
      // In-service count per group for the dashboard and the CLI.
      groupMetrics: [new autoscaling.GroupMetrics(autoscaling.GroupMetric.IN_SERVICE_INSTANCES)],
    });
    // Every scale-in (an alarm, the budget guard, `spot-sweep stop`, the job's own self-removal) waits here: the
    // instance sees autoscaling/target-lifecycle-state Terminated, the job runner stops its child with a
    // checkpoint and uploads it, and bootstrap.sh completes the action (CONTINUE). No notification target: the
    // instance polls its own metadata. After the heartbeat timeout the group takes the default result, CONTINUE,
    // so a hung job delays the termination by TERMINATION_HEARTBEAT at most. A spot interruption is EC2's own:
    // the group replaces the instance only after EC2 took it, so the hook gives it no time (the notice does).
    // @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/lifecycle-hooks.html
    // @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/retrieving-target-lifecycle-state-through-imds.html
    // @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-capacity-rebalancing.html
    this.terminationHook = this.group.addLifecycleHook('Checkpoint', {
      lifecycleHookName: TERMINATION_HOOK,
      lifecycleTransition: autoscaling.LifecycleTransition.INSTANCE_TERMINATING,
      heartbeatTimeout: TERMINATION_HEARTBEAT,
      defaultResult: autoscaling.DefaultResult.CONTINUE,
    });

    Validations.of(this.group).acknowledge({
      id: 'AwsSolutions-AS3',
      reason:
        'No SNS notifications: a group of at most one instance whose launches, interruptions and scale-to-zero are shown by the dashboard, ' +
        '`spot-sweep status` (activity history, status.json) and the guard ledger; a topic per config would have no subscriber.',
    });
    Validations.of(this.group).acknowledge({
      id: 'AwsSolutions-EC26',
      reason:
        'The rule cannot follow the launch template reference; every launch template of the group maps an encrypted gp3 root volume ' +
        '(asserted in test/constructs/config-fleet.test.ts).',
    });

    // Tags on the group are propagated to the instances at launch; the association targets the job tag.
    // (Not on the association: cfn-lint's schema of AWS::SSM::Association has no Tags.)
    const tagOptions = { excludeResourceTypes: ['AWS::SSM::Association'] };
    const jobTag = jobTagValue(sweepName, config.name);
    Tags.of(this).add('Name', this.groupName, tagOptions);
    Tags.of(this).add(TAGS.sweep, sweepName, tagOptions);
    Tags.of(this).add(TAGS.config, config.name, tagOptions);
    Tags.of(this).add(TAGS.job, jobTag, tagOptions);
    Tags.of(this).add(TAGS.market, config.market, tagOptions);

    // Every instance that registers with SSM and carries the tag runs the document once, including spot
    // replacements; no schedule, and CloudFormation does not wait for the (hours-long) run.
    // @see https://docs.aws.amazon.com/systems-manager/latest/userguide/state-manager-about.html
    this.association = new ssm.CfnAssociation(this, 'Association', {
      associationName: this.groupName,
      name: props.trainDocument.documentName,
      // @see https://docs.aws.amazon.com/systems-manager/latest/userguide/state-manager-about.html (targets by tag: `tag:<key>`)
      targets: [{ key: `tag:${TAGS.job}`, values: [jobTag] }],
      parameters: {
        JobUri: [props.jobUri],
        CodeUri: [props.codeUri],
        WheelIndex: [TrainDocument.wheelIndexFor(gpus[0])],
        ExecutionTimeout: [String(TrainDocument.executionTimeoutSeconds(config.maxRuntimeHours))],
      },
      outputLocation: {
        s3Location: { outputS3BucketName: props.bucket.bucketName, outputS3KeyPrefix: storeKeys.configFile(sweepName, config.name, 'ssmOutput') },
      },
    });

    // Exact capacity 0. Two steps cover any breach: below the threshold (idle GPU) and at or above it (runtime).
    // @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/as-scaling-simple-step.html
    this.scaleToZero = new autoscaling.StepScalingAction(this, 'ScaleToZero', {
      autoScalingGroup: this.group,
      adjustmentType: autoscaling.AdjustmentType.EXACT_CAPACITY,
    });
    this.scaleToZero.addAdjustment({ adjustment: 0, upperBound: 0 });
    this.scaleToZero.addAdjustment({ adjustment: 0, lowerBound: 0 });

    this.idleAlarm = idleGpuAlarm(this, 'GpuIdle', {
      sweep: sweepName,
      config: config.name,
      groupName: this.groupName,
      idleMinutes: config.idleMinutes,
      thresholdPercent: props.idleThresholdPercent,
    });
    this.runtimeAlarm = maxRuntimeAlarm(this, 'MaxRuntime', {
      sweep: sweepName,
      config: config.name,
      groupName: this.groupName,
      maxRuntimeHours: config.maxRuntimeHours,
    });
    for (const alarm of [this.idleAlarm, this.runtimeAlarm]) {
      alarm.addAlarmAction(new cwActions.AutoScalingAction(this.scaleToZero));
    }
  }

  /**
   * Boot: first the instance's own deadline (instance-deadline.ts: it must not depend on anything after it),
   * then the log and config directories, then the CloudWatch agent with its base metrics (the group
   * dimension) and the job's log files (cloudwatch-agent-config.ts).
   */
  private userData(props: ConfigFleetProps): ec2.UserData {
    const userData = ec2.UserData.forLinux();
    userData.addCommands(
      'set -u',
      ...instanceDeadlineCommands({ maxRuntimeHours: props.config.maxRuntimeHours }),
      `mkdir -p ${INSTANCE_LOG_DIR} ${AGENT_CONFIG_DIR}`,
      ...cloudWatchAgentCommands({ logDir: INSTANCE_LOG_DIR, logGroupName: props.trainDocument.logGroup.logGroupName }),
    );
    return userData;
  }
}
