/**
 * The instance's own deadline: a kill path that needs neither CloudWatch, nor the Lambdas, nor the SSM
 * Agent, nor the job. The launch template's user data (ConfigFleet) runs these commands at boot, as root,
 * before the association runs the job: they write a small script and hand it to systemd as a transient
 * timer (`systemd-run --on-active`), a unit of systemd's own, detached from the user data, the SSM Agent and
 * the job's processes, that fires `maxRuntimeHours` plus a margin after boot.
 *
 * When it fires, the script removes the instance from its group with the desired capacity decremented, so the
 * group launches no replacement (the instance role may call TerminateInstanceInAutoScalingGroup on spot-sweep's
 * groups; the call takes only the instance id, which IMDSv2 gives, with the region). If that call fails (no
 * IMDS answer, no network, the API refused), it shuts the instance down: EC2 stops an EBS-backed instance on
 * an OS shutdown (the templates keep that default), and Auto Scaling's EC2 health check, which checks that the
 * instance is running, marks it unhealthy and replaces it: the replacement resumes from the newest checkpoint
 * with a deadline of its own, until an alarm, the budget guard or a person stops the config.
 * It does not shut down an instance its group is already terminating (target lifecycle state `Terminated`):
 * the termination lifecycle hook holds it while the job checkpoints. `shutdown -h +<minutes>` scheduled at boot
 * is the last resort should the timer never run at all.
 *
 * The margin lets the config's other limits act first on a healthy system: the train document's
 * ExecutionTimeout (`maxRuntimeHours` from the job's start, which comes minutes after boot), the job's
 * checkpoint and upload, and the max-runtime alarm, which counts the same hours. A reboot clears both the
 * timer and the scheduled shutdown (user data runs once per instance); the other kill paths remain.
 * @see https://docs.aws.amazon.com/cli/latest/reference/autoscaling/terminate-instance-in-auto-scaling-group.html
 * @see https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_TerminateInstanceInAutoScalingGroup.html
 * @see https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/Using_ChangingInstanceInitiatedShutdownBehavior.html
 * @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/health-checks-overview.html
 * @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/healthcheck.html
 * @see https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html
 */

/** Minutes after `maxRuntimeHours` at which the instance removes itself. */
export const DEADLINE_MARGIN_MINUTES = 30;
/** Minutes after the deadline at which the scheduled shutdown stops the instance if nothing else did. */
export const SHUTDOWN_BACKSTOP_MINUTES = 30;
/** The systemd unit (timer and service) of the deadline, e.g. for `systemctl list-timers spot-sweep-deadline`. */
export const DEADLINE_UNIT = 'spot-sweep-deadline';
/** Where the user data writes the script the timer runs. */
export const DEADLINE_SCRIPT = '/usr/local/sbin/spot-sweep-deadline';

export interface InstanceDeadlineProps {
  /** The config's `maxRuntimeHours`. */
  readonly maxRuntimeHours: number;
  /**
   * Where to write the script (tests write it into a temporary directory).
   * @default DEADLINE_SCRIPT
   */
  readonly scriptPath?: string;
  /**
   * The instance metadata endpoint.
   * @default 'http://169.254.169.254'
   */
  readonly imdsEndpoint?: string;
}

/** Seconds from boot to the deadline: `maxRuntimeHours` plus {@link DEADLINE_MARGIN_MINUTES}. */
export function deadlineSeconds(maxRuntimeHours: number): number {
  if (!(maxRuntimeHours > 0)) {
    throw new Error(`maxRuntimeHours ${maxRuntimeHours} gives no instance deadline; set it above 0, e.g. 12.`);
  }
  return Math.ceil(maxRuntimeHours * 3600) + DEADLINE_MARGIN_MINUTES * 60;
}

/** The user data lines that arm the deadline (bash; every external command resolved from PATH). */
export function instanceDeadlineCommands(props: InstanceDeadlineProps): string[] {
  const seconds = deadlineSeconds(props.maxRuntimeHours);
  const script = props.scriptPath ?? DEADLINE_SCRIPT;
  const imds = props.imdsEndpoint ?? 'http://169.254.169.254';
  const backstopMinutes = Math.ceil(seconds / 60) + SHUTDOWN_BACKSTOP_MINUTES;
  return [
    `# spot-sweep instance deadline: ${props.maxRuntimeHours} h + ${DEADLINE_MARGIN_MINUTES} min after boot (lib/constructs/instance-deadline.ts)`,
    `mkdir -p "$(dirname '${script}')"`,
    `cat > '${script}' <<'SPOT_SWEEP_DEADLINE'`,
    '#!/bin/bash',
    '# Removes this instance from its Auto Scaling group (desired capacity - 1); shuts it down if that fails.',
    'set -u',
    `imds=${imds}`,
    "token=$(curl -fsS --max-time 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' \"$imds/latest/api/token\") || token=''",
    "meta() { curl -fsS --max-time 5 -H \"X-aws-ec2-metadata-token: $token\" \"$imds/latest/meta-data/$1\"; }",
    "instance_id=''; region=''",
    'if [ -n "$token" ]; then',
    "  instance_id=$(meta instance-id) || instance_id=''",
    "  region=$(meta placement/region) || region=''",
    'fi',
    'if [ -n "$instance_id" ] && [ -n "$region" ] &&',
    '  timeout 120 aws autoscaling terminate-instance-in-auto-scaling-group --instance-id "$instance_id" \\',
    '    --should-decrement-desired-capacity --region "$region"; then',
    `  echo "spot-sweep deadline: ${props.maxRuntimeHours} h + ${DEADLINE_MARGIN_MINUTES} min reached; $instance_id leaves its group"`,
    '  exit 0',
    'fi',
    // The group is already terminating the instance (a scale-in, the job's own removal): its lifecycle hook
    // holds it while the job checkpoints and uploads, and a shutdown now would cut that short.
    // @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/retrieving-target-lifecycle-state-through-imds.html
    'if [ -n "$token" ] && [ "$(meta autoscaling/target-lifecycle-state)" = Terminated ]; then',
    '  echo "spot-sweep deadline: the group is already terminating ${instance_id:-this instance}; leaving it to the lifecycle hook"',
    '  exit 0',
    'fi',
    'echo "spot-sweep deadline: could not remove ${instance_id:-this instance} from its group; shutting down" >&2',
    'shutdown -h now',
    'SPOT_SWEEP_DEADLINE',
    `chmod 0755 '${script}'`,
    `systemd-run --unit=${DEADLINE_UNIT} --description='spot-sweep instance deadline' --on-active=${seconds}s --timer-property=AccuracySec=1s '${script}' ||`,
    `  echo "spot-sweep: could not arm the deadline timer; the shutdown in ${backstopMinutes} min remains" >&2`,
    `shutdown -h +${backstopMinutes} 'spot-sweep: instance deadline passed' || echo 'spot-sweep: could not schedule the backstop shutdown' >&2`,
  ];
}
