import { Annotations, Tags, Validations } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { GpuModel, lookupInstance } from '../cost/instances';
import { idleGpuAlarm, maxRuntimeAlarm } from '../monitoring/alarms';
import { CW_AGENT_NAMESPACE } from '../monitoring/metrics';
import { Market, ResolvedConfig } from '../spec';
import { INSTANCE_LOG_DIR, TrainDocument } from './train-document';

/**
 * SSM public parameters of the Deep Learning AMIs, `/aws/service/deeplearning/ami/<arch>/<ami type>/latest/ami-id`,
 * where the AMI type is the DLAMI name without "Deep", "Learning" and "AMI".
 * @see https://docs.aws.amazon.com/dlami/latest/devguide/find-dlami-id.html
 */
export const DLAMI_PARAMETERS = {
  /**
   * "Deep Learning OSS Nvidia Driver AMI GPU PyTorch 2.11 (Amazon Linux 2023)": G4dn, G5, G6, G6e, P4, P4de, P5
   * (Turing and newer; the open-source kernel modules do not drive Volta). PyTorch 2.11 is in the name: a pin
   * to move when AWS retires that line (release notes list the supported ones).
   * @see https://docs.aws.amazon.com/dlami/latest/devguide/aws-deep-learning-ami-gpupt211oss-al2023-2026-09-07.html
   * @see https://docs.aws.amazon.com/dlami/latest/devguide/appendix-ami-release-notes.html
   */
  modern: '/aws/service/deeplearning/ami/x86_64/oss-nvidia-driver-gpu-pytorch-2.11-amazon-linux-2023/latest/ami-id',
  /**
   * "Deep Learning Base Proprietary Nvidia Driver AMI (Amazon Linux 2)": G3, P3, P3dn (Volta needs the
   * proprietary driver). No PyTorch inside: bootstrap.sh installs the cu126 wheels (WheelIndex) with
   * /usr/bin/python3.10. Amazon Linux 2 patches ended 2026-06-30 (DLAMI support policy), and the current
   * release-notes index no longer lists this line: check the parameter still resolves before running on p3,
   * or pass your own image with `-c amiParameter=...`.
   * @see https://docs.aws.amazon.com/dlami/latest/devguide/aws-deep-learning-ami-base-aml2-2026-01-02.html
   * @see https://docs.aws.amazon.com/dlami/latest/devguide/dlami-support-policy-table.html
   */
  volta: '/aws/service/deeplearning/ami/x86_64/base-proprietary-nvidia-driver-amazon-linux-2/latest/ami-id',
} as const;

/**
 * Root device of both AMIs above: Amazon Linux 2 and 2023 AMIs boot from `/dev/xvda` (Ubuntu AMIs use
 * `/dev/sda1`); a mapping under another name would add a second, unused volume.
 * @see https://docs.aws.amazon.com/ebs/latest/userguide/device_naming.html
 */
export const ROOT_DEVICE_NAME = '/dev/xvda';

/** Tag keys every instance of a config carries (.ci/CONTRACTS.md). */
export const TAG_KEYS = { sweep: 'spot-sweep:sweep', config: 'spot-sweep:config', job: 'spot-sweep:job', market: 'spot-sweep:market' } as const;

/** Which AMI family an instance type needs. */
export function amiFamilyFor(gpuModel: GpuModel): keyof typeof DLAMI_PARAMETERS {
  return gpuModel === 'V100' ? 'volta' : 'modern';
}

/** `SpotSweep-<sweep>-<config>`: the Auto Scaling group name the guard Lambda and the CLI look up. */
export function configGroupName(sweepName: string, configName: string): string {
  return `SpotSweep-${sweepName}-${configName}`;
}

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
  /** The artifact bucket: the association writes its command output under `sweeps/<sweep>/<config>/ssm/`. */
  readonly bucket: s3.IBucket;
  /** `s3://` URI of the config's job.json. */
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
 * Markets:
 * - `spot`: spot only, price-capacity-optimized over the listed types in every subnet's AZ.
 * - `on-demand`: 100 % on-demand, types tried in the listed order (prioritized).
 * - `spot-then-on-demand`: starts exactly like `spot`. The budget guard Lambda moves it to on-demand after
 *   repeated spot launch failures or interruptions, by calling UpdateAutoScalingGroup on {@link groupName}
 *   with `MixedInstancesPolicy.InstancesDistribution.OnDemandPercentageAboveBaseCapacity = 100`; the group
 *   carries the tag `spot-sweep:market=spot-then-on-demand` so the guard can tell. The next `cdk deploy`
 *   puts it back on spot.
 *
 * Capacity rebalancing is off: it would start a replacement and terminate a training instance on a mere
 * rebalance recommendation; the trainer reacts to the two-minute interruption notice instead.
 * @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-capacity-rebalancing.html
 */
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

  constructor(scope: Construct, id: string, props: ConfigFleetProps) {
    super(scope, id);
    const { sweepName, config } = props;
    this.groupName = configGroupName(sweepName, config.name);
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

    const userData = this.userData(props);
    const templates = new Map<string, ec2.LaunchTemplate>();
    const templateFor = (gpu: GpuModel): ec2.LaunchTemplate => {
      const family = props.amiParameterName ? 'custom' : amiFamilyFor(gpu);
      let template = templates.get(family);
      if (!template) {
        const parameterName = props.amiParameterName ?? DLAMI_PARAMETERS[amiFamilyFor(gpu)];
        template = new ec2.LaunchTemplate(this, family === 'modern' || family === 'custom' ? 'LaunchTemplate' : 'LaunchTemplateVolta', {
          // Resolved by CloudFormation at deploy (a parameter of type AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>),
          // not at launch: a spot replacement resumes the checkpoint on the same driver and PyTorch as the attempt
          // before it. The next deploy picks up a newer AMI.
          machineImage: ec2.MachineImage.fromSsmParameter(parameterName, { os: ec2.OperatingSystemType.LINUX }),
          userData,
          instanceProfile: props.instanceProfile,
          securityGroup: props.securityGroup,
          // IMDSv2 only. Hop limit 1: the job runs on the host (no containers), and a limit of 1 keeps
          // the role's credentials out of reach of anything one network hop away.
          // @see https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-IMDS-new-instances.html
          httpEndpoint: true,
          httpTokens: ec2.LaunchTemplateHttpTokens.REQUIRED,
          httpPutResponseHopLimit: 1,
          blockDevices: [
            {
              deviceName: ROOT_DEVICE_NAME,
              volume: ec2.BlockDeviceVolume.ebs(config.volumeGb, {
                volumeType: ec2.EbsDeviceVolumeType.GP3,
                encrypted: true,
                deleteOnTermination: true,
              }),
            },
          ],
        });
        templates.set(family, template);
      }
      return template;
    };
    const overrides = config.instanceTypes.map((type, i) => ({ instanceType: new ec2.InstanceType(type), launchTemplate: templateFor(gpus[i]) }));
    this.launchTemplates = templates;

    const onDemand = config.market === 'on-demand';
    this.group = new autoscaling.AutoScalingGroup(this, 'Group', {
      autoScalingGroupName: this.groupName,
      vpc: props.vpc,
      vpcSubnets: props.subnets,
      minCapacity: 0,
      maxCapacity: 1,
      desiredCapacity: 1,
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
    Annotations.of(this.group).acknowledgeWarning(
      '@aws-cdk/aws-autoscaling:desiredCapacitySet',
      'Desired 1 on every deploy is the intent: deploying a sweep (again) starts each config; a config that already succeeded exits at once (the job runner checks status.json).',
    );

    // Tags on the group are propagated to the instances at launch; the association targets `spot-sweep:job`.
    // (Not on the association: cfn-lint's schema of AWS::SSM::Association has no Tags.)
    const tagOptions = { excludeResourceTypes: ['AWS::SSM::Association'] };
    Tags.of(this).add('Name', this.groupName, tagOptions);
    Tags.of(this).add(TAG_KEYS.sweep, sweepName, tagOptions);
    Tags.of(this).add(TAG_KEYS.config, config.name, tagOptions);
    Tags.of(this).add(TAG_KEYS.job, `${sweepName}/${config.name}`, tagOptions);
    Tags.of(this).add(TAG_KEYS.market, config.market, tagOptions);

    // Every instance that registers with SSM and carries the tag runs the document once, including spot
    // replacements; no schedule, and CloudFormation does not wait for the (hours-long) run.
    // @see https://docs.aws.amazon.com/systems-manager/latest/userguide/state-manager-about.html
    this.association = new ssm.CfnAssociation(this, 'Association', {
      associationName: this.groupName,
      name: props.trainDocument.documentName,
      targets: [{ key: `tag:${TAG_KEYS.job}`, values: [`${sweepName}/${config.name}`] }],
      parameters: {
        JobUri: [props.jobUri],
        CodeUri: [props.codeUri],
        WheelIndex: [TrainDocument.wheelIndexFor(gpus[0])],
        ExecutionTimeout: [String(TrainDocument.executionTimeoutSeconds(config.maxRuntimeHours))],
      },
      outputLocation: {
        s3Location: { outputS3BucketName: props.bucket.bucketName, outputS3KeyPrefix: `sweeps/${sweepName}/${config.name}/ssm/` },
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
   * Starts the CloudWatch agent at boot: metrics carry the group name and are also aggregated by it
   * (the GPU metrics themselves are appended by bootstrap.sh when the job starts, see .ci/CONTRACTS.md),
   * and the job's log files go to the train document's log group. The log config is written to the same
   * file name the train document appends later, so the agent keeps one copy of it, not two.
   * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-Agent-Configuration-File-Details.html
   * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/install-CloudWatch-Agent-commandline-fleet.html
   */
  private userData(props: ConfigFleetProps): ec2.UserData {
    const base = {
      agent: { metrics_collection_interval: 60 },
      metrics: {
        namespace: CW_AGENT_NAMESPACE,
        append_dimensions: { AutoScalingGroupName: '${aws:AutoScalingGroupName}', InstanceId: '${aws:InstanceId}' },
        aggregation_dimensions: [['AutoScalingGroupName']],
        // Host memory: cheap, and the first thing to look at when a data set does not fit.
        metrics_collected: { mem: { measurement: ['mem_used_percent'] } },
      },
    };
    const logs = {
      logs: {
        logs_collected: {
          files: {
            collect_list: [
              { file_path: `${INSTANCE_LOG_DIR}/*.log`, log_group_name: '__LOG_GROUP__', log_stream_name: '{instance_id}', timezone: 'UTC' },
            ],
          },
        },
      },
    };
    const userData = ec2.UserData.forLinux();
    userData.addCommands(
      'set -u',
      `mkdir -p ${INSTANCE_LOG_DIR} /opt/spot-sweep`,
      'ctl=/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl',
      // The DLAMIs ship the agent; the package is in the Amazon Linux repositories otherwise.
      'if [ ! -x "$ctl" ]; then dnf install -y -q amazon-cloudwatch-agent || yum install -y -q amazon-cloudwatch-agent || true; fi',
      `cat > /opt/spot-sweep/cloudwatch-base.json <<'CW_BASE'`,
      JSON.stringify(base),
      'CW_BASE',
      `cat > /opt/spot-sweep/cloudwatch-logs.json <<'CW_LOGS'`,
      JSON.stringify(logs).replace('__LOG_GROUP__', props.trainDocument.logGroup.logGroupName),
      'CW_LOGS',
      'if [ -x "$ctl" ]; then',
      '  "$ctl" -a fetch-config -m ec2 -c file:/opt/spot-sweep/cloudwatch-base.json &&',
      '    "$ctl" -a append-config -m ec2 -s -c file:/opt/spot-sweep/cloudwatch-logs.json ||',
      `    echo "spot-sweep: the CloudWatch agent did not start; no GPU metrics (the idle alarm stays quiet)" >> ${INSTANCE_LOG_DIR}/boot.log`,
      'fi',
    );
    return userData;
  }
}
