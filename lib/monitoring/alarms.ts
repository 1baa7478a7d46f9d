import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { alarmNames } from '../contract';
import { guardHeartbeatMetric, gpuUtilizationMetric, inServiceInstancesMetric, instanceHoursMetric, spendMetric } from './metrics';

/**
 * An alarm evaluates at most one day of data: EvaluationPeriods x Period <= 86400 s for periods of a
 * minute or more.
 * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html
 */
const MAX_ALARM_RANGE_MINUTES = 24 * 60;

export interface IdleGpuAlarmProps {
  readonly sweep: string;
  readonly config: string;
  /** The config's Auto Scaling group name (`SpotSweep-<sweep>-<config>`), the metric's only dimension. */
  readonly groupName: string;
  /** Minutes the GPUs must stay below the threshold before the alarm fires (the spec's `idleMinutes`). */
  readonly idleMinutes: number;
  /**
   * Utilisation (percent, averaged over the group's GPUs) below which a minute counts as idle.
   * @default 5
   */
  readonly thresholdPercent?: number;
}

/**
 * GPU idle: utilisation below the threshold for `idleMinutes` consecutive one-minute periods.
 *
 * Missing data is NOT breaching: the GPU metrics are only published once bootstrap.sh appends the
 * agent's `nvidia_gpu` config (its `gpu-metrics` phase), so the instance's setup (driver wait, CUDA
 * wheel install) has no datapoint and does not count as idle; and with no instance running there is
 * nothing to stop. A hung job whose GPU reads 0 % still breaches.
 *
 * Known gap (runner side, not fixable here): bootstrap.sh appends the GPU config BEFORE it starts the
 * job runner, and the runner then downloads the data set (training/spot_runner/fetch.py) with the GPU
 * at 0 %, so a download longer than `idleMinutes` fires this alarm. No metric published by this repo
 * exists only once training runs, so the alarm cannot tell a download from a hang; the runner must
 * append the agent's `nvidia_gpu` config only after its data (and any checkpoint) is local and just
 * before it starts the trainer.
 *
 * The metric carries no unit: the agent publishes `nvidia_smi_*` without one, and an alarm with a Unit
 * evaluates only datapoints published with that unit, so one with `Percent` stays INSUFFICIENT_DATA.
 * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-Agent-NVIDIA-GPU.html
 * @see https://docs.aws.amazon.com/sdk-for-kotlin/api/latest/cloudwatch/aws.sdk.kotlin.services.cloudwatch.model/-put-metric-alarm-request/unit.html
 */
export function idleGpuAlarm(scope: Construct, id: string, props: IdleGpuAlarmProps): cloudwatch.Alarm {
  const threshold = props.thresholdPercent ?? 5;
  if (!Number.isInteger(props.idleMinutes) || props.idleMinutes < 1 || props.idleMinutes > MAX_ALARM_RANGE_MINUTES) {
    throw new Error(
      `config "${props.config}": idleMinutes ${props.idleMinutes} cannot be alarmed on; CloudWatch evaluates at most ${MAX_ALARM_RANGE_MINUTES} one-minute periods: use a whole number of minutes from 5 to ${MAX_ALARM_RANGE_MINUTES}.`,
    );
  }
  if (!(threshold > 0 && threshold < 100)) {
    throw new Error(`config "${props.config}": idle GPU threshold ${threshold} % is not a percentage between 0 and 100 (exclusive); use e.g. 5.`);
  }
  return new cloudwatch.Alarm(scope, id, {
    alarmName: alarmNames.gpuIdle(props.sweep, props.config),
    alarmDescription: `spot-sweep ${props.sweep}/${props.config}: GPU utilisation below ${threshold} % for ${props.idleMinutes} min; scales the group to zero.`,
    metric: gpuUtilizationMetric(props.groupName, { period: Duration.minutes(1) }),
    threshold,
    comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
    evaluationPeriods: props.idleMinutes,
    datapointsToAlarm: props.idleMinutes,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });
}

export interface MaxRuntimeAlarmProps {
  readonly sweep: string;
  readonly config: string;
  /** The config's Auto Scaling group name (the alarm is named after sweep and config, lib/contract `alarmNames`). */
  readonly groupName: string;
  /** Instance-hours after which the config is stopped (the spec's `maxRuntimeHours`). */
  readonly maxRuntimeHours: number;
}

/**
 * Maximum runtime: the config's instance-hours, summed over every instance it ran (including
 * interrupted spot instances), reach `maxRuntimeHours`. The guard Lambda publishes the sum from its
 * ledger, so a replacement instance does not reset the clock.
 *
 * Missing data is IGNORED (the alarm keeps its state): before the guard's first run there is no
 * datapoint, and treating that as breaching would stop a group the moment it is deployed; a gap in the
 * guard's publishing must neither stop a healthy run nor, once the limit was reached, return the
 * alarm to OK (while in ALARM it keeps invoking the scale-to-zero policy, so a config restarted by
 * hand past its limit is stopped again). Each attempt is also capped by the train document's
 * ExecutionTimeout, independently of this alarm.
 *
 * The metric comes from the guard alone, so a dead guard silences this alarm; that case is the guard-silent
 * alarm's ({@link guardSilentAlarm}: the group goes to zero within 15 minutes of the guard's last run), and each
 * instance's own deadline (lib/constructs/instance-deadline.ts) needs neither.
 */
export function maxRuntimeAlarm(scope: Construct, id: string, props: MaxRuntimeAlarmProps): cloudwatch.Alarm {
  if (!(props.maxRuntimeHours > 0)) {
    throw new Error(`config "${props.config}": maxRuntimeHours ${props.maxRuntimeHours} must be above 0; use e.g. 12.`);
  }
  return new cloudwatch.Alarm(scope, id, {
    alarmName: alarmNames.maxRuntime(props.sweep, props.config),
    alarmDescription: `spot-sweep ${props.sweep}/${props.config}: ${props.maxRuntimeHours} instance-hours used; scales the group to zero.`,
    metric: instanceHoursMetric(props.sweep, props.config),
    threshold: props.maxRuntimeHours,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: cloudwatch.TreatMissingData.IGNORE,
  });
}

/**
 * Minutes without a guard heartbeat, while an instance of the group is in service, after which the
 * guard-silent alarm fires: two schedule intervals (one missed run is tolerated) plus two minutes for the
 * EventBridge trigger's jitter and the run's own time. 12 with the default 5-minute schedule.
 */
export function guardSilentMinutes(scheduleMinutes: number): number {
  return 2 * scheduleMinutes + 2;
}

/**
 * The longest a dead guard leaves a running group alone: the alarm needs `guardSilentMinutes` whole one-minute
 * periods after the one holding the last heartbeat, and CloudWatch evaluates a one-minute alarm every minute,
 * so at most `minutes + 2` after the last heartbeat. Within 15 with the default schedule.
 */
export function guardSilentStopMinutes(scheduleMinutes: number): number {
  return guardSilentMinutes(scheduleMinutes) + 2;
}

export interface GuardSilentAlarmProps {
  readonly sweep: string;
  readonly config: string;
  /** The config's Auto Scaling group name: the alarm fires only while it has an instance in service. */
  readonly groupName: string;
  /** The guard's schedule in whole minutes. */
  readonly scheduleMinutes: number;
}

/**
 * The budget guard's fail-safe, one per config: the group has an instance in service and the guard has not
 * published its heartbeat ({@link guardHeartbeatMetric}) for {@link guardSilentMinutes} one-minute periods.
 * Its action (the config's ScaleToZero policy) needs neither the guard nor any Lambda.
 *
 * `FILL(beats, 0)` turns every minute without a heartbeat into a 0 of the expression, so the count of silent
 * minutes is exact: an alarm on the bare metric would treat gaps through its evaluation range ("CloudWatch uses
 * missing data points only as few times as possible"), which the documentation does not size, and could not
 * promise 15 minutes. `FILL(running, REPEAT)` carries the group's last in-service count over a minute the group
 * metric has not arrived for yet (Auto Scaling publishes it every minute, and the newest minute is often late):
 * filled with 0, such a minute would read "nothing runs", not breaching, and reset the run of 12 silent minutes
 * every time. Missing data is BREACHING for the case the expression yields no datapoint at all.
 *
 * The in-service condition is what keeps a fresh sweep alive: the alarm's first evaluation looks back over
 * minutes in which no guard had run yet, but no instance was in service either (the group is created empty);
 * the guard's first run comes within one schedule interval of the deploy, well inside the window. For the same
 * reason a sweep whose groups are all at zero never sits in ALARM. The group's in-service count comes from
 * Auto Scaling's group metrics (enabled on every group), not from the guard.
 * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html
 * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/using-metric-math.html
 * @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-metrics.html
 */
/** The guard-silent alarm's expression: below 1 (breaching) in a minute with an instance in service and no heartbeat. */
export const GUARD_SILENT_EXPRESSION = 'IF(FILL(running, REPEAT) > 0, FILL(beats, 0), 1)';

export function guardSilentAlarm(scope: Construct, id: string, props: GuardSilentAlarmProps): cloudwatch.Alarm {
  const minutes = guardSilentMinutes(props.scheduleMinutes);
  const period = Duration.minutes(1);
  return new cloudwatch.Alarm(scope, id, {
    alarmName: alarmNames.guardSilent(props.sweep, props.config),
    alarmDescription:
      `spot-sweep ${props.sweep}/${props.config}: the budget guard has not run for ${minutes} min while the group has an instance in service; ` +
      'scales the group to zero (the guard is what enforces the budget and publishes the runtime). See the guard function\'s logs.',
    metric: new cloudwatch.MathExpression({
      expression: GUARD_SILENT_EXPRESSION,
      usingMetrics: { running: inServiceInstancesMetric(props.groupName, { period }), beats: guardHeartbeatMetric(props.sweep, { period }) },
      period,
    }),
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
    evaluationPeriods: minutes,
    datapointsToAlarm: minutes,
    treatMissingData: cloudwatch.TreatMissingData.BREACHING,
  });
}

export interface BudgetAlarmProps {
  readonly sweep: string;
  readonly config: string;
  /** The sweep's budget (USD). */
  readonly budgetUsd: number;
  /** The period of the spend metric: the guard's schedule, at least 5 minutes. */
  readonly period: Duration;
}

/**
 * The sweep's spend reached its budget, one alarm per config (an alarm takes at most 5 actions per state, and a
 * sweep may have more configs), each scaling its config's group to zero. Two consecutive periods at or over the
 * budget: the guard's own budget stop (a stop request, then zero after the grace period) gets its first run to
 * act gracefully; this alarm is for when the guard can publish but not scale. Missing data is IGNORED (a gap is
 * the guard not having run yet, not a lower spend).
 * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html
 */
export function budgetAlarm(scope: Construct, id: string, props: BudgetAlarmProps): cloudwatch.Alarm {
  return new cloudwatch.Alarm(scope, id, {
    alarmName: alarmNames.budget(props.sweep, props.config),
    alarmDescription: `spot-sweep ${props.sweep}/${props.config}: the sweep has spent its budget of ${props.budgetUsd} USD; scales the group to zero.`,
    metric: spendMetric(props.sweep, { period: props.period, label: false }),
    threshold: props.budgetUsd,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 2,
    datapointsToAlarm: 2,
    treatMissingData: cloudwatch.TreatMissingData.IGNORE,
  });
}
