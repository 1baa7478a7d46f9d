import { App, Stack, Validations } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { CHECKPOINT_TAG } from '../lib/contract';
import { FoundationStack, FoundationStackProps } from '../lib/foundation-stack';

/** One app per variant; cdk-nag registered as in bin/app.ts. */
function build(props: FoundationStackProps = {}): { app: App; stack: FoundationStack; template: Template } {
  const app = new App();
  const stack = new FoundationStack(app, 'SpotSweep-Foundation', props);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack, template: Template.fromStack(stack) };
}

/** Findings cdk-nag AwsSolutions reports that nobody acknowledged. */
function nagFindings(app: App): string[] {
  return new AwsSolutionsChecks().validateScope(app).violations.map((v) => `${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(', ')}`);
}

describe('FoundationStack (defaults)', () => {
  const { app, stack, template } = build();

  test('the artifact bucket is encrypted, private, TLS-only, unversioned, and kept on destroy', () => {
    template.hasResource('AWS::S3::Bucket', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: Match.objectLike({
        BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
        VersioningConfiguration: Match.absent(),
      }),
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
    template.resourceCountIs('Custom::S3AutoDeleteObjects', 0);
  });

  test('the artifact bucket sends its events to EventBridge, without a notifications custom resource', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      NotificationConfiguration: { EventBridgeConfiguration: { EventBridgeEnabled: true } },
    });
    template.resourceCountIs('Custom::S3BucketNotifications', 0);
  });

  test('lifecycle expires tagged checkpoints under sweeps/ and aborts incomplete multipart uploads after a day', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({ Id: 'expire-checkpoints', Status: 'Enabled', ExpirationInDays: 7, Prefix: 'sweeps/', TagFilters: [{ Key: 'spot-sweep-kind', Value: 'checkpoint' }] }),
          Match.objectLike({ Id: 'abort-incomplete-multipart-uploads', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } }),
        ]),
      },
    });
    // The tag is the contract's, the one the job runner puts on every checkpoint upload.
    expect(CHECKPOINT_TAG).toEqual({ key: 'spot-sweep-kind', value: 'checkpoint' });
  });

  test('the VPC has public subnets only, no NAT gateway, and an S3 gateway endpoint', () => {
    template.resourceCountIs('AWS::EC2::VPC', 1);
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    const subnets = Object.values(template.findResources('AWS::EC2::Subnet'));
    expect(subnets.length).toBeGreaterThanOrEqual(2);
    for (const s of subnets) expect(s.Properties.MapPublicIpOnLaunch).toBe(true);
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Gateway',
      ServiceName: { 'Fn::Join': ['', ['com.amazonaws.', { Ref: 'AWS::Region' }, '.s3']] },
    });
  });

  test('the security group has no ingress at all and allows all egress', () => {
    const groups = Object.values(template.findResources('AWS::EC2::SecurityGroup'));
    expect(groups).toHaveLength(1);
    expect(groups[0].Properties.SecurityGroupIngress).toBeUndefined();
    expect(groups[0].Properties.SecurityGroupEgress).toEqual([{ CidrIp: '0.0.0.0/0', Description: 'Allow all outbound traffic by default', IpProtocol: '-1' }]);
    template.resourceCountIs('AWS::EC2::SecurityGroupIngress', 0);
  });

  test('the instance role has SSM core and the CloudWatch agent, and an instance profile', () => {
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: { Statement: [Match.objectLike({ Principal: { Service: 'ec2.amazonaws.com' } })] },
      ManagedPolicyArns: [
        { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::aws:policy/AmazonSSMManagedInstanceCore']] },
        { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::aws:policy/CloudWatchAgentServerPolicy']] },
      ],
    });
    template.resourceCountIs('AWS::IAM::InstanceProfile', 1);
  });

  test('S3 access is limited to the bucket prefixes, and nothing grants a * action or * resource', () => {
    const policies = Object.values(template.findResources('AWS::IAM::Policy'));
    const statements = policies.flatMap((p) => p.Properties.PolicyDocument.Statement);
    for (const s of statements) {
      const actions = [s.Action].flat();
      const resources = [s.Resource].flat();
      expect(actions.some((a: string) => a === '*' || a.endsWith(':*'))).toBe(false);
      expect(resources).not.toContain('*');
    }
    const objectResources = statements
      .filter((s) => s.Sid === 'ReadWriteSweepObjects' || s.Sid === 'ReadCodeAndData')
      .flatMap((s) => [s.Resource].flat())
      .map((r: { 'Fn::Join': [string, unknown[]] }) => r['Fn::Join'][1][1]);
    expect(objectResources.sort()).toEqual(['/cache/*', '/code/*', '/datasets/*', '/sweeps/*']);
  });

  /** The instance role's statements that grant `action`. */
  const instanceStatements = (action: string) =>
    Object.values(template.findResources('AWS::IAM::Policy'))
      .flatMap((p) => p.Properties.PolicyDocument.Statement)
      .filter((s: { Action: string | string[] }) => [s.Action].flat().includes(action));
  const bucketArn = { 'Fn::GetAtt': [expect.stringMatching(/^ArtifactsBucket/), 'Arn'] };

  test('a missing status.json, control.json or checkpoint reads as absent, not denied: ListBucket on the bucket, no s3:prefix condition', () => {
    const list = instanceStatements('s3:ListBucket');
    expect(list).toHaveLength(1);
    expect(list[0].Condition).toBeUndefined();
    expect(list[0].Resource).toEqual(bucketArn);
  });

  test('the SSM Agent may write command output to the encrypted bucket: s3:GetEncryptionConfiguration on the artifact bucket only', () => {
    const read = instanceStatements('s3:GetEncryptionConfiguration');
    expect(read).toHaveLength(1);
    expect([read[0].Action].flat()).toEqual(['s3:GetEncryptionConfiguration']);
    expect(read[0].Condition).toBeUndefined();
    expect(read[0].Resource).toEqual(bucketArn);
  });

  test('an instance may remove itself only from spot-sweep groups', () => {
    const policies = template.findResources('AWS::IAM::Policy');
    const statements = Object.values(policies).flatMap((p) => p.Properties.PolicyDocument.Statement as { Sid?: string; Action: unknown; Resource: unknown }[]);
    const self = statements.find((s) => s.Sid === 'RemoveSelfFromOwnGroup');
    expect(self?.Action).toBe('autoscaling:TerminateInstanceInAutoScalingGroup');
    expect(JSON.stringify(self?.Resource)).toContain(':autoScalingGroup:*:autoScalingGroupName/SpotSweep-*');
  });

  test('an instance may complete the termination lifecycle action only in spot-sweep groups, and nothing more of the hook', () => {
    const complete = instanceStatements('autoscaling:CompleteLifecycleAction');
    expect(complete).toHaveLength(1);
    expect([complete[0].Action].flat()).toEqual(['autoscaling:CompleteLifecycleAction']);
    expect(complete[0].Condition).toBeUndefined();
    // The same group ARN pattern as the self-removal: SpotSweep-* groups in this account and region.
    const removal = instanceStatements('autoscaling:TerminateInstanceInAutoScalingGroup');
    expect(complete[0].Resource).toEqual(removal[0].Resource);
    expect(JSON.stringify(complete[0].Resource)).toContain(':autoScalingGroup:*:autoScalingGroupName/SpotSweep-*');
    for (const other of ['autoscaling:RecordLifecycleActionHeartbeat', 'autoscaling:PutLifecycleHook', 'autoscaling:DeleteLifecycleHook']) {
      expect(instanceStatements(other)).toEqual([]);
    }
  });

  test('exports what sweep stacks need', () => {
    expect(stack.bucket).toBeDefined();
    expect(stack.instanceRole).toBeDefined();
    expect(stack.instanceProfile).toBeDefined();
    expect(stack.securityGroup).toBeDefined();
    expect(stack.vpc).toBeDefined();
    template.hasOutput('ArtifactBucketName', {});
  });

  test('cdk-nag AwsSolutions reports no unacknowledged finding', () => {
    expect(nagFindings(app)).toEqual([]);
  });
});

describe('FoundationStack variants', () => {
  test('destroyData deletes the bucket and its objects on destroy, and stays nag-clean', () => {
    const { app, template } = build({ destroyData: true });
    template.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Delete' });
    template.resourceCountIs('Custom::S3AutoDeleteObjects', 1);
    expect(nagFindings(app)).toEqual([]);
  });

  test('an existing VPC is used by id without a lookup, and no VPC is created', () => {
    const { template } = build({
      existingVpc: { vpcId: 'vpc-0123456789abcdef0', subnetIds: ['subnet-0aaaaaaaaaaaaaaaa', 'subnet-0bbbbbbbbbbbbbbbb'], availabilityZones: ['us-east-1a', 'us-east-1b'] },
    });
    template.resourceCountIs('AWS::EC2::VPC', 0);
    template.resourceCountIs('AWS::EC2::VPCEndpoint', 0);
    template.hasResourceProperties('AWS::EC2::SecurityGroup', { VpcId: 'vpc-0123456789abcdef0' });
  });

  test('fails when the existing VPC has a different number of subnets and AZs', () => {
    expect(() => build({ existingVpc: { vpcId: 'vpc-0123456789abcdef0', subnetIds: ['subnet-0aaaaaaaaaaaaaaaa'], availabilityZones: [] } })).toThrow(
      /got 1 subnet ids and 0 availability zones/,
    );
  });
});

describe('FoundationStack: the VPC spreads over the zones it is given', () => {
  const zones = ['us-east-1a', 'us-east-1b', 'us-east-1c', 'us-east-1d', 'us-east-1f'];

  test('one public subnet per zone given, in those zones, and no warning', () => {
    const { stack, template } = build({ availabilityZones: zones });
    template.resourceCountIs('AWS::EC2::Subnet', zones.length);
    const subnetZones = Object.values(template.findResources('AWS::EC2::Subnet')).map((r) => r.Properties.AvailabilityZone);
    expect(subnetZones.sort()).toEqual(zones);
    for (const r of Object.values(template.findResources('AWS::EC2::Subnet'))) expect(r.Properties.MapPublicIpOnLaunch).toBe(true);
    expect(Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('only 2 availability zones'))).toHaveLength(0);
  });

  test('without zones: two, and a synth warning with the commands that list the region\'s zones and those offering the instance types', () => {
    const { stack, template } = build();
    template.resourceCountIs('AWS::EC2::Subnet', 2);
    const [warning] = Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('only 2 availability zones'));
    const text = JSON.stringify(warning.entry.data);
    expect(text).toContain('aws ec2 describe-availability-zones');
    expect(text).toContain('aws ec2 describe-instance-type-offerings --location-type availability-zone');
    expect(text).toContain('-c availabilityZones=');
  });

  test('fails when a zone is not one of the stack\'s region, or no zone name, or repeated, naming every problem at once', () => {
    const app = new App();
    expect(
      () =>
        new FoundationStack(app, 'SpotSweep-Foundation', {
          env: { account: '111111111111', region: 'us-east-1' },
          availabilityZones: ['us-east-1a', 'eu-west-1a', 'useast1', 'us-east-1a'],
        }),
    ).toThrow(
      /"eu-west-1a" is not an availability zone of the stack's region us-east-1[\s\S]*"useast1" is not an availability zone name[\s\S]*"us-east-1a" is listed twice/,
    );
    expect(Stack.of(new FoundationStack(new App(), 'F', { env: { region: 'us-east-1' }, availabilityZones: ['us-east-1a', 'us-east-1b'] })).region).toBe('us-east-1');
  });
});

describe('FoundationStack version output', () => {
  test('records the package.json version it was deployed from, for spot-sweep doctor to compare', () => {
    const { version } = JSON.parse(require('node:fs').readFileSync(require('node:path').join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
    const { template } = build();
    template.hasOutput('FoundationVersion', { Value: version });
  });
});
