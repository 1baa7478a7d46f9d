#!/usr/bin/env node
import { App, Tags, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { readAppContext } from '../lib/app-context';
import { EXIT_CODES } from '../lib/contract';
import { FOUNDATION_STACK, GITHUB_OIDC_STACK, sweepStackName, TAGS } from '../lib/contract';
import { FoundationStack } from '../lib/foundation-stack';
import { checkSubjectPrefix, GitHubOidcStack, SUBJECT_PREFIX_CONTEXT } from '../lib/github-oidc-stack';
import { SpecError, SweepSpec, loadSpec } from '../lib/spec';
import { SweepStack } from '../lib/sweep-stack';

/**
 * The CDK app: `npx cdk synth|deploy|destroy [-c sweep=sweeps/x.json] [-c destroyData=true]
 * [-c vpcId=... -c subnetIds=... -c availabilityZones=...] [-c availabilityZones=... (the new VPC's zones)]
 * [-c amiParameter=/ssm/name]`.
 *
 * Stacks are environment-agnostic (no account or region at synth), so synth needs no credentials
 * and makes no context lookups; `cdk deploy` deploys to the CLI's account and region.
 */
const app = new App();

// Validate every input before building anything: a user error prints a message, not a stack trace.
const { context, problems } = readAppContext((key) => app.node.tryGetContext(key));
if (problems.length > 0) {
  console.error(`spot-sweep: ${problems.length === 1 ? '1 problem' : `${problems.length} problems`} in the -c context values:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  process.exit(EXIT_CODES.cli.specError);
}
let spec: SweepSpec | undefined;
if (context.sweep !== undefined) {
  try {
    spec = loadSpec(context.sweep);
  } catch (err) {
    if (!(err instanceof SpecError)) throw err;
    console.error(err.message);
    process.exit(EXIT_CODES.cli.specError);
  }
}
const foundation = new FoundationStack(app, FOUNDATION_STACK, {
  destroyData: context.destroyData,
  existingVpc: context.existingVpc,
  availabilityZones: context.availabilityZones,
});

if (spec !== undefined) {
  new SweepStack(app, sweepStackName(spec.name), { spec, foundation, amiParameterName: context.amiParameter });
}

// `-c githubSubjectPrefix=repo:OWNER/REPO [-c githubOidcProviderArn=arn:...]`: the GitHub OIDC provider and the
// roles GitHub Actions runs cdk diff / cdk deploy with (README "CI deployments"). The prefix is taken verbatim
// from GitHub, never built from owner and repository names (lib/github-oidc-stack.ts says why).
if (app.node.tryGetContext('github') !== undefined) {
  console.error(
    `spot-sweep: -c github=OWNER/REPO is replaced by -c ${SUBJECT_PREFIX_CONTEXT}=<the repository's OIDC subject prefix as GitHub reports it>, ` +
      'e.g. repo:octo-org/spot-sweep or repo:octo-org@123456/spot-sweep@789012; README "CI deployments" shows how to read it.',
  );
  process.exit(EXIT_CODES.cli.specError);
}
const subjectPrefix: unknown = app.node.tryGetContext(SUBJECT_PREFIX_CONTEXT);
if (subjectPrefix !== undefined) {
  const problem = checkSubjectPrefix(subjectPrefix);
  if (problem !== undefined) {
    console.error(`spot-sweep: ${problem}`);
    process.exit(EXIT_CODES.cli.specError);
  }
  const providerArn: unknown = app.node.tryGetContext('githubOidcProviderArn');
  new GitHubOidcStack(app, GITHUB_OIDC_STACK, { subjectPrefix: subjectPrefix as string, existingProviderArn: typeof providerArn === 'string' ? providerArn : undefined });
}

// Left untagged: cfn-lint's resource schemas have no Tags on associations and dashboards (CDK's do),
// and the moto emulator the deploy smoke test uses fails on an SSM parameter's Tags map (it expects a
// list); the job parameters are found by their name, lib/contract `jobParameterName`.
Tags.of(app).add(TAGS.project, 'spot-sweep', {
  excludeResourceTypes: ['AWS::SSM::Association', 'AWS::CloudWatch::Dashboard', 'AWS::SSM::Parameter'],
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
