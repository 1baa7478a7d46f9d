import { version } from '../../../package.json';
import { PRICE_SOURCE } from '../../cost/instances';
import { SweepSpec } from '../../spec/types';
import { lookupOnDemandPrices } from '../on-demand-prices';
import { lookupSpotPrices } from '../spot-prices';
import { STACK_OUTPUTS } from '../../contract';
import { bootstrapCheck, bucketCheck, credentialsCheck, DEFAULT_TOOLKIT_STACK, foundationCheck } from './account';
import { amiChecks } from './ami';
import { offeringChecks } from './offerings';
import { lambdaConcurrencyCheck, quotaChecks } from './quotas';
import { Check, check, DoctorDeps } from './types';

export interface DoctorOptions {
  /** `--bucket`; @default - the foundation's ArtifactBucketName output */
  readonly bucket?: string;
  /** `--ami-parameter`, as the deploy's `-c amiParameter`; @default - the DLAMI parameter of each GPU */
  readonly amiParameter?: string;
  /** `--toolkit-stack-name`; @default CDKToolkit */
  readonly toolkitStack?: string;
  /** The version the foundation must be at. @default - package.json's */
  readonly version?: string;
}

/** Runs a check; an error it did not expect becomes its blocker line instead of ending the run. */
async function guarded(name: string, run: () => Promise<Check | Check[]>): Promise<Check[]> {
  try {
    const r = await run();
    return Array.isArray(r) ? r : [r];
  } catch (err) {
    return [check(name, 'blocker', (err as Error).message.split('\n')[0], 'fix what it names, then run spot-sweep doctor again.')];
  }
}

/** Prices for the region: the built-in table when it is the region's, else live lookups, with what fell back. */
export async function priceCheck(deps: DoctorDeps, spec: SweepSpec): Promise<Check> {
  const types = [...new Set(spec.configs.flatMap((c) => c.instanceTypes))];
  const env = { ...deps.env, AWS_REGION: deps.region };
  const [spot, onDemand] = await Promise.all([lookupSpotPrices(types, env), lookupOnDemandPrices(types, env)]);
  const finding = `${spot.note} ${onDemand.note}`.replace(/\s+/g, ' ').trim();
  if (onDemand.warning) return check('prices', 'warn', `${finding} ${onDemand.warning}`, `plan's figures for ${deps.region} are ${PRICE_SOURCE.region} table prices where the lookup failed: allow a margin in budgetUsd.`);
  return check('prices', 'ok', finding);
}

/** With maxParallel, whether the scheduler can reserve its concurrency; nothing for a sweep without a cap. */
async function lambdaLine(deps: DoctorDeps, spec: SweepSpec): Promise<Check[]> {
  if (spec.maxParallel === null || spec.maxParallel === undefined) return [];
  try {
    const line = lambdaConcurrencyCheck(spec, await deps.quotas.list('lambda'), deps.region);
    return line ? [line] : [];
  } catch (err) {
    const e = err as Error;
    return [check('lambda concurrency', 'warn', `Service Quotas ListServiceQuotas for lambda failed (${e.name}: ${e.message.split('\n')[0]}), so whether the maxParallel scheduler can reserve concurrency is unknown.`, 'grant servicequotas:ListServiceQuotas, or check "Concurrent executions" in the Service Quotas console (AWS Lambda): a capped sweep needs at least 101.')];
  }
}

/** The service-quota lines, or one line saying why they could not be read. */
export async function quotaLines(deps: DoctorDeps, spec: SweepSpec): Promise<Check[]> {
  return guarded('quotas', async () => {
    try {
      return [...quotaChecks(spec, await deps.quotas.list('ec2'), deps.region), ...(await lambdaLine(deps, spec))];
    } catch (err) {
      const e = err as Error;
      return check('quotas', 'warn', `Service Quotas ListServiceQuotas failed (${e.name}: ${e.message.split('\n')[0]}), so the vCPU quotas are unknown.`, 'grant servicequotas:ListServiceQuotas to the identity you use, or check the EC2 quotas in the Service Quotas console.');
    }
  });
}

/**
 * Every check of `spot-sweep doctor`, in order. Read-only: nothing here creates, changes or deletes
 * anything. Without working credentials only the credentials line says something; the others are skipped.
 */
export async function runDoctor(deps: DoctorDeps, spec: SweepSpec, options: DoctorOptions = {}): Promise<Check[]> {
  const credentials = await credentialsCheck(deps);
  const checks: Check[] = [credentials.check];
  if (credentials.check.result === 'blocker') {
    for (const name of ['cdk bootstrap', 'foundation', 'ami', 'instance type offerings', 'quotas', 'prices', 'artifact bucket']) {
      checks.push(check(name, 'skipped', 'needs working credentials.'));
    }
    return checks;
  }
  const toolkit = options.toolkitStack ?? DEFAULT_TOOLKIT_STACK;
  let outputs: ReadonlyMap<string, string> | undefined;
  const [bootstrap, foundation] = await Promise.all([
    guarded('cdk bootstrap', () => bootstrapCheck(deps, toolkit, credentials.identity?.account)),
    guarded('foundation', async () => {
      const r = await foundationCheck(deps, options.version ?? version);
      outputs = r.facts.outputs;
      return r.check;
    }),
  ]);
  checks.push(...bootstrap, ...foundation);
  const [amis, offerings, quotas, prices, bucket] = await Promise.all([
    guarded('ami', () => amiChecks(deps, spec, options.amiParameter)),
    guarded('instance type offerings', () => offeringChecks(deps, spec, outputs?.get(STACK_OUTPUTS.vpcId))),
    quotaLines(deps, spec),
    guarded('prices', () => priceCheck(deps, spec)),
    guarded('artifact bucket', () => bucketCheck(deps, options.bucket ?? outputs?.get(STACK_OUTPUTS.artifactBucket))),
  ]);
  checks.push(...amis, ...offerings, ...quotas, ...prices, ...bucket);
  return checks;
}
