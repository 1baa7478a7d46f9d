import { CfnOutput, Stack, StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { FOUNDATION_STACK, STACK_OUTPUTS } from './contract';
import { ArtifactBucket } from './constructs/artifact-bucket';
import { InstanceRole } from './constructs/instance-role';
import { ExistingVpcAttributes, Network } from './constructs/network';
import { TrainDocument } from './constructs/train-document';
import { version } from '../package.json';

/** The foundation's stack name (lib/contract `FOUNDATION_STACK`); the CLI finds the bucket through it. */
export const FOUNDATION_STACK_NAME = FOUNDATION_STACK;

export interface FoundationStackProps extends StackProps {
  /**
   * Delete the artifact bucket and its objects on `cdk destroy` (`-c destroyData=true`).
   * @default false - the bucket and everything in it are kept
   */
  readonly destroyData?: boolean;
  /**
   * Run instances in this existing VPC instead of a new one (`-c vpcId=...`).
   * @default - a new VPC, public subnets only, no NAT gateway, S3 gateway endpoint
   */
  readonly existingVpc?: ExistingVpcAttributes;
  /**
   * The zones of the new VPC, one public subnet each (`-c availabilityZones=...` without `-c vpcId`).
   * @default - two zones, with a synth warning that says how to list every zone offering the sweeps' types
   */
  readonly availabilityZones?: readonly string[];
}

/** What every sweep stack uses from the foundation. */
export interface SweepFoundation {
  readonly bucket: s3.IBucket;
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly securityGroup: ec2.ISecurityGroup;
  readonly instanceRole: iam.IRole;
  readonly instanceProfile: iam.IInstanceProfile;
  readonly trainDocument: TrainDocument;
}

/**
 * Deployed once per account and region; every sweep stack uses what it exports. Nothing in it
 * costs money while idle except the objects stored in the bucket.
 */
export class FoundationStack extends Stack implements SweepFoundation {
  public readonly bucket: s3.IBucket;
  public readonly vpc: ec2.IVpc;
  public readonly subnets: ec2.SubnetSelection;
  public readonly securityGroup: ec2.ISecurityGroup;
  public readonly instanceRole: iam.IRole;
  public readonly instanceProfile: iam.IInstanceProfile;
  /** The SSM Command document every training instance runs (through its sweep's association). */
  public readonly trainDocument: TrainDocument;

  constructor(scope: Construct, id: string, props: FoundationStackProps = {}) {
    super(scope, id, {
      description: 'spot-sweep foundation: artifact bucket, network, instance role, train document (once per account and region)',
      ...props,
    });

    // Construct ids below are API: renaming one replaces the resource (the bucket with its data).
    const artifacts = new ArtifactBucket(this, 'Artifacts', { destroyData: props.destroyData });
    const network = new Network(this, 'Network', { existingVpc: props.existingVpc, availabilityZones: props.availabilityZones });
    const instance = new InstanceRole(this, 'Instance', { bucket: artifacts.bucket });
    const trainDocument = new TrainDocument(this, 'Train', { bucket: artifacts.bucket });

    this.bucket = artifacts.bucket;
    this.vpc = network.vpc;
    this.subnets = network.subnets;
    this.securityGroup = network.securityGroup;
    this.instanceRole = instance.role;
    this.instanceProfile = instance.instanceProfile;
    this.trainDocument = trainDocument;

    // For the CLI (status, logs, results) and for people: where the artifacts are.
    new CfnOutput(this, STACK_OUTPUTS.artifactBucket, { value: artifacts.bucket.bucketName });
    new CfnOutput(this, 'InstanceRoleArn', { value: instance.role.roleArn });
    new CfnOutput(this, STACK_OUTPUTS.vpcId, { value: network.vpc.vpcId });
    new CfnOutput(this, 'TrainDocumentName', { value: trainDocument.documentName });
    new CfnOutput(this, STACK_OUTPUTS.trainLogGroup, { value: trainDocument.logGroup.logGroupName });
    // The checkout's version that deployed this stack: `spot-sweep doctor` compares it with its own, so a
    // foundation older than the sweep stacks that use it is found before a deploy, not by a failing one.
    new CfnOutput(this, STACK_OUTPUTS.foundationVersion, { value: version, description: 'spot-sweep version (package.json) that deployed this stack' });
  }
}
