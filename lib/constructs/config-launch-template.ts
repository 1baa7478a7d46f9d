import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { GpuModel } from '../cost/instances';

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
   * proprietary driver). No PyTorch inside: bootstrap.sh installs the cu126 wheels (WheelIndex) into a venv
   * of /usr/bin/python3.10 (the first Python >= 3.10 it finds). Amazon Linux 2 patches ended 2026-06-30
   * (DLAMI support policy), and the current release-notes index no longer lists this line. The parameter
   * becomes a parameter of the sweep stack, which fails to deploy as a whole when it does not resolve, so
   * only a config with `allowV100` may use it (the spec refuses p3 types otherwise, and so does
   * configLaunchTemplates); check it resolves before running on p3, or pass your own image with
   * `-c amiParameter=...`.
   * @see https://docs.aws.amazon.com/dlami/latest/devguide/aws-deep-learning-ami-base-aml2-2026-01-02.html
   * @see https://docs.aws.amazon.com/dlami/latest/devguide/dlami-support-policy-table.html
   * @see https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-supplied-parameter-types.html
   */
  volta: '/aws/service/deeplearning/ami/x86_64/base-proprietary-nvidia-driver-amazon-linux-2/latest/ami-id',
} as const;

/**
 * Root device of both AMIs above: Amazon Linux 2 and 2023 AMIs boot from `/dev/xvda` (Ubuntu AMIs use
 * `/dev/sda1`); a mapping under another name would add a second, unused volume.
 * @see https://docs.aws.amazon.com/ebs/latest/userguide/device_naming.html
 */
export const ROOT_DEVICE_NAME = '/dev/xvda';

/** Which AMI family an instance type needs. */
export function amiFamilyFor(gpuModel: GpuModel): keyof typeof DLAMI_PARAMETERS {
  return gpuModel === 'V100' ? 'volta' : 'modern';
}

export interface ConfigLaunchTemplatesProps {
  /** The GPU model of each instance type of the config, in the spec's order. */
  readonly gpus: readonly GpuModel[];
  /** Boot commands (the CloudWatch agent); the same for every template of the config. */
  readonly userData: ec2.UserData;
  readonly instanceProfile: iam.IInstanceProfile;
  readonly securityGroup: ec2.ISecurityGroup;
  /** Size of the encrypted gp3 root volume (the spec's `volumeGb`). */
  readonly volumeGb: number;
  /**
   * One SSM parameter with the AMI id for every type (`-c amiParameter=...`).
   * @default - the DLAMI parameter of each type's GPU (DLAMI_PARAMETERS)
   */
  readonly amiParameterName?: string;
  /**
   * Whether V100 types may be given (the config's `allowV100`). Without it a V100 type throws, so a sweep
   * that does not opt in never depends on the V100 AMI parameter.
   * @default false
   */
  readonly allowV100?: boolean;
}

/**
 * The launch templates of one config, one per AMI family its types need (two when it mixes V100 and newer
 * GPUs, one with an AMI parameter override), created in `scope` (the config's fleet) with the ids
 * `LaunchTemplate` and `LaunchTemplateVolta`: those ids are API (they make the logical ids).
 * Returns the template of each instance type, in the order of `gpus`, and every template by family.
 */
export function configLaunchTemplates(scope: Construct, props: ConfigLaunchTemplatesProps): { byType: ec2.LaunchTemplate[]; byFamily: Map<string, ec2.LaunchTemplate> } {
  if (props.gpus.includes('V100') && !props.allowV100) {
    throw new Error(
      `${scope.node.path}: a V100 (p3) instance type without allowV100; its Amazon Linux 2 AMI is past end of life. List current types (g5, g6, g6e, p4d, p5) or set allowV100 in the config.`,
    );
  }
  const byFamily = new Map<string, ec2.LaunchTemplate>();
  const templateFor = (gpu: GpuModel): ec2.LaunchTemplate => {
    const family = props.amiParameterName ? 'custom' : amiFamilyFor(gpu);
    let template = byFamily.get(family);
    if (!template) {
      const parameterName = props.amiParameterName ?? DLAMI_PARAMETERS[amiFamilyFor(gpu)];
      template = new ec2.LaunchTemplate(scope, family === 'volta' ? 'LaunchTemplateVolta' : 'LaunchTemplate', {
        // Resolved by CloudFormation at deploy (a parameter of type AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>),
        // not at launch: a spot replacement resumes the checkpoint on the same driver and PyTorch as the attempt
        // before it. The next deploy picks up a newer AMI.
        machineImage: ec2.MachineImage.fromSsmParameter(parameterName, { os: ec2.OperatingSystemType.LINUX }),
        userData: props.userData,
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
            volume: ec2.BlockDeviceVolume.ebs(props.volumeGb, {
              volumeType: ec2.EbsDeviceVolumeType.GP3,
              encrypted: true,
              deleteOnTermination: true,
            }),
          },
        ],
      });
      byFamily.set(family, template);
    }
    return template;
  };
  return { byType: props.gpus.map(templateFor), byFamily };
}
