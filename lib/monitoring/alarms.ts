import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { alarmNames } from '../contract';
import { gpuUtilizationMetric, instanceHoursMetric } from './metrics';

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
