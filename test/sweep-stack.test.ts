import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { DLAMI_PARAMETERS } from '../lib/constructs/config-launch-template';
import { FoundationStack } from '../lib/foundation-stack';
import { SweepSpec, loadSpec, validateSpec } from '../lib/spec';
import { SweepStack } from '../lib/sweep-stack';

/** The feature flags of cdk.json, as `cdk synth` applies them. */
const CDK_CONTEXT = require('../cdk.json').context as Record<string, unknown>;
const ROOT = path.join(__dirname, '..');

type Resource = { Type: string; Properties: Record<string, any>; DependsOn?: string[] };

/** An app as bin/app.ts builds it (feature flags of cdk.json, cdk-nag registered). */
function build(spec: SweepSpec): { app: App; foundation: FoundationStack; stack: SweepStack; template: Template } {
  const app = new App({ context: CDK_CONTEXT });
  const foundation = new FoundationStack(app, 'SpotSweep-Foundation');
  const stack = new SweepStack(app, `SpotSweep-${spec.name}`, {
    spec,
    foundation,
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, foundation, stack, template: Template.fromStack(stack) };
}

/** Findings cdk-nag AwsSolutions reports that nobody acknowledged. */
function nagFindings(app: App): string[] {
  return new AwsSolutionsChecks().validateScope(app).violations.map((v) => `${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(', ')}`);
}

/** Flattens Fn::Join and Fn::Sub into a string; any other intrinsic (and `${X}` of a Sub) becomes `<ref>`. */
function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  const sub = (value as { 'Fn::Sub'?: string })['Fn::Sub'];
  if (typeof sub === 'string') return sub.replace(/\$\{[^}]+\}/g, '<ref>');
  const join = (value as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (join) return join[1].map(flatten).join(join[0]);
  return '<ref>';
}

// A local data directory with two files (uploaded at deploy) and one that does not exist (warned about).
const DATA_DIR = mkdtempSync(path.join(tmpdir(), 'spot-sweep-data-'));
mkdirSync(path.join(DATA_DIR, 'sub'));
writeFileSync(path.join(DATA_DIR, 'pairs.csv'), 'q,d\n');
writeFileSync(path.join(DATA_DIR, 'sub', 'ids.txt'), 'a\n');
afterAll(() => rmSync(DATA_DIR, { recursive: true, force: true }));

// Four configs as the issue lists them, plus spot-then-on-demand, a config mixing V100 with newer GPUs,
// and two with local data directories.
const SPEC = validateSpec({
  name: 'tt',
  budgetUsd: 40,
  data: 's3://other-data/two-tower/',
  defaults: { instanceTypes: ['g5.xlarge'], maxRuntimeHours: 6, idleMinutes: 15, volumeGb: 150 },
  configs: [
    { name: 'single', examples: 1000 },
    { name: 'multi', instanceTypes: ['g5.12xlarge', 'g6.12xlarge'], gpus: 4, maxRuntimeHours: 10 },
    { name: 'ondemand', instanceTypes: ['g6.xlarge', 'g5.xlarge'], market: 'on-demand' },
    { name: 'volta', instanceTypes: ['p3.2xlarge'], allowV100: true, maxRuntimeHours: 2.5, train: { precision: 'fp16' } },
    { name: 'fallback', instanceTypes: ['p4d.24xlarge'], market: 'spot-then-on-demand', maxRuntimeHours: 16 },
    { name: 'mixed', instanceTypes: ['p3.2xlarge', 'g5.2xlarge'], allowV100: true },
    { name: 'here', data: DATA_DIR },
    { name: 'gone', data: path.join(DATA_DIR, 'missing') },
  ],
});

describe('SweepStack', () => {
  const { app, foundation, stack, template } = build(SPEC);
  const resources = template.toJSON().Resources as Record<string, Resource>;
  const parameters = template.toJSON().Parameters as Record<string, { Type: string; Default: string }>;
  const byType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
  const group = (config: string): Resource => {
    const found = byType('AWS::AutoScaling::AutoScalingGroup').find(([, r]) => r.Properties.AutoScalingGroupName === `SpotSweep-tt-${config}`);
    if (!found) throw new Error(`no group for ${config}`);
    return found[1];
  };
  const templatesOf = (config: string): Resource[] => {
    const ids = new Set<string>(group(config).Properties.MixedInstancesPolicy.LaunchTemplate.Overrides.map((o: any) => o.LaunchTemplateSpecification.LaunchTemplateId.Ref));
    return [...ids].map((id) => resources[id]);
  };
  const amiParameterOf = (lt: Resource): string => parameters[lt.Properties.LaunchTemplateData.ImageId.Ref].Default;
  const association = (config: string): Resource => byType('AWS::SSM::Association').find(([, r]) => r.Properties.AssociationName === `SpotSweep-tt-${config}`)![1];
  const alarm = (name: string): Resource => byType('AWS::CloudWatch::Alarm').find(([, r]) => r.Properties.AlarmName === name)![1];
  const policyOf = (config: string): string => {
    const groupId = Object.entries(resources).find(([, r]) => r === group(config))![0];
    return byType('AWS::AutoScaling::ScalingPolicy').find(([, r]) => r.Properties.AutoScalingGroupName.Ref === groupId)![0];
  };

  test('the stack is named SpotSweep-<sweep>', () => {
    expect(stack.stackName).toBe('SpotSweep-tt');
  });

  test('spot configs: price-capacity-optimized, on-demand 0 %, min 0 and max 1 with no desired capacity (the restart resource starts them), no capacity rebalance', () => {
    for (const config of ['single', 'multi', 'volta', 'mixed']) {
      const p = group(config).Properties;
      expect(p.MixedInstancesPolicy.InstancesDistribution).toEqual({
        OnDemandAllocationStrategy: 'prioritized',
        OnDemandBaseCapacity: 0,
        OnDemandPercentageAboveBaseCapacity: 0,
        SpotAllocationStrategy: 'price-capacity-optimized',
      });
      expect([p.MinSize, p.MaxSize, p.DesiredCapacity]).toEqual(['0', '1', undefined]);
      expect(p.CapacityRebalance).toBe(false);
      expect(p.MetricsCollection).toEqual([{ Granularity: '1Minute', Metrics: ['GroupInServiceInstances'] }]);
    }
  });

  test('the on-demand config is 100 % on-demand, types in the spec order', () => {
    const p = group('ondemand').Properties;
    expect(p.MixedInstancesPolicy.InstancesDistribution.OnDemandPercentageAboveBaseCapacity).toBe(100);
    expect(p.MixedInstancesPolicy.LaunchTemplate.Overrides.map((o: any) => o.InstanceType)).toEqual(['g6.xlarge', 'g5.xlarge']);
    expect([p.MinSize, p.MaxSize, p.DesiredCapacity, p.CapacityRebalance]).toEqual(['0', '1', undefined, false]);
  });

  test('spot-then-on-demand starts on spot and is tagged for the guard', () => {
    const p = group('fallback').Properties;
    expect(p.MixedInstancesPolicy.InstancesDistribution.OnDemandPercentageAboveBaseCapacity).toBe(0);
    expect(p.Tags).toEqual(expect.arrayContaining([{ Key: 'spot-sweep:market', PropagateAtLaunch: true, Value: 'spot-then-on-demand' }]));
  });

  test('the multi-GPU config spreads over its types and over every public subnet', () => {
    const p = group('multi').Properties;
    expect(p.MixedInstancesPolicy.LaunchTemplate.Overrides.map((o: any) => o.InstanceType)).toEqual(['g5.12xlarge', 'g6.12xlarge']);
    expect(p.VPCZoneIdentifier).toHaveLength(foundation.vpc.publicSubnets.length);
    expect(foundation.vpc.publicSubnets.length).toBeGreaterThanOrEqual(2);
  });

  test('instances carry the sweep, config and job tags, propagated at launch', () => {
    expect(group('single').Properties.Tags).toEqual(
      expect.arrayContaining([
        { Key: 'spot-sweep:sweep', PropagateAtLaunch: true, Value: 'tt' },
        { Key: 'spot-sweep:config', PropagateAtLaunch: true, Value: 'single' },
        { Key: 'spot-sweep:job', PropagateAtLaunch: true, Value: 'tt/single' },
      ]),
    );
  });

  test('launch templates: IMDSv2 only, encrypted gp3 root volume of volumeGb, the foundation profile and security group', () => {
    for (const config of ['single', 'multi', 'ondemand', 'volta', 'fallback', 'mixed']) {
      for (const lt of templatesOf(config)) {
        const data = lt.Properties.LaunchTemplateData;
        expect(data.MetadataOptions).toEqual({ HttpEndpoint: 'enabled', HttpPutResponseHopLimit: 1, HttpTokens: 'required' });
        expect(data.BlockDeviceMappings).toEqual([
          { DeviceName: '/dev/xvda', Ebs: { DeleteOnTermination: true, Encrypted: true, VolumeSize: 150, VolumeType: 'gp3' } },
        ]);
        expect(data.IamInstanceProfile.Arn).toBeDefined();
        expect(data.SecurityGroupIds).toHaveLength(1);
        expect(data.KeyName).toBeUndefined();
      }
    }
  });

  test('the AMI comes from the DLAMI SSM parameters, the proprietary-driver one for V100', () => {
    expect(templatesOf('single').map(amiParameterOf)).toEqual([DLAMI_PARAMETERS.modern]);
    expect(templatesOf('multi').map(amiParameterOf)).toEqual([DLAMI_PARAMETERS.modern]);
    expect(templatesOf('volta').map(amiParameterOf)).toEqual([DLAMI_PARAMETERS.volta]);
    expect(templatesOf('mixed').map(amiParameterOf).sort()).toEqual([DLAMI_PARAMETERS.modern, DLAMI_PARAMETERS.volta].sort());
    for (const [, lt] of byType('AWS::EC2::LaunchTemplate')) {
      expect(parameters[lt.Properties.LaunchTemplateData.ImageId.Ref].Type).toBe('AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>');
    }
  });

  test('a config mixing V100 and newer GPUs gives each type the launch template of its AMI', () => {
    const overrides = group('mixed').Properties.MixedInstancesPolicy.LaunchTemplate.Overrides;
    const amiOf = (type: string) => amiParameterOf(resources[overrides.find((o: any) => o.InstanceType === type).LaunchTemplateSpecification.LaunchTemplateId.Ref]);
    expect(amiOf('p3.2xlarge')).toBe(DLAMI_PARAMETERS.volta);
    expect(amiOf('g5.2xlarge')).toBe(DLAMI_PARAMETERS.modern);
  });

  test('user data starts the CloudWatch agent with the group dimension and the job log files', () => {
    const userData = Buffer.from(flatten(templatesOf('single')[0].Properties.LaunchTemplateData.UserData['Fn::Base64']), 'utf8').toString();
    expect(userData).toContain('"append_dimensions":{"AutoScalingGroupName":"${aws:AutoScalingGroupName}"');
    expect(userData).toContain('"aggregation_dimensions":[["AutoScalingGroupName"]]');
    expect(userData).toContain('"file_path":"/var/log/spot-sweep/*.log"');
    expect(userData).toContain('ctl=/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl');
    expect(userData).toContain('"$ctl" -a fetch-config -m ec2 -c file:/opt/spot-sweep/cloudwatch-base.json');
  });

  test('no security group and no ingress rule in the sweep stack', () => {
    template.resourceCountIs('AWS::EC2::SecurityGroup', 0);
    template.resourceCountIs('AWS::EC2::SecurityGroupIngress', 0);
  });

  test('each association runs the train document on the config tag with its parameters', () => {
    const expected: Record<string, { wheel: string; timeout: string }> = {
      single: { wheel: 'https://download.pytorch.org/whl/cu128', timeout: '21600' },
      multi: { wheel: 'https://download.pytorch.org/whl/cu128', timeout: '36000' },
      volta: { wheel: 'https://download.pytorch.org/whl/cu126', timeout: '9000' },
      fallback: { wheel: 'https://download.pytorch.org/whl/cu128', timeout: '57600' },
      mixed: { wheel: 'https://download.pytorch.org/whl/cu126', timeout: '21600' },
    };
    for (const [config, { wheel, timeout }] of Object.entries(expected)) {
      const p = association(config).Properties;
      expect(p.Targets).toEqual([{ Key: 'tag:spot-sweep:job', Values: [`tt/${config}`] }]);
      expect(p.Parameters.WheelIndex).toEqual([wheel]);
      expect(p.Parameters.ExecutionTimeout).toEqual([timeout]);
      expect(p.Parameters.JobUri).toEqual([`ssm:/spot-sweep/tt/${config}/job`]);
      expect(flatten(p.Parameters.CodeUri[0])).toMatch(/^s3:\/\/cdk-[a-z0-9]+-assets-<ref>-<ref>\/[0-9a-f]{64}\.zip$/);
      expect(p.OutputLocation.S3Location.OutputS3KeyPrefix).toBe(`sweeps/tt/${config}/ssm/`);
      expect(p.Name).toBeDefined();
      expect(p.WaitForSuccessTimeoutSeconds).toBeUndefined();
      expect(p.ScheduleExpression).toBeUndefined();
    }
  });

  test('the idle alarm watches the group GPU utilisation and scales the group to zero', () => {
    const p = alarm('SpotSweep-tt-single-gpu-idle').Properties;
    expect(p).toMatchObject({
      Namespace: 'CWAgent',
      MetricName: 'nvidia_smi_utilization_gpu',
      Dimensions: [{ Name: 'AutoScalingGroupName', Value: 'SpotSweep-tt-single' }],
      Statistic: 'Average',
      Period: 60,
      Threshold: 5,
      ComparisonOperator: 'LessThanThreshold',
      EvaluationPeriods: 15,
      DatapointsToAlarm: 15,
      TreatMissingData: 'notBreaching',
    });
    expect(p.AlarmActions).toEqual([{ Ref: policyOf('single') }]);
  });

  test('the runtime alarm watches the guard instance-hours and scales the group to zero', () => {
    for (const [config, hours] of [['single', 6], ['volta', 2.5], ['fallback', 16]] as const) {
      const p = alarm(`SpotSweep-tt-${config}-max-runtime`).Properties;
      expect(p).toMatchObject({
        Namespace: 'SpotSweep',
        MetricName: 'InstanceHours',
        Dimensions: expect.arrayContaining([{ Name: 'Sweep', Value: 'tt' }, { Name: 'Config', Value: config }]),
        Threshold: hours,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'ignore',
      });
      expect(p.AlarmActions).toEqual([{ Ref: policyOf(config) }]);
    }
  });

  test('the scale-to-zero policy sets exact capacity 0 on either side of the threshold', () => {
    for (const config of ['single', 'ondemand']) {
      const p = resources[policyOf(config)].Properties;
      expect(p).toMatchObject({ PolicyType: 'StepScaling', AdjustmentType: 'ExactCapacity' });
      expect(p.StepAdjustments).toEqual(
        expect.arrayContaining([
          { MetricIntervalUpperBound: 0, ScalingAdjustment: 0 },
          { MetricIntervalLowerBound: 0, ScalingAdjustment: 0 },
        ]),
      );
      expect(p.StepAdjustments).toHaveLength(2);
    }
  });

  test('each config job.json is written at deploy, by CloudFormation, as an SSM parameter with the spec settings and its store', () => {
    const jobs = new Map<string, any>();
    for (const [, r] of byType('AWS::SSM::Parameter')) {
      expect(r.Properties.Tier).toBe('Intelligent-Tiering');
      jobs.set(r.Properties.Name, JSON.parse(flatten(r.Properties.Value)));
    }
    expect([...jobs.keys()].sort()).toEqual(SPEC.configs.map((c) => `/spot-sweep/tt/${c.name}/job`).sort());
    expect(byType('Custom::AWS')).toEqual([]);
    for (const c of SPEC.configs) jobs.set(`sweeps/tt/${c.name}/job.json`, jobs.get(`/spot-sweep/tt/${c.name}/job`));
    const volta = jobs.get('sweeps/tt/volta/job.json');
    expect(volta).toMatchObject({
      version: 1,
      sweep: 'tt',
      config: 'volta',
      data: 's3://other-data/two-tower/',
      store: 's3://<ref>/sweeps/tt/volta/',
      instanceTypes: ['p3.2xlarge'],
      market: 'spot',
      gpus: 1,
      maxRuntimeHours: 2.5,
      script: null,
      retries: { max: 0, onExitCodes: [] },
      encoder: null,
    });
    expect(volta.train.precision).toBe('fp16');
    expect(jobs.get('sweeps/tt/single/job.json').examples).toBe(1000);
    expect(jobs.get('sweeps/tt/multi/job.json').gpus).toBe(4);
    expect(jobs.get('sweeps/tt/here/job.json').data).toMatch(/^s3:\/\/<ref>\/datasets\/tt\/spot-sweep-data-[a-z0-9]+-[0-9a-f]{8}\/$/);
    expect(jobs.get('sweeps/tt/gone/job.json').data).toMatch(/^s3:\/\/<ref>\/datasets\/tt\/missing-[0-9a-f]{8}\/$/);
  });

  test('each group starts only after its job.json exists and the instance may read the code', () => {
    const deps = group('single').DependsOn ?? [];
    expect(deps.some((d) => d.startsWith('Jobsingle'))).toBe(true);
    expect(deps.some((d) => d.startsWith('InstanceAccess'))).toBe(true);
  });

  test('the instance role may read the code asset and the data prefix of the other bucket, nothing more', () => {
    const [, policy] = byType('AWS::IAM::ManagedPolicy').find(([id]) => id.startsWith('InstanceAccess'))!;
    expect(policy.Properties.Roles).toHaveLength(1);
    const statements = policy.Properties.PolicyDocument.Statement;
    const resourcesOf = (action: string) => statements.filter((s: any) => [s.Action].flat().includes(action)).flatMap((s: any) => [s.Resource].flat().map(flatten));
    expect(resourcesOf('s3:GetObject').sort()).toEqual(
      [expect.stringMatching(/^arn:<ref>:s3:::cdk-[a-z0-9]+-assets-<ref>-<ref>\/[0-9a-f]{64}\.zip$/), 'arn:<ref>:s3:::other-data/two-tower/*'].sort(),
    );
    const list = statements.find((s: any) => s.Action === 's3:ListBucket');
    expect(flatten(list.Resource)).toBe('arn:<ref>:s3:::other-data');
    expect(list.Condition).toEqual({ StringLike: { 's3:prefix': ['two-tower/*'] } });
  });

  test('the budget guard may launch from every launch template of the sweep and pass the instance role to EC2 (Auto Scaling checks both when the guard updates a group)', () => {
    const statements = byType('AWS::IAM::Policy')
      .filter(([id]) => id.startsWith('BudgetGuard'))
      .flatMap(([, r]) => r.Properties.PolicyDocument.Statement);
    const run = statements.find((st: any) => st.Action === 'ec2:RunInstances');
    const templateRefs = run.Condition.ArnLike['ec2:LaunchTemplate'].map((arn: any) => arn['Fn::Join'][1].find((part: any) => part.Ref && !part.Ref.startsWith('AWS::')).Ref);
    expect(templateRefs.sort()).toEqual(byType('AWS::EC2::LaunchTemplate').map(([id]) => id).sort());
    const pass = statements.find((st: any) => st.Action === 'iam:PassRole');
    expect(pass.Resource).toEqual({ 'Fn::ImportValue': expect.stringMatching(/InstanceRole.*Arn/) });
    expect(pass.Condition).toEqual({ StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } });
  });

  test('no IAM statement allows every action', () => {
    for (const [, r] of byType('AWS::IAM::Policy')) {
      for (const s of r.Properties.PolicyDocument.Statement) {
        for (const a of [s.Action].flat()) expect(a === '*' || /^[a-z0-9-]+:\*$/.test(a)).toBe(false);
      }
    }
  });

  test('a dashboard shows GPU, memory, instances in service, spend against the budget and alarms (and no metric nothing publishes)', () => {
    const [, dashboard] = byType('AWS::CloudWatch::Dashboard')[0];
    expect(dashboard.Properties.DashboardName).toBe('SpotSweep-tt');
    const body = flatten(dashboard.Properties.DashboardBody);
    for (const needle of ['nvidia_smi_utilization_gpu', '"mem_used_percent"', '"GroupInServiceInstances"', '"SpendUsd"', '"value":40', '"alarms"']) {
      expect(body).toContain(needle);
    }
    for (const unpublished of ['"Progress"', '"ExamplesPerSecond"', '"TrainLoss"']) expect(body).not.toContain(unpublished);
  });

  test('the budget guard watches every group and the results collector every config', () => {
    expect(stack.budgetGuard.alarms.map((a) => a.config)).toEqual(stack.fleets.map((f) => f.groupName.replace('SpotSweep-tt-', '')));
    expect(stack.results).toBeDefined();
    template.resourceCountIs('AWS::Events::Rule', 2);
  });

  test('an existing directory is uploaded to datasets/<sweep>/ at deploy, its role writing exactly those files', () => {
    template.resourceCountIs('Custom::CDKBucketDeployment', 1);
    template.hasResourceProperties('Custom::CDKBucketDeployment', { DestinationBucketKeyPrefix: Match.stringLikeRegexp('^datasets/tt/spot-sweep-data-[a-z0-9-]+/$'), Prune: false, RetainOnDelete: true });
    const put = Object.values(template.findResources('AWS::IAM::Policy'))
      .flatMap((p) => p.Properties.PolicyDocument.Statement)
      .find((s: any) => s.Action === 's3:PutObject' && [s.Resource].flat().length === 2);
    expect([put.Resource].flat().map(flatten).map((r: string) => r.replace(/^.*\/datasets\/tt\/[^/]+\//, ''))).toEqual(['pairs.csv', 'sub/ids.txt']);
  });

  test('a missing directory is not uploaded: a warning names it and the S3 prefix the job reads', () => {
    const warnings = Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('config "gone": data directory .* does not exist'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0].entry.data).toMatch(/the job reads s3:\/\/.*\/datasets\/tt\/missing-[0-9a-f]{8}\//);
  });

  test('cdk-nag AwsSolutions reports no unacknowledged finding', () => {
    expect(nagFindings(app)).toEqual([]);
  });

  test('cdk destroy removes everything the sweep stack made (nothing retained; the job copies and results stay in the bucket)', () => {
    for (const [id, r] of Object.entries(resources) as [string, Resource & { DeletionPolicy?: string }][]) {
      expect(`${id}: ${r.DeletionPolicy ?? 'Delete'}`).toBe(`${id}: Delete`);
    }
  });

  test('the foundation template is not changed by the sweep (no grant added to it)', () => {
    const foundationPolicies = Object.values(Template.fromStack(foundation).findResources('AWS::IAM::Policy'));
    for (const p of foundationPolicies) expect(JSON.stringify(p)).not.toContain('other-data');
  });
});

describe('several sweeps on one foundation: IAM quotas of the shared instance role', () => {
  /**
   * Every inline policy on the foundation's instance role, across the app's stacks, every customer managed
   * policy attached to it, and the AWS managed policies of the role itself.
   */
  function instanceRolePolicies(app: App): { inline: Resource[]; managed: Resource[]; awsManaged: number } {
    const inline: Resource[] = [];
    const managed: Resource[] = [];
    let awsManaged = 0;
    for (const stack of app.node.children.filter((c): c is FoundationStack | SweepStack => c instanceof FoundationStack || c instanceof SweepStack)) {
      for (const r of Object.values(Template.fromStack(stack).toJSON().Resources as Record<string, Resource>)) {
        if (r.Type === 'AWS::IAM::Role' && r.Properties.AssumeRolePolicyDocument.Statement[0].Principal.Service === 'ec2.amazonaws.com') awsManaged = r.Properties.ManagedPolicyArns.length;
        if (!/InstanceRole/.test(JSON.stringify(r.Properties?.Roles ?? []))) continue;
        if (r.Type === 'AWS::IAM::Policy') inline.push(r);
        if (r.Type === 'AWS::IAM::ManagedPolicy') managed.push(r);
      }
    }
    return { inline, managed, awsManaged };
  }
  /** A document's size as IAM counts it (no white space), every reference taken as 64 characters (the longest name). */
  const worstCaseLength = (document: unknown): number => JSON.stringify(document, (_key, v) => (v && typeof v === 'object' && !Array.isArray(v) && ('Ref' in v || 'Fn::ImportValue' in v || 'Fn::GetAtt' in v) ? 'x'.repeat(64) : v)).length;
  const seedPlan = loadSpec(path.join(ROOT, 'sweeps', 'seed-plan.json'));
  function appWith(sweeps: number): App {
    const app = new App({ context: CDK_CONTEXT });
    const foundation = new FoundationStack(app, 'SpotSweep-Foundation');
    for (let i = 1; i <= sweeps; i++) {
      const spec = { ...seedPlan, name: `seed-plan-${i}` };
      new SweepStack(app, `SpotSweep-${spec.name}`, { spec, foundation });
    }
    return app;
  }

  test('seven sweeps deploy side by side: each brings its own managed policy under 6,144 characters, and no inline policy on the role grows with them', () => {
    const one = instanceRolePolicies(appWith(1));
    const seven = instanceRolePolicies(appWith(7));
    // IAM: a role's inline policies hold 10,240 characters together; a managed policy 6,144; 10 managed policies per role by default.
    expect(seven.inline.map((r) => JSON.stringify(r.Properties.PolicyDocument))).toEqual(one.inline.map((r) => JSON.stringify(r.Properties.PolicyDocument)));
    expect(seven.inline.reduce((sum, r) => sum + worstCaseLength(r.Properties.PolicyDocument), 0)).toBeLessThan(10240);
    expect(seven.managed).toHaveLength(7);
    for (const policy of seven.managed) {
      expect(policy.Properties.Roles).toHaveLength(1);
      expect(worstCaseLength(policy.Properties.PolicyDocument)).toBeLessThan(6144);
    }
    // The role's two AWS managed policies plus one per sweep: 8 sweeps fit the default quota of 10 (README).
    expect(seven.awsManaged).toBe(2);
    expect(seven.awsManaged + seven.managed.length).toBeLessThanOrEqual(10);
  });

  test('fails at synth, naming the size and the fix, when one sweep needs more than a managed policy holds', () => {
    // 16 configs, each reading a data prefix in a bucket of its own with long names: two statements each.
    const long = 'x'.repeat(40);
    const spec = validateSpec({
      name: 'wide',
      budgetUsd: 10,
      defaults: { instanceTypes: ['g5.xlarge'] },
      configs: Array.from({ length: 16 }, (_, i) => ({ name: `c${i}`, data: `s3://data-${i}-${long}/${long}/${long}/` })),
    });
    const app = new App({ context: CDK_CONTEXT });
    const foundation = new FoundationStack(app, 'SpotSweep-Foundation');
    const stack = new SweepStack(app, 'SpotSweep-wide', { spec, foundation });
    expect(() => Template.fromStack(stack)).toThrow(/sweep "wide": the instances' IAM policy would hold up to [\d,]+ characters, over IAM's 6,144 for a managed policy \(16 configs.*Split the sweep into two specs/);
  });
});

describe('stable ids: a spec synthesizes the same from any directory', () => {
  /** The spec at <dir>/specs/s.json reads the data directory <dir>/data (two files). */
  function specIn(dir: string): SweepSpec {
    mkdirSync(path.join(dir, 'specs'), { recursive: true });
    mkdirSync(path.join(dir, 'data'), { recursive: true });
    writeFileSync(path.join(dir, 'data', 'pairs.csv'), 'q,d\n');
    writeFileSync(path.join(dir, 'data', 'ids.txt'), 'a\n');
    const file = path.join(dir, 'specs', 's.json');
    writeFileSync(file, JSON.stringify({ name: 'moved', budgetUsd: 5, data: '../data', configs: [{ name: 'a' }] }));
    return loadSpec(file);
  }

  test('the uploaded data set prefix, the job.json and the construct ids do not depend on where the checkout is', () => {
    const near = mkdtempSync(path.join(tmpdir(), 'spot-sweep-near-'));
    const far = mkdtempSync(path.join(tmpdir(), 'spot-sweep-far-'));
    const deep = path.join(far, 'x', 'y', 'z');
    try {
      const [a, b] = [near, deep].map((d) => build(specIn(d)).template.toJSON() as { Resources: Record<string, Resource> });
      expect(Object.keys(b.Resources).sort()).toEqual(Object.keys(a.Resources).sort());
      const job = (t: typeof a) => flatten(Object.values(t.Resources).find((r) => r.Type === 'AWS::SSM::Parameter')!.Properties.Value);
      expect(job(a)).toMatch(/"data":"s3:\/\/<ref>\/datasets\/moved\/data-[0-9a-f]{8}\/"/);
      expect(job(b)).toBe(job(a));
      const prefix = (t: typeof a) => Object.values(t.Resources).find((r) => r.Type === 'Custom::CDKBucketDeployment')!.Properties.DestinationBucketKeyPrefix;
      expect(prefix(b)).toBe(prefix(a));
    } finally {
      for (const d of [near, far]) rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('example specs', () => {
  test.each(['seed-plan', 'demo', 'own-script'])('sweeps/%s.json synthesizes nag-clean, one group per config', (name) => {
    const spec = loadSpec(path.join(ROOT, 'sweeps', `${name}.json`));
    const { app, template } = build(spec);
    template.resourceCountIs('AWS::AutoScaling::AutoScalingGroup', spec.configs.length);
    template.resourceCountIs('AWS::SSM::Association', spec.configs.length);
    expect(nagFindings(app)).toEqual([]);
    // No config opts in to V100, so the stack does not depend on the Amazon Linux 2 AMI parameter resolving.
    const parameters = Object.values(template.toJSON().Parameters ?? {}) as { Default?: string }[];
    expect(parameters.map((p) => p.Default)).not.toContain(DLAMI_PARAMETERS.volta);
    expect(parameters.map((p) => p.Default)).toContain(DLAMI_PARAMETERS.modern);
  });

  test('sweeps/own-script.json: the local code directory becomes an asset the job reads, and its job has no data', () => {
    const spec = loadSpec(path.join(ROOT, 'sweeps', 'own-script.json'));
    const { template } = build(spec);
    const job = Object.values(template.findResources('AWS::SSM::Parameter')).find((p) => JSON.stringify(p).includes('own-script'));
    const text = JSON.stringify(job);
    expect(text).toContain('\\"data\\":null');
    expect(text).toMatch(/\.zip/);
  });

  test('fails when the spec has no configs', () => {
    const app = new App();
    const foundation = new FoundationStack(app, 'F');
    const spec = { ...validateSpec({ name: 'x', budgetUsd: 1, data: 's3://data-bucket/x/', configs: [{ name: 'a' }] }), configs: [] };
    expect(
      () =>
        new SweepStack(app, 'S', {
          spec,
          foundation,
        }),
    ).toThrow(/sweep "x" has no configs/);
  });
});
