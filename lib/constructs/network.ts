import { Annotations, Validations } from 'aws-cdk-lib';
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
}

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
      const vpc = new ec2.Vpc(this, 'Vpc', {
        ipAddresses: ec2.IpAddresses.cidr('10.42.0.0/16'),
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
