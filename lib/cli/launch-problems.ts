/**
 * Why a config's group has no instance: read from the group's scaling activities, which are the only place
 * Auto Scaling says why a launch failed (a quota at 0 vCPUs on a new account, no spot capacity, a launch
 * template it cannot use). Pure, so `status` and its tests share it.
 *
 * An activity whose launch failed has StatusCode `Failed` or `Cancelled`, and its StatusMessage names the
 * cause; DescribeScalingActivities lists the newest first.
 * @see https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DescribeScalingActivities.html
 * @see https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_Activity.html
 */

/** The fields of an Auto Scaling Activity this module reads. */
export interface ScalingActivity {
  readonly StatusCode?: string;
  readonly StatusMessage?: string;
  readonly Description?: string;
  readonly StartTime?: Date;
}

/**
 * Minutes a config may wait for an instance before `status` flags it: longer than a spot launch, a failed
 * spot request and a retry take when capacity is merely tight.
 */
export const CAPACITY_WAIT_MINUTES = 15;

/** What `status` says of a group whose recent launches failed. */
export interface LaunchProblem {
  /** The newest failed activity's StatusMessage (cut to 300 characters). */
  readonly reason: string;
  /** The kind of cause, from the message (`waiting`: a launch still under way, for longer than it should be). */
  readonly kind: 'quota' | 'capacity' | 'refused' | 'waiting' | 'other';
  /** What to do about it. */
  readonly fix: string;
  /** When the oldest of the failed launches since the last successful one started (ISO 8601). */
  readonly since: string;
  /** Minutes since then. */
  readonly waitingMinutes: number;
  /** Whether that is more than {@link CAPACITY_WAIT_MINUTES}. */
  readonly overdue: boolean;
  /** How many launches failed since the last successful one (among the activities read). */
  readonly failures: number;
}

const FAILED = new Set(['Failed', 'Cancelled']);

// The EC2 error codes and messages a launch fails with (VcpuLimitExceeded, MaxSpotInstanceCountExceeded,
// InsufficientInstanceCapacity, UnfulfillableCapacity, ...).
// @see https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html
const KINDS: readonly { kind: LaunchProblem['kind']; pattern: RegExp; fix: (group: string) => string }[] = [
  {
    kind: 'quota',
    // Not RequestLimitExceeded: that is API throttling, not a quota.
    pattern: /vcpu|VcpuLimitExceeded|MaxSpotInstanceCountExceeded|InstanceLimitExceeded|(?<!request )limit exceeded|quota/i,
    fix: () =>
      'the account\'s vCPU quota for this instance family is too low (a new account has 0 for the G and P families): ' +
      'request an increase in Service Quotas (Amazon EC2: "All G and VT Spot Instance Requests", "All P4, P3 and P2 Spot Instance Requests" or "All P5 Spot Instance Requests" for spot, ' +
      'the "Running On-Demand ..." quota of the family for on-demand; spot-sweep doctor names the quota and the command), for at least the vCPUs of the config\'s largest instance type',
  },
  {
    kind: 'capacity',
    pattern: /capacity|UnfulfillableCapacity|no spot|spot request|price/i,
    fix: () =>
      'EC2 has no capacity for the config\'s instance types in its Availability Zones right now, and the group keeps retrying by itself: ' +
      'list more instanceTypes, spread the VPC over more AZs (-c availabilityZones=...), or use market "spot-then-on-demand"',
  },
  {
    kind: 'refused',
    pattern: /launch template|image|AMI|not authorized|UnauthorizedOperation|InvalidParameter|does not exist|invalid/i,
    fix: () => 'the launch itself is refused: fix what the message names (launch template, AMI, permissions), then deploy the sweep again',
  },
];

/**
 * The problem shown for one group, or undefined when its newest launch did not fail (or there is none).
 * `activities` newest first, as DescribeScalingActivities returns them.
 */
export function launchProblem(group: string, activities: readonly ScalingActivity[], now: Date = new Date()): LaunchProblem | undefined {
  const failed: ScalingActivity[] = [];
  for (const a of activities) {
    if (a.StatusCode === 'Successful' && /launching/i.test(a.Description ?? '')) break;
    if (FAILED.has(a.StatusCode ?? '')) {
      failed.push(a);
      continue;
    }
    if (a.StatusCode === 'Successful') continue; // a scale-in, a termination: not a launch
    // A launch under way (a spot request waiting for capacity, an instance starting): the failures before it are
    // history; it is a problem only once it has waited longer than a launch should.
    if (failed.length > 0) break;
    const started = a.StartTime ?? now;
    const waitingMinutes = Math.max(0, Math.floor((now.getTime() - started.getTime()) / 60_000));
    if (waitingMinutes <= CAPACITY_WAIT_MINUTES) return undefined;
    return {
      reason: `a launch has been ${a.StatusCode ?? 'in progress'} since ${started.toISOString()}`,
      kind: 'waiting',
      fix: KINDS.find((k) => k.kind === 'capacity')!.fix(group),
      since: started.toISOString(),
      waitingMinutes,
      overdue: true,
      failures: 0,
    };
  }
  const newest = failed[0];
  if (!newest) return undefined;
  const oldest = failed[failed.length - 1];
  const since = oldest.StartTime ?? newest.StartTime ?? now;
  const waitingMinutes = Math.max(0, Math.floor((now.getTime() - since.getTime()) / 60_000));
  const message = (newest.StatusMessage ?? newest.Description ?? 'no message').replace(/\s+/g, ' ').trim();
  const found = KINDS.find((k) => k.pattern.test(message));
  return {
    reason: message.length > 300 ? `${message.slice(0, 299)}…` : message,
    kind: found?.kind ?? 'other',
    fix: found ? found.fix(group) : `see the group's activity history: aws autoscaling describe-scaling-activities --auto-scaling-group-name ${group}`,
    since: since.toISOString(),
    waitingMinutes,
    overdue: waitingMinutes > CAPACITY_WAIT_MINUTES,
    failures: failed.length,
  };
}

/** The note `status` prints for a config whose group cannot launch. */
export function describeLaunchProblem(config: string, p: LaunchProblem): string {
  const wait = p.overdue ? `no instance for ${p.waitingMinutes} min (over ${CAPACITY_WAIT_MINUTES})` : `no instance yet (${p.waitingMinutes} min)`;
  const count = p.failures === 0 ? 'its launch is still waiting' : p.failures === 1 ? 'its last launch failed' : `its last ${p.failures} launches failed`;
  return `${config}: ${wait}: ${count}: "${p.reason}". Fix: ${p.fix}.`;
}
