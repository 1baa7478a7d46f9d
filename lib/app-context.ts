import { availabilityZoneProblems, AZ_NAME, ExistingVpcAttributes } from './constructs/network';

/** What `cdk synth|deploy|destroy -c key=value` may set, parsed and checked. */
export interface AppContext {
  /** `-c sweep=sweeps/x.json`: the sweep spec to build. */
  readonly sweep?: string;
  /** `-c destroyData=true`: delete the artifact bucket and its objects on destroy. */
  readonly destroyData: boolean;
  /** `-c vpcId=vpc-... -c subnetIds=subnet-a,subnet-b -c availabilityZones=us-east-1a,us-east-1b`. */
  readonly existingVpc?: ExistingVpcAttributes;
  /**
   * `-c availabilityZones=us-east-1a,us-east-1b,...` without `-c vpcId`: the zones of the foundation's own VPC,
   * one public subnet each (lib/constructs/network.ts checks them against the stack's region).
   */
  readonly availabilityZones?: readonly string[];
  /**
   * `-c amiParameter=/name`: one SSM parameter with the AMI id for every config, instead of the Deep
   * Learning AMI parameters (to pin your own image, or for an emulator that refuses `/aws/` parameters).
   */
  readonly amiParameter?: string;
}

const list = (v: unknown): string[] =>
  Array.isArray(v) ? v.map(String) : typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter((s) => s !== '') : [];

/**
 * Reads the app's context values and returns them with every problem found (empty when fine).
 * `get` is `app.node.tryGetContext`.
 */
export function readAppContext(get: (key: string) => unknown): { context: AppContext; problems: string[] } {
  const problems: string[] = [];
  const sweep = get('sweep');
  if (sweep !== undefined && (typeof sweep !== 'string' || sweep === '')) {
    problems.push(`-c sweep=${String(sweep)}: give the path of a sweep spec, e.g. -c sweep=sweeps/seed-plan.json.`);
  }
  const rawDestroy = get('destroyData');
  let destroyData = false;
  if (rawDestroy !== undefined) {
    if (rawDestroy === true || rawDestroy === 'true') destroyData = true;
    else if (!(rawDestroy === false || rawDestroy === 'false')) {
      problems.push(`-c destroyData=${String(rawDestroy)}: use true or false.`);
    }
  }
  let existingVpc: ExistingVpcAttributes | undefined;
  let foundationAzs: string[] | undefined;
  const vpcId = get('vpcId');
  const subnetIds = list(get('subnetIds'));
  const availabilityZones = list(get('availabilityZones'));
  if (vpcId !== undefined) {
    const before = problems.length;
    if (typeof vpcId !== 'string' || !/^vpc-[0-9a-f]{8,17}$/.test(vpcId)) {
      problems.push(`-c vpcId=${String(vpcId)}: not a VPC id; use the form vpc-0123456789abcdef0.`);
    }
    const badSubnet = subnetIds.find((s) => !/^subnet-[0-9a-f]{8,17}$/.test(s));
    if (subnetIds.length === 0 || badSubnet !== undefined) {
      problems.push(
        `-c subnetIds=${subnetIds.join(',')}: with -c vpcId give the subnets to launch into, comma-separated, e.g. -c subnetIds=subnet-0aaa...,subnet-0bbb...` +
          (badSubnet ? ` ("${badSubnet}" is not a subnet id).` : '.'),
      );
    }
    if (availabilityZones.length !== subnetIds.length || availabilityZones.some((az) => !AZ_NAME.test(az))) {
      problems.push(
        `-c availabilityZones=${availabilityZones.join(',')}: give the AZ of each subnet in the same order (${subnetIds.length} expected), e.g. -c availabilityZones=us-east-1a,us-east-1b.`,
      );
    }
    if (problems.length === before) existingVpc = { vpcId: vpcId as string, subnetIds, availabilityZones };
  } else if (subnetIds.length > 0) {
    problems.push('-c subnetIds only applies with -c vpcId=vpc-...; add the VPC id or drop it.');
  } else if (get('availabilityZones') !== undefined) {
    const before = problems.length;
    problems.push(...availabilityZoneProblems(availabilityZones, undefined).map((p) => `-c availabilityZones: ${p}`));
    if (problems.length === before) foundationAzs = availabilityZones;
  }
  const amiParameter = get('amiParameter');
  if (amiParameter !== undefined && (typeof amiParameter !== 'string' || !/^\/[A-Za-z0-9_.\-/]+$/.test(amiParameter))) {
    problems.push(`-c amiParameter=${String(amiParameter)}: give the name of an SSM parameter that holds an AMI id, e.g. -c amiParameter=/spot-sweep/ami-id.`);
  }
  return {
    context: {
      ...(typeof sweep === 'string' && sweep !== '' ? { sweep } : {}),
      destroyData,
      ...(existingVpc ? { existingVpc } : {}),
      ...(foundationAzs ? { availabilityZones: foundationAzs } : {}),
      ...(typeof amiParameter === 'string' && problems.length === 0 ? { amiParameter } : {}),
    },
    problems,
  };
}
