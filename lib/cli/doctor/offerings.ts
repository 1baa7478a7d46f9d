import { DescribeInstanceTypeOfferingsCommand, DescribeInstanceTypeOfferingsCommandInput, DescribeSubnetsCommand } from '@aws-sdk/client-ec2';
import { SweepSpec } from '../../spec/types';
import { aws } from '../aws';
import { Check, check, DoctorDeps } from './types';

/** The zones of the foundation VPC's subnets (the groups launch into those). */
export async function subnetZones(deps: DoctorDeps, vpcId: string): Promise<string[]> {
  const zones = new Set<string>();
  let token: string | undefined;
  do {
    const page = await aws('EC2 DescribeSubnets', () => deps.ec2.send(new DescribeSubnetsCommand({ Filters: [{ Name: 'vpc-id', Values: [vpcId] }], NextToken: token })));
    for (const s of page.Subnets ?? []) if (s.AvailabilityZone) zones.add(s.AvailabilityZone);
    token = page.NextToken || undefined;
  } while (token);
  return [...zones].sort();
}

/**
 * Where in the region each type is offered: DescribeInstanceTypeOfferings with location type
 * availability-zone lists, per type, the zones that offer it (no location filter: every zone of the region).
 * @see https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstanceTypeOfferings.html
 */
export async function offeredZones(deps: DoctorDeps, types: readonly string[]): Promise<Map<string, string[]>> {
  const zones = new Map<string, string[]>(types.map((t) => [t, []]));
  let token: string | undefined;
  do {
    const page = await aws('EC2 DescribeInstanceTypeOfferings', () =>
      deps.ec2.send(
        new DescribeInstanceTypeOfferingsCommand({
          LocationType: 'availability-zone',
          Filters: [{ Name: 'instance-type', Values: [...types] }],
          NextToken: token,
        } as DescribeInstanceTypeOfferingsCommandInput),
      ),
    );
    for (const o of page.InstanceTypeOfferings ?? []) {
      if (o.InstanceType && o.Location) zones.get(o.InstanceType)?.push(o.Location);
    }
    token = page.NextToken || undefined;
  } while (token);
  for (const list of zones.values()) list.sort();
  return zones;
}

/**
 * One line per instance type: offered in at least one of the foundation subnets' zones. A config with no
 * type offered there can never launch (blocker); a type that is not, beside others that are, only narrows
 * the config's choice (warn).
 */
export async function offeringChecks(deps: DoctorDeps, spec: SweepSpec, vpcId: string | undefined): Promise<Check[]> {
  const types = [...new Set(spec.configs.flatMap((c) => c.instanceTypes))];
  if (!vpcId) return [check('instance type offerings', 'skipped', 'the foundation has no VpcId output to find its subnets by.', 'deploy the foundation, then run spot-sweep doctor again.')];
  const [subnets, offered] = await Promise.all([subnetZones(deps, vpcId), offeredZones(deps, types)]);
  const inSubnets = (type: string): string[] => (offered.get(type) ?? []).filter((z) => subnets.includes(z));
  const hint = (type: string): string => {
    const elsewhere = offered.get(type) ?? [];
    return elsewhere.length > 0
      ? `redeploy the foundation with zones that offer it (npx cdk deploy SpotSweep-Foundation -c availabilityZones=${[...new Set([...subnets, ...elsewhere])].join(',')}, while no sweep runs), or list another type`
      : `${type} is offered in no zone of ${deps.region}: list another type, or deploy in a region that offers it`;
  };
  return types.map((type): Check => {
    const name = `offered ${type}`;
    const here = inSubnets(type);
    if (here.length > 0) return check(name, 'ok', `offered in ${here.join(', ')} (foundation subnets: ${subnets.join(', ')}).`);
    const configs = spec.configs.filter((c) => c.instanceTypes.includes(type));
    const stranded = configs.filter((c) => c.instanceTypes.every((t) => inSubnets(t).length === 0)).map((c) => c.name);
    const finding = `not offered in the foundation subnets' zones (${subnets.join(', ') || 'none'})${(offered.get(type) ?? []).length > 0 ? `; ${deps.region} offers it in ${(offered.get(type) ?? []).join(', ')}` : ''}`;
    if (stranded.length > 0) return check(name, 'blocker', `${finding}: config ${stranded.join(', ')} has no type that can launch.`, `${hint(type)}.`);
    return check(name, 'warn', `${finding}; its configs launch their other types.`, `${hint(type)}.`);
  });
}
