import { mergeView, formatStatus } from '../../lib/cli/commands/status';
import { CAPACITY_WAIT_MINUTES, describeLaunchProblem, launchProblem, ScalingActivity } from '../../lib/cli/launch-problems';
import { groupName } from '../../lib/contract';
import { loadSpec } from '../../lib/spec/load';
import { statusDoc } from '../results/fixtures';
import { writeSpec } from './aws-fixture';

const NOW = new Date('2026-12-02T12:00:00Z');
const at = (minutesAgo: number): Date => new Date(NOW.getTime() - minutesAgo * 60_000);
// The messages as Auto Scaling writes them into a failed activity's StatusMessage.
const QUOTA =
  'You have requested more vCPU capacity than your current vCPU limit of 0 allows for the instance bucket that the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit. Launching EC2 instance failed.';
const NO_CAPACITY = 'We currently do not have sufficient g5.xlarge capacity in the Availability Zone you requested (us-east-1a). Launching EC2 instance failed.';
const failed = (message: string, minutesAgo: number): ScalingActivity => ({ StatusCode: 'Failed', StatusMessage: message, Description: 'Launching a new EC2 instance.  Status Reason: ' + message, StartTime: at(minutesAgo) });
const launched = (minutesAgo: number): ScalingActivity => ({ StatusCode: 'Successful', Description: 'Launching a new EC2 instance: i-0123456789abcdef0', StartTime: at(minutesAgo) });

describe('launchProblem: why a group that wants an instance has none', () => {
  test('a vCPU quota of 0 (a new account): the quota to raise, waiting since the first failure', () => {
    const p = launchProblem('SpotSweep-x-o', [failed(QUOTA, 2), failed(QUOTA, 12), failed(QUOTA, 22)], NOW);
    expect(p).toMatchObject({ kind: 'quota', failures: 3, waitingMinutes: 22, overdue: true, since: at(22).toISOString() });
    expect(p?.fix).toMatch(/Service Quotas.*All G and VT Spot Instance Requests/);
  });

  test('no spot capacity: more types, more AZs or spot-then-on-demand; not overdue before the documented minutes', () => {
    const p = launchProblem('SpotSweep-x-o', [failed(NO_CAPACITY, 1), failed(NO_CAPACITY, CAPACITY_WAIT_MINUTES)], NOW);
    expect(p).toMatchObject({ kind: 'capacity', waitingMinutes: CAPACITY_WAIT_MINUTES, overdue: false, failures: 2 });
    expect(p?.fix).toMatch(/instanceTypes.*availabilityZones.*spot-then-on-demand/);
  });

  test('a refused launch template is named as such', () => {
    const p = launchProblem('SpotSweep-x-o', [{ StatusCode: 'Cancelled', StatusMessage: 'The specified launch template, with template ID lt-0abc, does not exist.', StartTime: at(3) }], NOW);
    expect(p).toMatchObject({ kind: 'refused', failures: 1 });
  });

  test('failures before the last successful launch are history, not a problem', () => {
    expect(launchProblem('SpotSweep-x-o', [launched(5), failed(QUOTA, 30)], NOW)).toBeUndefined();
    expect(launchProblem('SpotSweep-x-o', [], NOW)).toBeUndefined();
    // A successful activity that launched nothing (a scale-in) does not end the streak of failed launches.
    const p = launchProblem('SpotSweep-x-o', [failed(NO_CAPACITY, 1), { StatusCode: 'Successful', Description: 'Terminating EC2 instance: i-1', StartTime: at(4) }, failed(NO_CAPACITY, 40)], NOW);
    expect(p).toMatchObject({ failures: 2, waitingMinutes: 40 });
  });

  test('a launch under way after earlier failures is no problem yet; one waiting longer than the documented minutes is flagged', () => {
    // After a quota increase and spot-sweep start, the new launch is in progress: the old failures are history.
    expect(launchProblem('SpotSweep-x-o', [{ StatusCode: 'WaitingForSpotInstanceId', StartTime: at(2) }, failed(QUOTA, 60)], NOW)).toBeUndefined();
    const waiting = launchProblem('SpotSweep-x-o', [{ StatusCode: 'WaitingForSpotInstanceId', StartTime: at(CAPACITY_WAIT_MINUTES + 15) }], NOW);
    expect(waiting).toMatchObject({ kind: 'waiting', overdue: true, failures: 0, waitingMinutes: CAPACITY_WAIT_MINUTES + 15 });
    expect(describeLaunchProblem('o', waiting!)).toMatch(/^o: no instance for 30 min \(over 15\): its launch is still waiting: "a launch has been WaitingForSpotInstanceId since/);
  });

  test('API throttling (RequestLimitExceeded) is not taken for a quota', () => {
    expect(launchProblem('SpotSweep-x-o', [failed('Request limit exceeded. RequestLimitExceeded', 1)], NOW)?.kind).not.toBe('quota');
  });

  test('an unknown message points at the activity history, and a huge one is cut', () => {
    const p = launchProblem('SpotSweep-x-o', [failed('x'.repeat(5000), 1)], NOW);
    expect(p?.kind).toBe('other');
    expect(p?.fix).toContain('aws autoscaling describe-scaling-activities --auto-scaling-group-name SpotSweep-x-o');
    expect(p?.reason.length).toBeLessThanOrEqual(300);
  });
});

test('a group whose activities cannot be read is a note of status, not its failure', () => {
  const spec = loadSpec(writeSpec('denied', ['o']));
  const view = mergeView(
    spec,
    { status: [JSON.stringify(statusDoc('denied', 'o', 'PENDING', { attempts: 0 }))], control: [undefined] },
    { region: 'us-east-1', bucket: 'b', instances: new Map(), groups: new Map([[groupName('denied', 'o'), { desired: 1, min: 0, max: 1 }]]), activityProblems: ['o: why its group has no instance is unknown: AccessDenied'] },
    NOW,
  );
  expect(view.notes).toContain('o: why its group has no instance is unknown: AccessDenied');
  expect(view.configs[0].launch).toBeUndefined();
});

describe('status with a group whose launches fail', () => {
  const spec = loadSpec(writeSpec('quota', ['o', 'p', 'q']));
  const g = (c: string) => groupName('quota', c);
  const view = mergeView(
    spec,
    { status: [statusDoc('quota', 'o', 'PENDING', { attempts: 0 }), statusDoc('quota', 'p', 'TRAINING'), statusDoc('quota', 'q', 'SUCCEEDED')].map((d) => JSON.stringify(d)), control: [undefined, undefined, undefined] },
    {
      region: 'us-east-1',
      bucket: 'b',
      instances: new Map([['p', [{ id: 'i-1', type: 'g5.xlarge', market: 'spot', state: 'running' }]]]),
      groups: new Map([g('o'), g('p'), g('q')].map((name) => [name, { desired: 1, min: 0, max: 1 }])),
      // Failures are listed for p and q too: p has its instance and q has finished, so neither is a problem.
      activities: new Map([g('o'), g('p'), g('q')].map((name) => [name, [failed(QUOTA, 1), failed(QUOTA, 42)]])),
    },
    NOW,
  );

  test('the waiting config says why, since when, and what to do; the others say nothing of launches', () => {
    const byName = Object.fromEntries(view.configs.map((c) => [c.config, c]));
    expect(byName.o.launch).toMatchObject({ kind: 'quota', waitingMinutes: 42, overdue: true });
    expect(byName.p.launch).toBeUndefined();
    expect(byName.q.launch).toBeUndefined();
    expect(view.notes).toContain(describeLaunchProblem('o', byName.o.launch!));
    expect(view.notes.filter((n) => /launch/.test(n))).toHaveLength(1);
    const text = formatStatus(view, undefined, 160);
    expect(text).toMatch(/^o\s+PENDING\s+launch failing 42 min\s/m);
    expect(formatStatus(view)).toMatch(/^o\s+PENDING\s.*\n {2}instance: launch failing 42 min$/m);
    expect(text).toContain(`  - o: no instance for 42 min (over ${CAPACITY_WAIT_MINUTES}): its last 2 launches failed: "You have requested more vCPU capacity`);
    expect(text).toMatch(/Fix: the account's vCPU quota for this instance family is too low/);
  });
});
