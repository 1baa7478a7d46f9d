import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { Annotations, Aws, CfnOutput, RemovalPolicy, Stack, StackProps, Validations } from 'aws-cdk-lib';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { BudgetGuard } from './constructs/budget-guard';
import { ConfigFleet } from './constructs/config-fleet';
import { ConfigRestart } from './constructs/config-restart';
import { MANAGED_POLICY_MAX_CHARS, worstCasePolicyLength } from './constructs/iam-policy-size';
import { ResultsCollector } from './constructs/results-collector';
import { Scheduler } from './constructs/scheduler';
import { SweepDashboard } from './constructs/sweep-dashboard';
import { jobParameterName, jobUri, storeKeys, sweepStackName } from './contract';
import { SweepFoundation } from './foundation-stack';
import { ResolvedConfig, SweepSpec, renderJob, storePrefix } from './spec';

/** The Python side the instances run: `training/` zipped, without tests, caches or virtual environments. */
export const TRAINING_DIR = path.join(__dirname, '..', 'training');
export const TRAINING_EXCLUDE = ['tests', '**/__pycache__', '.venv', '**/*.pyc', '.pytest_cache', '.ruff_cache'];

export interface SweepStackProps extends StackProps {
  /** The validated sweep spec. */
  readonly spec: SweepSpec;
  /**
   * What the foundation provides: the artifact bucket (job copies, results, checkpoints), the network,
   * the instance role (this stack attaches a policy for the code asset, the job parameters and other
   * data buckets) and profile, and the train document. A {@link FoundationStack} is one.
   */
  readonly foundation: SweepFoundation;
  /**
   * SSM parameter with the AMI id for every config (`-c amiParameter=...`), e.g. a stand-in for an
   * emulator that refuses `/aws/` parameters.
   * @default - the Deep Learning AMI parameter matching each instance type's GPU
   */
  readonly amiParameterName?: string;
}

/**
 * One sweep: `SpotSweep-<name>`. The training code as an asset, each config's job.json as an SSM
 * parameter, one {@link ConfigFleet} per config, the budget guard, the results collector and a
 * dashboard. Nothing here keeps running after `cdk destroy`: the groups (and their instances), alarms,
 * policies, parameters and associations go with the stack; the job copies and results stay in the
 * foundation bucket.
 */
export class SweepStack extends Stack {
  public readonly fleets: readonly ConfigFleet[];
  public readonly dashboard: SweepDashboard;
  public readonly budgetGuard: BudgetGuard;
  public readonly results: ResultsCollector;
  /** Starts each config on its first deploy and on every deploy that changes its job.json. */
  public readonly restart: ConfigRestart;
  /** Starts pending configs while fewer than the spec's maxParallel hold an instance; only with maxParallel. */
  public readonly scheduler?: Scheduler;
  private readonly deployLogs: logs.LogGroup;
  private readonly dataRoles: iam.Role[] = [];
  /** `s3://` URI of the zipped training code, as the association passes it (CodeUri). */
  public readonly codeUri: string;

  constructor(scope: Construct, id: string, props: SweepStackProps) {
    const { spec, foundation, amiParameterName, ...stackProps } = props;
    super(scope, id, {
      stackName: sweepStackName(spec.name),
      description: `spot-sweep sweep "${spec.name}": ${spec.configs.length} config(s), budget USD ${spec.budgetUsd}`,
      ...stackProps,
    });
    if (spec.configs.length === 0) {
      throw new Error(`sweep "${spec.name}" has no configs; add at least one to "configs" in the spec.`);
    }

    // Read by the train document on every instance (aws s3 cp CodeUri); the asset is a zip file.
    const code = new s3assets.Asset(this, 'TrainingCode', { path: TRAINING_DIR, exclude: TRAINING_EXCLUDE });
    this.codeUri = code.s3ObjectUrl;
    const instanceReads: iam.PolicyStatement[] = [
      new iam.PolicyStatement({ sid: 'ReadTrainingCode', actions: ['s3:GetObject'], resources: [code.bucket.arnForObjects(code.s3ObjectKey)] }),
    ];

    const root = `s3://${foundation.bucket.bucketName}`;
    const dataUploads = new Map<string, string>();
    const external: { bucket: string; prefix: string }[] = [];
    // Logs of the deploy-time functions below; removed with the stack (their default log group is kept).
    this.deployLogs = new logs.LogGroup(this, 'DeployLogs', { retention: logs.RetentionDays.ONE_WEEK, removalPolicy: RemovalPolicy.DESTROY });
    const jobParameters: ssm.StringParameter[] = [];
    for (const config of spec.configs) {
      const data = config.data === null ? null : this.dataLocation(spec, config, config.data, root, dataUploads, external);
      const scriptCode = this.scriptCodeLocation(config, instanceReads, external);
      const encoder = this.encoderLocation(spec, config, root, dataUploads, external);
      const job = renderJob(spec, config.name, { store: storePrefix(root, spec.name, config.name), data, code: scriptCode, encoder });
      jobParameters.push(this.jobParameter(spec.name, config.name, job));
    }
    instanceReads.push(
      new iam.PolicyStatement({ sid: 'ReadJobParameters', actions: ['ssm:GetParameter'], resources: jobParameters.map((p) => p.parameterArn) }),
    );
    const uploads = [...dataUploads].map(([dir, prefix]) => this.dataUpload(foundation.bucket, dir, prefix));

    // Data sets (and script bundles) in other buckets: read-only, limited to the prefix the spec names.
    for (const { bucket, prefix } of dedupe(external)) {
      const bucketArn = `arn:${Aws.PARTITION}:s3:::${bucket}`;
      instanceReads.push(
        new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [`${bucketArn}/${prefix}*`] }),
        new iam.PolicyStatement({
          actions: ['s3:ListBucket'],
          resources: [bucketArn],
          ...(prefix ? { conditions: { StringLike: { 's3:prefix': [`${prefix}*`] } } } : {}),
        }),
      );
    }
    // A customer managed policy of the sweep's own, attached to the shared instance role: inline policies (an
    // iam.Policy) would all count against the role's one quota, "Role policy size cannot exceed 10,240
    // characters" in total, which a handful of sweeps deployed side by side overrun (about seven the size of the
    // seed plan). A managed policy holds at most 6,144 characters (checked below) and a role takes 10 of them by
    // default (20 on request), two of which are AWS's (InstanceRole): 8 sweeps at a time (README "IAM, and how
    // many sweeps at once").
    // A new construct id: CloudFormation cannot change the type of an existing resource (the inline policy).
    // @see https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html
    // @see https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_managed-vs-inline.html
    const instanceAccess = new iam.ManagedPolicy(this, 'InstanceAccessPolicy', {
      description: `spot-sweep ${spec.name}: the instances read the training code, the job parameters and the sweep's data`,
      roles: [foundation.instanceRole],
      statements: instanceReads,
    });
    this.node.addValidation({ validate: () => this.checkInstanceAccessSize(spec, instanceAccess) });

    this.fleets = spec.configs.map(
      (config) =>
        new ConfigFleet(this, `Config-${config.name}`, {
          sweepName: spec.name,
          config,
          vpc: foundation.vpc,
          subnets: foundation.subnets,
          securityGroup: foundation.securityGroup,
          instanceProfile: foundation.instanceProfile,
          trainDocument: foundation.trainDocument,
          bucket: foundation.bucket,
          jobUri: jobUri(spec.name, config.name),
          codeUri: this.codeUri,
          amiParameterName: props.amiParameterName,
        }),
    );
    this.fleets.forEach((fleet, i) => {
      // An instance must find its job.json and data, and be allowed to read the code, before the group starts it.
      fleet.group.node.addDependency(jobParameters[i], ...uploads, instanceAccess);
    });
    // The groups are created empty; this starts each config once its group and association exist, and again
    // whenever a deploy changes its job.json (never on a redeploy that leaves it as it was).
    this.restart = new ConfigRestart(this, 'Restart', {
      sweepName: spec.name,
      bucket: foundation.bucket,
      configs: this.fleets.map((fleet, i) => ({ config: spec.configs[i].name, fleet, job: jobParameters[i] })),
      maxParallel: typeof spec.maxParallel === 'number' ? spec.maxParallel : undefined,
    });
    if (typeof spec.maxParallel === 'number') {
      this.scheduler = new Scheduler(this, 'Scheduler', {
        sweepName: spec.name,
        configs: spec.configs.map((c, i) => ({ config: c.name, job: jobParameters[i] })),
        maxParallel: spec.maxParallel,
        bucket: foundation.bucket,
      });
      // The rules, the scheduler's only triggers, come after every restart resource, and so after every group's
      // association and job parameter: an instance started before its association exists would boot and run nothing.
      const restarts = [...this.restart.resources.values()];
      this.scheduler.tick.node.addDependency(...restarts);
      this.scheduler.terminated.node.addDependency(...restarts);
    }

    // Spend so far (spend.json and a metric); at the budget a stop request per job, then every group to zero.
    this.budgetGuard = new BudgetGuard(this, 'BudgetGuard', {
      sweepName: spec.name,
      budgetUsd: spec.budgetUsd,
      bucket: foundation.bucket,
      instanceRole: foundation.instanceRole,
      groups: this.fleets.map((f, i) => ({
        config: spec.configs[i].name,
        groupName: f.groupName,
        market: f.market,
        instanceTypes: f.instanceTypes,
        launchTemplates: [...f.launchTemplates.values()],
        // The budget and guard-silent alarms scale the group to zero through the fleet's own policy, without the guard.
        stopAction: new cwActions.AutoScalingAction(f.scaleToZero),
      })),
    });
    // leaderboard.json and report.html, rebuilt on every new results.json of the sweep.
    this.results = new ResultsCollector(this, 'Results', { sweepName: spec.name, bucket: foundation.bucket, configs: spec.configs.map((c) => c.name), baseline: spec.baseline });

    this.dashboard = new SweepDashboard(this, 'Dashboard', {
      sweepName: spec.name,
      budgetUsd: spec.budgetUsd,
      configs: this.fleets.map((f, i) => {
        const guard = this.budgetGuard.alarms[i];
        return { config: spec.configs[i].name, groupName: f.groupName, alarms: [f.idleAlarm, f.runtimeAlarm, guard.budget, guard.guardSilent] };
      }),
      spendMetric: this.budgetGuard.spendMetric,
    });

    new CfnOutput(this, 'DashboardName', { value: this.dashboard.dashboardName });
    new CfnOutput(this, 'CodeUri', { value: this.codeUri });
    new CfnOutput(this, 'GroupNames', { value: this.fleets.map((f) => f.groupName).join(',') });

    this.acknowledgeFindings(instanceAccess, external);
  }

  /**
   * Where the instance reads the config's data: an `s3://` URI as given (in another bucket: granted
   * below), or a local directory uploaded at deploy to `datasets/<sweep>/<dir>-<hash>/` of the artifact
   * bucket (which the instance role reads already). Large data sets belong in S3 beforehand: the upload
   * goes through a Lambda function with limited disk.
   *
   * The hash (and so the prefix in job.json and the upload's construct ids) is of the directory as the
   * spec names it, relative to the spec file's directory, never of the absolute path: the same spec
   * deployed from another clone or another machine must not replace the upload or change job.json.
   */
  private dataLocation(
    spec: SweepSpec,
    config: ResolvedConfig,
    dataDir: string,
    root: string,
    uploads: Map<string, string>,
    external: { bucket: string; prefix: string }[],
    what: 'data' | 'encoder' = 'data',
  ): string {
    if (dataDir.startsWith('s3://')) {
      external.push(splitS3Uri(dataDir));
      return dataDir;
    }
    let prefix = uploads.get(dataDir);
    if (prefix === undefined) {
      const fromSpec = specRelative(spec, dataDir);
      // The slug's readable part is the last named folder of the spec-relative path (`.` and `..` name a
      // directory of the checkout, which differs between clones).
      const named = fromSpec.split(/[\\/]/).filter((p) => p !== '' && p !== '.' && p !== '..').pop() ?? '';
      const slug = `${named.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '') || 'data'}-${createHash('sha256').update(fromSpec).digest('hex').slice(0, 8)}`;
      prefix = `${storeKeys.datasets(spec.name)}${slug}/`;
      if (existsSync(dataDir)) {
        uploads.set(dataDir, prefix);
      } else {
        Annotations.of(this).addWarningV2(
          what === 'data' ? 'spot-sweep:localDataMissing' : 'spot-sweep:localEncoderMissing',
          `config "${config.name}": ${what} directory ${dataDir} does not exist, so nothing is uploaded; the job reads ${root}/${prefix}. ` +
            `Create the directory before deploying, upload it there yourself, or point "${what}" at an s3:// URI.`,
        );
      }
    }
    return `${root}/${prefix}`;
  }

  /**
   * The config's `encoder` as the instance reads it: a local model directory is uploaded beside the data sets
   * (datasets/<sweep>/<slug>/, as a local data directory is), an s3:// one in another bucket is granted read-only,
   * and a hub name is passed as it is.
   */
  private encoderLocation(
    spec: SweepSpec,
    config: ResolvedConfig,
    root: string,
    uploads: Map<string, string>,
    external: { bucket: string; prefix: string }[],
  ): string | undefined {
    const encoder = config.encoder;
    if (encoder === null) return undefined;
    if (encoder.startsWith('s3://')) {
      external.push(splitS3Uri(encoder));
      return encoder;
    }
    return path.isAbsolute(encoder) ? this.dataLocation(spec, config, encoder, root, uploads, external, 'encoder') : encoder;
  }

  /** Script mode: a local code directory becomes a zip asset the instance may read; an s3:// zip is granted. */
  private scriptCodeLocation(config: ResolvedConfig, reads: iam.PolicyStatement[], external: { bucket: string; prefix: string }[]): string | undefined {
    if (!config.script) return undefined;
    const codeDir = config.script.codeDir;
    if (codeDir.startsWith('s3://')) {
      external.push(splitS3Uri(codeDir));
      return codeDir;
    }
    if (!existsSync(codeDir)) {
      throw new Error(`config "${config.name}": script.codeDir ${codeDir} does not exist; point it at your code directory (relative to the spec file) or at an s3:// .zip.`);
    }
    const asset = new s3assets.Asset(this, `ScriptCode-${config.name}`, { path: codeDir });
    reads.push(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [asset.bucket.arnForObjects(asset.s3ObjectKey)] }));
    return asset.s3ObjectUrl;
  }

  /**
   * One config's job.json, as an SSM parameter (lib/contract `jobParameterName`) that CloudFormation
   * itself writes (the bucket name in it resolved at deploy): no deploy-time Lambda, so it deploys
   * wherever CloudFormation does. The job runner reads it from there and keeps a copy in the store
   * (`sweeps/<sweep>/<config>/job.json`). Intelligent tiering keeps it a free standard parameter up to
   * 4 KB and moves a larger job (long script patches) to the advanced tier (8 KB).
   * @see https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html
   */
  private jobParameter(sweep: string, config: string, job: object): ssm.StringParameter {
    return new ssm.StringParameter(this, `Job-${config}`, {
      parameterName: jobParameterName(sweep, config),
      description: `spot-sweep job.json of config ${config} of sweep ${sweep}`,
      stringValue: this.toJsonString(job),
      tier: ssm.ParameterTier.INTELLIGENT_TIERING,
    });
  }

  /**
   * Uploads a local data directory at deploy (BucketDeployment, no Docker needed). Its role may read the
   * staged asset and write exactly the files found at synth, under the prefix; prune off, kept on destroy.
   */
  private dataUpload(bucket: s3.IBucket, dir: string, prefix: string): s3deploy.BucketDeployment {
    const files = listFiles(dir);
    if (files.length === 0 || files.length > MAX_UPLOADED_DATA_FILES) {
      throw new Error(
        `data directory ${dir} holds ${files.length} files; a local data set is uploaded at deploy only with 1 to ${MAX_UPLOADED_DATA_FILES} files. ` +
          `Upload it yourself (aws s3 sync ${dir} s3://<bucket>/${prefix}) and put that s3:// URI in the spec's "data".`,
      );
    }
    const role = new iam.Role(this, `DataUploadRole${prefix.split('/').at(-2)}`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSLambdaBasicExecutionRole')],
    });
    this.dataRoles.push(role);
    const asset = new s3assets.Asset(this, `DataAsset${prefix.split('/').at(-2)}`, { path: dir });
    const deployment = new s3deploy.BucketDeployment(this, `Data${prefix.split('/').at(-2)}`, {
      sources: [s3deploy.Source.bucket(asset.bucket, asset.s3ObjectKey)],
      destinationBucket: bucket,
      destinationKeyPrefix: prefix,
      prune: false,
      retainOnDelete: true,
      logGroup: this.deployLogs,
      // The deployment grants itself read/write on the whole bucket; an immutable role drops that grant,
      // and the policy below allows only what the upload does.
      role: role.withoutPolicyUpdates(),
    });
    role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [asset.bucket.arnForObjects(asset.s3ObjectKey)] }));
    role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucket.bucketArn] }));
    role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: files.map((f) => bucket.arnForObjects(`${prefix}${f}`)) }));
    return deployment;
  }

  /**
   * A sweep's instance policy must fit IAM's 6,144 characters once deployed (checked for the longest account,
   * region and partition); it grows with every config (its job parameter) and every script bundle or data
   * prefix in another bucket. Returns the problem for synth to report, or nothing.
   */
  private checkInstanceAccessSize(spec: SweepSpec, policy: iam.ManagedPolicy): string[] {
    const length = worstCasePolicyLength(this, policy.document);
    if (length <= MANAGED_POLICY_MAX_CHARS) return [];
    return [
      `sweep "${spec.name}": the instances' IAM policy would hold up to ${length.toLocaleString('en-US')} characters, over IAM's ` +
        `${MANAGED_POLICY_MAX_CHARS.toLocaleString('en-US')} for a managed policy (${spec.configs.length} configs, each adding its job parameter, ` +
        'plus script bundles and data prefixes in other buckets). Split the sweep into two specs, or keep data and script bundles under fewer S3 prefixes.',
    ];
  }

  /** cdk-nag findings that are intended, each with its reason. */
  private acknowledgeFindings(instanceAccess: iam.ManagedPolicy, external: { bucket: string; prefix: string }[]): void {
    for (const { bucket, prefix } of dedupe(external)) {
      Validations.of(instanceAccess).acknowledge({
        id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::${bucket}/${prefix}*]`,
        reason: `The spec reads its data from s3://${bucket}/${prefix}; the job lists and downloads every object under that prefix (read-only).`,
      });
    }
    // The deploy-time function CDK provides for local data sets (BucketDeployment).
    const helpers = this.node.children.filter((c) => c.node.id.startsWith('Custom::CDKBucketDeployment'));
    for (const helper of [...helpers, ...this.dataRoles]) {
      Validations.of(helper).acknowledge({
        id: 'AwsSolutions-L1',
        reason: 'A CDK-provided deploy-time function (BucketDeployment of a local data set) on the runtime its library pins; it runs only while CloudFormation deploys.',
      });
      Validations.of(helper).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        reason: 'The deploy-time function only writes its own logs with it; AWSLambdaBasicExecutionRole is the AWS-maintained minimum for that.',
      });
    }
  }
}

/**
 * A local data set is uploaded at deploy only when it is this small in files: the upload role lists every
 * file's key (an IAM policy holds at most 10,240 characters inline).
 * @see https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html
 */
export const MAX_UPLOADED_DATA_FILES = 40;

/** Every file under dir, as paths relative to it with `/` separators. */
function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join('/'))
    .sort();
}

/**
 * A local path as the spec names it: relative to the spec file's directory (to the working directory for
 * a spec validated from memory, which resolved its paths against that), with `/` separators.
 */
function specRelative(spec: SweepSpec, localPath: string): string {
  const base = spec.specFile ? path.dirname(spec.specFile) : process.cwd();
  return path.relative(base, localPath).split(path.sep).join('/') || '.';
}

/** `s3://bucket/a/b/` -> { bucket, prefix: 'a/b/' } (prefix '' for a whole bucket). */
function splitS3Uri(uri: string): { bucket: string; prefix: string } {
  const rest = uri.slice('s3://'.length);
  const slash = rest.indexOf('/');
  return slash < 0 ? { bucket: rest, prefix: '' } : { bucket: rest.slice(0, slash), prefix: rest.slice(slash + 1) };
}

function dedupe(items: { bucket: string; prefix: string }[]): { bucket: string; prefix: string }[] {
  return [...new Map(items.map((i) => [`${i.bucket}/${i.prefix}`, i])).values()];
}
