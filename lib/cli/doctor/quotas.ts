import { INSTANCES } from '../../cost/instances';
import { Market, SweepSpec } from '../../spec/types';
import { ServiceQuota } from './identity-quotas';
import { Check, check, QuotaSource } from './types';

/**
 * EC2 vCPU quotas per instance family, from Service Quotas, against what a sweep needs at once.
 *
 * Spot quotas are vCPUs of running and requested Spot Instances per account and Region, one quota per
 * group of families: "All G and VT Spot Instance Requests", "All P4, P3 and P2 Spot Instance Requests",
 * "All P5 Spot Instance Requests" (an older page had one "All P Spot Instance Requests"), all with a
 * default of 0 vCPUs, which is why a new account launches no GPU at all.
 * @see https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-spot-limits.html
 * On-demand quotas are vCPUs of running On-Demand Instances, named "Running On-Demand <families> instances":
 * AWS's own get-aws-default-service-quota example answers "Running On-Demand Standard (A, C, D, H, I, M, R,
 * T, Z) instances" (L-1216C47A) with the usage metric Resource vCPU; the G and VT and the P ones follow the
 * same pattern ("Running On-Demand G and VT instances", "Running On-Demand P instances").
 * @see https://docs.aws.amazon.com/cli/latest/userguide/cli_service-quotas_code_examples.html
 * Quota codes (such as L-3819A6DF for spot G and VT) are not hard-coded: the quota that covers a family is
 * found by its name among the ones Service Quotas lists for ec2, so a renamed or split quota (as P was) is
 * still found, and every line names the code AWS answered with.
 * @see https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_ListServiceQuotas.html
 */

/** The quota markets a sweep market draws on: spot-then-on-demand may run on either. */
export function quotaMarkets(market: Market): ('spot' | 'on-demand')[] {
  return market === 'spot' ? ['spot'] : market === 'on-demand' ? ['on-demand'] : ['spot', 'on-demand'];
}

const SPOT_NAME = /^All (.+) Spot Instance Requests$/;
const ON_DEMAND_NAME = /^Running On-Demand (.+) instances$/;

/** The family tokens a quota name covers: "G and VT" -> [g, vt]; "P4, P3 and P2" -> [p4, p3, p2]; "Standard (A, C)" -> [a, c]. */
export function coveredTokens(covered: string): string[] {
  const inner = /\(([^)]*)\)/.exec(covered)?.[1] ?? covered;
  return inner
    .split(/,\s*|\s+and\s+/)
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t.length > 0);
}

/** The quota of `market` that covers an instance type: its family's letters and generation (p4d -> p4, else p). */
export function quotaFor(instanceType: string, market: 'spot' | 'on-demand', quotas: readonly ServiceQuota[]): ServiceQuota | undefined {
  const family = instanceType.split('.')[0];
  const match = /^([a-z]+)(\d*)/.exec(family);
  if (!match) return undefined;
  const [, letters, generation] = match;
  const pattern = market === 'spot' ? SPOT_NAME : ON_DEMAND_NAME;
  let best: { quota: ServiceQuota; score: number } | undefined;
  for (const q of quotas) {
    const named = pattern.exec(q.QuotaName ?? '');
    if (!named) continue;
    const tokens = coveredTokens(named[1]);
    // A quota naming the generation ("P5") beats one naming only the letter ("P").
    const score = generation && tokens.includes(letters + generation) ? 2 : tokens.includes(letters) ? 1 : 0;
    if (score > (best?.score ?? 0)) best = { quota: q, score };
  }
  return best?.quota;
}

/** vCPUs of an instance type (the price table's); 0 when the table does not know it (the spec refuses those). */
const vcpus = (type: string): number => INSTANCES.get(type)?.vcpus ?? 0;

/** What one quota must allow for the sweep. */
export interface QuotaNeed {
  readonly market: 'spot' | 'on-demand';
  readonly quotaCode: string;
  readonly quotaName: string;
  /** The applied value, vCPUs; undefined when Service Quotas gave none. */
  readonly limitVcpus?: number;
  /**
   * The most vCPUs the sweep holds at once under this quota: each config on its largest type under it, summed
   * over every config, or with maxParallel over the maxParallel largest.
   */
  readonly neededVcpus: number;
  /** The spec's maxParallel when it caps this quota's configs (fewer slots than configs); absent otherwise. */
  readonly maxParallel?: number;
  /** The largest single type under this quota: below it, that type never launches. */
  readonly largestVcpus: number;
  readonly largestType: string;
  readonly configs: readonly string[];
}

/**
 * What the sweep needs of each quota at once: every config has one instance at a time (its group's
 * capacity is 1), any of its types may be the one launched, so each config counts its largest type under
 * the quota; a spot-then-on-demand config counts on both its spot and its on-demand quota. With maxParallel
 * at most that many configs hold an instance at once (lambda/scheduler), so the need is the sum over the
 * maxParallel largest of them. Types no quota covers are returned apart.
 */
export function sweepQuotaNeeds(spec: SweepSpec, quotas: readonly ServiceQuota[]): { needs: QuotaNeed[]; uncovered: { type: string; market: string }[] } {
  const byQuota = new Map<string, { quota: ServiceQuota; market: 'spot' | 'on-demand'; perConfig: Map<string, string> }>();
  const uncovered: { type: string; market: string }[] = [];
  for (const c of spec.configs) {
    for (const market of quotaMarkets(c.market)) {
      for (const type of c.instanceTypes) {
        const quota = quotaFor(type, market, quotas);
        if (!quota) {
          if (!uncovered.some((u) => u.type === type && u.market === market)) uncovered.push({ type, market });
          continue;
        }
        const key = `${market} ${quota.QuotaCode}`;
        const entry = byQuota.get(key) ?? { quota, market, perConfig: new Map<string, string>() };
        const current = entry.perConfig.get(c.name);
        if (current === undefined || vcpus(type) > vcpus(current)) entry.perConfig.set(c.name, type);
        byQuota.set(key, entry);
      }
    }
  }
  const needs = [...byQuota.values()].map(({ quota, market, perConfig }): QuotaNeed => {
    const types = [...perConfig.values()];
    const largestType = types.reduce((a, b) => (vcpus(b) > vcpus(a) ? b : a));
    const capped = spec.maxParallel !== null && spec.maxParallel !== undefined && spec.maxParallel < types.length ? spec.maxParallel : undefined;
    const atOnce = [...types].sort((a, b) => vcpus(b) - vcpus(a)).slice(0, capped ?? types.length);
    return {
      market,
      quotaCode: quota.QuotaCode,
      quotaName: quota.QuotaName,
      ...(typeof quota.Value === 'number' ? { limitVcpus: quota.Value } : {}),
      neededVcpus: atOnce.reduce((sum, t) => sum + vcpus(t), 0),
      ...(capped !== undefined ? { maxParallel: capped } : {}),
      largestVcpus: vcpus(largestType),
      largestType,
      configs: [...perConfig.keys()],
    };
  });
  return { needs, uncovered };
}

/** The command that asks for more, as the fix of a short quota. */
export function increaseCommand(code: string, vcpus: number, region: string): string {
  return `aws service-quotas request-service-quota-increase --service-code ec2 --quota-code ${code} --desired-value ${vcpus} --region ${region}`;
}

/**
 * Whether some type of the config fits its quota in some market it may launch in: a spot-then-on-demand config
 * that cannot launch on spot is moved to on-demand by the budget guard after two failed launches, and a config
 * launches any of its types. A quota Service Quotas does not report counts as fitting (a warning says so).
 */
function canLaunch(config: SweepSpec['configs'][number], quotas: readonly ServiceQuota[]): boolean {
  return quotaMarkets(config.market).some((market) =>
    config.instanceTypes.some((type) => {
      const quota = quotaFor(type, market, quotas);
      return quota === undefined || typeof quota.Value !== 'number' || quota.Value >= vcpus(type);
    }),
  );
}

/**
 * One check line per quota the sweep uses (and one per type no quota covers). A blocker only when a config has
 * no type in any of its markets that its quota allows; a quota short of some types, or of every config at once,
 * is a warning.
 */
export function quotaChecks(spec: SweepSpec, quotas: readonly ServiceQuota[], region: string): Check[] {
  const { needs, uncovered } = sweepQuotaNeeds(spec, quotas);
  const stuck = new Set(spec.configs.filter((c) => !canLaunch(c, quotas)).map((c) => c.name));
  const out = needs.map((n): Check => {
    const name = `quota ${n.market} ${n.quotaCode}`;
    const what = `"${n.quotaName}" (${n.quotaCode}) is ${n.limitVcpus ?? 'not reported'} vCPUs in ${region}; the sweep needs ${n.neededVcpus} vCPUs at once${n.maxParallel !== undefined ? ` (maxParallel ${n.maxParallel})` : ''} (${n.configs.join(', ')}; largest type ${n.largestType}, ${n.largestVcpus} vCPUs)`;
    const ask = `request ${n.neededVcpus} vCPUs: ${increaseCommand(n.quotaCode, n.neededVcpus, region)} (or the Service Quotas console); approval can take a day`;
    if (n.limitVcpus === undefined) return check(name, 'warn', `${what}.`, `check it in the Service Quotas console; if it is below ${n.neededVcpus}, ${ask}.`);
    if (n.limitVcpus < n.largestVcpus) {
      const zero = n.limitVcpus === 0 ? ' (0 is the default of a new account)' : '';
      const blocked = n.configs.filter((c) => stuck.has(c));
      if (blocked.length > 0) {
        return check(name, 'blocker', `${what}: no ${n.largestType} can launch${zero}, and config ${blocked.join(', ')} has no type or market its quotas allow.`, `${ask}.`);
      }
      return check(name, 'warn', `${what}: no ${n.largestType} can launch${zero}; ${n.configs.join(', ')} can still launch a smaller type or in its other market.`, `${ask}.`);
    }
    if (n.limitVcpus < n.neededVcpus) {
      const short = n.maxParallel !== undefined ? `the ${n.maxParallel} configs maxParallel allows cannot all run at once` : 'not every config can run at once';
      return check(name, 'warn', `${what}: ${short}; the others wait for capacity.`, `${ask}.`);
    }
    return check(name, 'ok', `${what}.`);
  });
  for (const u of uncovered) {
    out.push(check(`quota ${u.market} ${u.type}`, 'warn', `no ${u.market} quota listed by Service Quotas in ${region} names the family of ${u.type}.`, 'check the EC2 quotas in the Service Quotas console before deploying.'));
  }
  return out;
}

/** The headroom of one instance type under its quota. */
export interface Headroom {
  readonly family: string;
  readonly market: 'spot' | 'on-demand';
  /** undefined when no listed quota covers the family. */
  readonly quotaCode?: string;
  readonly quotaName?: string;
  readonly limitVcpus?: number;
  /** One instance of the type. */
  readonly neededVcpus: number;
  /** One instance of the type fits under the quota's applied value. */
  readonly ok: boolean;
}

/**
 * Whether one instance of each type fits its vCPU quota of `market` ('spot-then-on-demand' asks the spot
 * quota: that is where such a config launches first). For callers that choose a type the account can launch,
 * e.g. the cheapest of a list: `[...await quotaHeadroom(serviceQuotas(session), ['g4dn.xlarge', 'g5.xlarge'], 'spot')]
 * .find(([, h]) => h.ok)`. It reads the applied values only, not current usage.
 */
export async function quotaHeadroom(source: QuotaSource, instanceTypes: readonly string[], market: Market): Promise<Map<string, Headroom>> {
  const quotas = await source.list('ec2');
  const m = market === 'on-demand' ? 'on-demand' : 'spot';
  return new Map(
    instanceTypes.map((type): [string, Headroom] => {
      const quota = quotaFor(type, m, quotas);
      const limit = typeof quota?.Value === 'number' ? quota.Value : undefined;
      return [
        type,
        {
          family: type.split('.')[0],
          market: m,
          ...(quota ? { quotaCode: quota.QuotaCode, quotaName: quota.QuotaName } : {}),
          ...(limit !== undefined ? { limitVcpus: limit } : {}),
          neededVcpus: vcpus(type),
          ok: limit !== undefined && limit >= vcpus(type),
        },
      ];
    }),
  );
}

/** The Lambda quota the scheduler's reservation counts against (its name in the Lambda quotas page and in Service Quotas). */
export const LAMBDA_CONCURRENCY_QUOTA = 'Concurrent executions';
/**
 * Lambda keeps this many concurrent executions unreserved: "You can reserve up to the Unreserved account
 * concurrency value that is shown, minus 100 for functions that don't have reserved concurrency."
 * @see https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html
 */
export const LAMBDA_UNRESERVED_MINIMUM = 100;
/** What the scheduler of a capped sweep reserves (lib/constructs/scheduler.ts). */
export const SCHEDULER_RESERVED = 1;

/**
 * With maxParallel, the scheduler Lambda reserves concurrency, which the deploy cannot do in an account whose
 * Lambda concurrency quota leaves no more than 100 unreserved (new accounts have reduced quotas: "New AWS
 * accounts have reduced concurrency and memory quotas", https://docs.aws.amazon.com/lambda/latest/dg/limits.html).
 * Undefined for a sweep without a cap. Reservations other functions of the account hold are not counted (this
 * reads only the quota): the finding says so.
 */
export function lambdaConcurrencyCheck(spec: SweepSpec, lambdaQuotas: readonly ServiceQuota[], region: string): Check | undefined {
  if (spec.maxParallel === null || spec.maxParallel === undefined) return undefined;
  const quota = lambdaQuotas.find((q) => q.QuotaName === LAMBDA_CONCURRENCY_QUOTA);
  const needed = LAMBDA_UNRESERVED_MINIMUM + SCHEDULER_RESERVED;
  if (quota?.Value === undefined) {
    return check('lambda concurrency', 'warn', `the Lambda quota "${LAMBDA_CONCURRENCY_QUOTA}" in ${region} was not reported, so whether the maxParallel scheduler can reserve ${SCHEDULER_RESERVED} is unknown.`, 'check it in the Service Quotas console (AWS Lambda); a capped sweep needs at least 101.');
  }
  const what = `"${quota.QuotaName}" (${quota.QuotaCode}) is ${quota.Value} in ${region}; with maxParallel ${spec.maxParallel} the scheduler reserves ${SCHEDULER_RESERVED} and Lambda keeps ${LAMBDA_UNRESERVED_MINIMUM} unreserved`;
  if (quota.Value < needed) {
    return check(
      'lambda concurrency',
      'blocker',
      `${what}, so cdk deploy would fail creating the scheduler.`,
      `aws service-quotas request-service-quota-increase --service-code lambda --quota-code ${quota.QuotaCode} --desired-value 1000 --region ${region}, or remove maxParallel from the spec.`,
    );
  }
  return check('lambda concurrency', 'ok', `${what} (reservations of other functions in the account are not counted here).`);
}
