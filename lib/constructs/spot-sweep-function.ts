import * as path from 'node:path';
import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/** Repository root: `lambda/<name>/index.ts` and package-lock.json live there. */
const REPO_ROOT = path.join(__dirname, '..', '..');
/** Makes the bundle's source map independent of where the checkout and the cloud assembly are. */
const SOURCE_MAP_PATHS = path.join(__dirname, 'source-map-paths.cjs');

/** One argument for `bash -c` (how local bundling runs command hooks), single-quoted. */
const shellQuote = (arg: string): string => `'${arg.replace(/'/g, `'\\''`)}'`;

export interface SpotSweepFunctionProps {
  /** Folder under `lambda/` whose `index.ts` exports `handler`, e.g. `budget-guard`. */
  readonly name: string;
  /** What the function does, shown in the Lambda console. */
  readonly description: string;
  /** Variables the handler reads once at cold start (`requireEnv`). */
  readonly environment: Readonly<Record<string, string>>;
  /**
   * How long one invocation may run.
   * @default Duration.minutes(1)
   */
  readonly timeout?: Duration;
  /**
   * Memory; CPU grows with it.
   * @default 256
   */
  readonly memorySize?: number;
  /**
   * How long the function's logs are kept.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Runs of the function at once; 1 makes them queue instead of overlapping (lib/constructs/scheduler.ts).
   * @default - none reserved: the account's unreserved concurrency
   */
  readonly reservedConcurrentExecutions?: number;
}

/**
 * Every spot-sweep Lambda: Node.js 24 (the newest Lambda runtime: cdk-nag AwsSolutions-L1 asks for it), arm64 (Graviton: cheaper per GB-second), bundled locally by
 * esbuild (a devDependency, so no Docker) with minification and source maps, its own log group with a
 * retention, and its own role that can write only to that log group (no AWSLambdaBasicExecutionRole,
 * whose `logs:*` on every group cdk-nag rightly flags). The AWS SDK v3 comes from the runtime.
 *
 * The bundle is the same bytes from any checkout: esbuild names each source in the source map relative
 * to the cloud assembly directory, so an afterBundling command hook rewrites them relative to the
 * repository (source-map-paths.cjs). Otherwise the asset hash, which NodejsFunction takes from the
 * bundle's output, and so the function's S3 key in the template, would change with the directory the
 * app was synthesized from (test/stable-ids.sh checks it). Command hooks run in the local bundling's
 * shell, after esbuild (the readme's "Command hooks").
 * @see https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html
 * @see https://docs.aws.amazon.com/cdk/api/v2/docs/aws-cdk-lib.aws_lambda_nodejs-readme.html
 */
export class SpotSweepFunction extends NodejsFunction {
  constructor(scope: Construct, id: string, props: SpotSweepFunctionProps) {
    if (!/^[a-z0-9-]+$/.test(props.name)) {
      throw new Error(`SpotSweepFunction name "${props.name}" is not a folder name under lambda/; use lowercase letters, digits and dashes.`);
    }
    const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      // `cdk destroy` leaves nothing behind but the bucket's results.
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const role = new iam.Role(scope, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `spot-sweep ${props.name} Lambda`,
    });
    super(scope, id, {
      entry: path.join(REPO_ROOT, 'lambda', props.name, 'index.ts'),
      handler: 'handler',
      projectRoot: REPO_ROOT,
      depsLockFilePath: path.join(REPO_ROOT, 'package-lock.json'),
      description: props.description,
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      timeout: props.timeout ?? Duration.minutes(1),
      memorySize: props.memorySize ?? 256,
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
      logGroup,
      role,
      environment: { ...props.environment, NODE_OPTIONS: '--enable-source-maps' },
      bundling: {
        minify: true,
        sourceMap: true,
        target: 'node24',
        // The Node.js runtime ships the AWS SDK v3; bundling it would only grow the package.
        externalModules: ['@aws-sdk/*'],
        commandHooks: {
          beforeBundling: () => [],
          beforeInstall: () => [],
          afterBundling: (inputDir: string, outputDir: string) => [
            [process.execPath, SOURCE_MAP_PATHS, path.join(outputDir, 'index.js.map'), inputDir].map(shellQuote).join(' '),
          ],
        },
      },
    });
    logGroup.grantWrite(role);
  }
}

/**
 * Acknowledges cdk-nag AwsSolutions-IAM5 for one wildcard resource of a role's policy. cdk-nag names
 * the finding after the resource as written in the template (`<Bucket.Arn>/sweeps/x/*`, or the export
 * name when the bucket lives in another stack), which is known only once cross-stack references are
 * resolved, so the acknowledgement is added by a validation hook, which runs after that and before
 * the policy validation plugins.
 */
export function acknowledgeWildcardResource(role: iam.IRole, resource: string, reason: string): void {
  role.node.addValidation({
    validate: () => {
      Validations.of(role).acknowledge({ id: `AwsSolutions-IAM5[Resource::${flattenCfnReference(Stack.of(role).resolve(resource))}]`, reason });
      return [];
    },
  });
}

/** The flat form cdk-nag gives a CloudFormation value in finding ids (cdk-nag src/utils/flatten-cfn-reference.ts). */
function flattenCfnReference(node: unknown): string {
  if (node === undefined) return '';
  if (typeof node === 'string') return node.replace(/\$\{/g, '<').replace(/}/g, '>');
  const o = node as Record<string, unknown>;
  if (o['Fn::Join']) {
    const [delimiter, items] = o['Fn::Join'] as [string, unknown[]];
    return items.map(flattenCfnReference).join(delimiter);
  }
  if (o['Fn::Sub']) return flattenCfnReference(o['Fn::Sub']);
  if (o['Fn::GetAtt']) {
    const [resource, attribute] = o['Fn::GetAtt'] as [unknown, unknown];
    return `<${flattenCfnReference(resource)}.${flattenCfnReference(attribute)}>`;
  }
  if (o['Fn::ImportValue']) return flattenCfnReference(o['Fn::ImportValue']);
  if (o.Ref) return `<${flattenCfnReference(o.Ref)}>`;
  return JSON.stringify(node);
}
