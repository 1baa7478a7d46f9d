import { Annotations, Stack, Token, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';

/** An existing VPC, described in full so that synth needs no lookup (and so no credentials). */
export interface ExistingVpcAttributes {
  /** e.g. `vpc-0123456789abcdef0`. */
  readonly vpcId: string;
  /** Subnets to launch into; they need a route to the internet (public) or a NAT, plus S3 access. */
  readonly subnetIds: readonly string[];
  /** The AZ of each subnet, in the same order, e.g. `us-east-1a`. */
  readonly availabilityZones: readonly string[];
}

export interface NetworkProps {
  /**
   * Use this VPC instead of creating one. `Vpc.fromLookup` would need credentials and a context
   * lookup at synth, so the VPC is described by its ids (`-c vpcId=... -c subnetIds=... -c availabilityZones=...`).
   * The VPC's own routes must reach S3 (a gateway endpoint is not added to a VPC we do not own).
   * @default - a new VPC with public subnets only, no NAT gateway, and an S3 gateway endpoint
   */
  readonly existingVpc?: ExistingVpcAttributes;
  /**
   * The AZs of the new VPC, one public subnet each (`-c availabilityZones=us-east-1a,us-east-1b,...`): list
   * every AZ of the region that offers the sweeps' instance types, so that a group can launch wherever spot
   * capacity is. The names must be AZs of the stack's region when the stack has one.
   * @default - two AZs (an environment-agnostic stack knows no more), with a synth warning saying how to list all
   */
  readonly availabilityZones?: readonly string[];
}

/** The AZ name form, e.g. `us-east-1a`, `ap-southeast-2c`, `us-gov-west-1b`. */
export const AZ_NAME = /^[a-z]{2}(-[a-z]+)+-\d[a-z]$/;

/**
 * Every problem with an AZ list, at once: a name that is no AZ name, one outside the stack's region (when the
 * region is known at synth), a repeated one.
 */
export function availabilityZoneProblems(zones: readonly string[], region: string | undefined): string[] {
  const problems: string[] = [];
  if (zones.length === 0) problems.push('no availability zones given; list at least one, e.g. -c availabilityZones=us-east-1a,us-east-1b.');
  zones.forEach((az, i) => {
    if (!AZ_NAME.test(az)) problems.push(`"${az}" is not an availability zone name; use names such as us-east-1a.`);
    else if (region !== undefined && !(az.startsWith(region) && /^[a-z]$/.test(az.slice(region.length)))) {
      problems.push(`"${az}" is not an availability zone of the stack's region ${region}; list that region's zones (aws ec2 describe-availability-zones --region ${region}).`);
    }
    if (zones.indexOf(az) !== i) problems.push(`"${az}" is listed twice; list each zone once.`);
  });
  return problems;
}

/** What a user runs to find the zones to pass: the region's AZs, and those offering the sweep's instance types. */
export const LIST_AZS_HINT =
  'List the region\'s zones with `aws ec2 describe-availability-zones --query "AvailabilityZones[].ZoneName"` and those offering your instance types with ' +
  '`aws ec2 describe-instance-type-offerings --location-type availability-zone --filters Name=instance-type,Values=p4d.24xlarge,g5.xlarge --query "InstanceTypeOfferings[].[InstanceType,Location]"`, ' +
  'then deploy the foundation with -c availabilityZones=<zone>,<zone>,... (one public subnet each; changing the list replaces the subnets, so do it while no sweep runs).';

/**
 * Where the training instances run.
 *
 * The new VPC has public subnets only and no NAT gateway, so it costs nothing while no sweep runs;
 * instances reach SSM and package mirrors through the internet gateway (egress only: the security
 * group has no ingress), and S3 through a gateway endpoint (free, and keeps data off the internet).
 * @see https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-s3.html
 */
export class Network extends Construct {
  public readonly vpc: ec2.IVpc;
  /** The subnets instances launch into. */
  public readonly subnets: ec2.SubnetSelection;
  /** Security group of the training instances: no ingress at all, all egress (SSM, S3, pip). */
  public readonly securityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: NetworkProps = {}) {
    super(scope, id);

    if (props.existingVpc) {
      const { vpcId, subnetIds, availabilityZones } = props.existingVpc;
      if (subnetIds.length === 0 || subnetIds.length !== availabilityZones.length) {
        throw new Error(
          `existing VPC ${vpcId}: got ${subnetIds.length} subnet ids and ${availabilityZones.length} availability zones; give one AZ per subnet, in the same order.`,
        );
      }
      this.vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
        vpcId,
        availabilityZones: [...availabilityZones],
        publicSubnetIds: [...subnetIds],
      });
      // Route table ids would only matter for adding routes or endpoints, which we never do to a VPC we do not own.
      Annotations.of(this.vpc).acknowledgeWarning('@aws-cdk/aws-ec2:noSubnetRouteTableId', 'instances only launch into these subnets; no routes are added');
    } else {
      const stack = Stack.of(this);
      const region = Token.isUnresolved(stack.region) ? undefined : stack.region;
      if (props.availabilityZones !== undefined) {
        const problems = availabilityZoneProblems(props.availabilityZones, region);
        if (problems.length > 0) throw new Error(`-c availabilityZones=${props.availabilityZones.join(',')}:\n  - ${problems.join('\n  - ')}`);
      } else {
        // An environment-agnostic stack resolves its AZs only at deploy, and the Vpc then takes two of them;
        // scarce types (p4d, p5) may be offered in neither. Synth makes no lookup, so the user lists the zones.
        // @see https://docs.aws.amazon.com/cdk/v2/guide/environments.html
        // @see https://docs.aws.amazon.com/cli/latest/reference/ec2/describe-instance-type-offerings.html
        Annotations.of(this).addWarningV2(
          'spot-sweep:twoAzsOnly',
          `The foundation VPC spans only 2 availability zones, so the groups cannot launch in the region's other zones (scarce types such as p4d and p5 are offered in only some). ${LIST_AZS_HINT}`,
        );
      }
      const vpc = new ec2.Vpc(this, 'Vpc', {
        ipAddresses: ec2.IpAddresses.cidr('10.42.0.0/16'),
        // One /20 public subnet per zone (16 fit the /16; a region has at most a handful of zones).
        ...(props.availabilityZones ? { availabilityZones: [...props.availabilityZones] } : {}),
        natGateways: 0,
        subnetConfiguration: [{ name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 20 }],
        // The default security group is used by nothing here; restricting it would add a custom
        // resource Lambda to the stack for no gain.
        restrictDefaultSecurityGroup: false,
        gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
      });
      Validations.of(vpc).acknowledge({
        id: 'AwsSolutions-VPC7',
        reason:
          'No flow logs: the VPC has no ingress path (security group without inbound rules, no NAT), only short-lived training instances, ' +
          'and flow logs would bill CloudWatch ingestion on every run. Add them if your account policy requires VPC flow logs.',
      });
      this.vpc = vpc;
    }
    this.subnets = { subnetType: ec2.SubnetType.PUBLIC };

    this.securityGroup = new ec2.SecurityGroup(this, 'InstanceSecurityGroup', {
      vpc: this.vpc,
      description: 'spot-sweep training instances: no ingress (managed through SSM), all egress for SSM, S3 and package downloads',
      allowAllOutbound: true,
    });
  }
}
