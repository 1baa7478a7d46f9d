#!/usr/bin/env node
import { App, Tags, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { readAppContext } from '../lib/app-context';
import { FOUNDATION_STACK_NAME, FoundationStack } from '../lib/foundation-stack';
import { SpecError, loadSpec } from '../lib/spec';

/**
 * The CDK app: `npx cdk synth|deploy|destroy [-c sweep=sweeps/x.json] [-c destroyData=true]
 * [-c vpcId=... -c subnetIds=... -c availabilityZones=...]`.
 *
 * Stacks are environment-agnostic (no account or region at synth), so synth needs no credentials
 * and makes no context lookups; `cdk deploy` deploys to the CLI's account and region.
 */
const app = new App();

// Validate every input before building anything: a user error prints a message, not a stack trace.
const { context, problems } = readAppContext((key) => app.node.tryGetContext(key));
if (problems.length > 0) {
  console.error(`spot-sweep: ${problems.length === 1 ? '1 problem' : `${problems.length} problems`} in the -c context values:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  process.exit(1);
}
if (context.sweep !== undefined) {
  try {
    loadSpec(context.sweep);
  } catch (err) {
    if (!(err instanceof SpecError)) throw err;
    console.error(err.message);
    process.exit(1);
  }
  // The sweep's own stack (SpotSweep-<name>) comes with the SweepStack; for now the spec is validated.
}

new FoundationStack(app, FOUNDATION_STACK_NAME, {
  destroyData: context.destroyData,
  existingVpc: context.existingVpc,
});

Tags.of(app).add('project', 'spot-sweep');
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
