import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';

/**
 * Metric factories for a sweep: names, namespaces and dimensions as .ci/CONTRACTS.md fixes them
 * ("Issue 5 — shared names"). Constructs (fleets, dashboard) and the guard Lambda's construct use
 * these, so a name is spelled in one place.
 */

/** Namespace the CloudWatch agent publishes to by default. */
export const CW_AGENT_NAMESPACE = 'CWAgent';
/** Namespace of the metrics the guard Lambda and the job runner (EMF) publish. */
export const SPOT_SWEEP_NAMESPACE = 'SpotSweep';

/**
 * The agent's `nvidia_gpu` plugin publishes `utilization_gpu` as `nvidia_smi_utilization_gpu`
 * (percent, per GPU); with `aggregation_dimensions: [["AutoScalingGroupName"]]` it also publishes the
 * average over every GPU of the group under that single dimension.
 * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-Agent-NVIDIA-GPU.html
 */
export const GPU_UTILIZATION_METRIC = 'nvidia_smi_utilization_gpu';

/** GPU utilisation (percent, average over the group's GPUs) of one config's Auto Scaling group. */
export function gpuUtilizationMetric(groupName: string, props: { period?: Duration; label?: string } = {}): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: CW_AGENT_NAMESPACE,
    metricName: GPU_UTILIZATION_METRIC,
    dimensionsMap: { AutoScalingGroupName: groupName },
    statistic: cloudwatch.Stats.AVERAGE,
    period: props.period ?? Duration.minutes(1),
    unit: cloudwatch.Unit.PERCENT,
    label: props.label,
  });
}

/**
 * Instance-hours a config has used so far, over every instance it ever ran (the guard Lambda
 * publishes it from its ledger `sweeps/<sweep>/spend.json`, so a spot replacement does not reset it).
 */
export function instanceHoursMetric(sweep: string, config: string, props: { period?: Duration } = {}): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: SPOT_SWEEP_NAMESPACE,
    metricName: 'InstanceHours',
    dimensionsMap: { Sweep: sweep, Config: config },
    statistic: cloudwatch.Stats.MAXIMUM,
    period: props.period ?? Duration.minutes(5),
  });
}

/** The sweep's spend so far in USD (guard Lambda). */
export function spendMetric(sweep: string, props: { period?: Duration } = {}): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: SPOT_SWEEP_NAMESPACE,
    metricName: 'SpendUsd',
    dimensionsMap: { Sweep: sweep },
    statistic: cloudwatch.Stats.MAXIMUM,
    period: props.period ?? Duration.minutes(5),
    label: 'spend (USD)',
  });
}

/** Metrics the job runner emits as embedded-metric-format log lines, dimensions {Sweep, Config}. */
export type TrainingMetricName = 'Progress' | 'ExamplesPerSecond' | 'TrainLoss';

/**
 * One training metric of one config, from the job runner's EMF lines.
 * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
 */
export function trainingMetric(
  metricName: TrainingMetricName,
  sweep: string,
  config: string,
  props: { period?: Duration; statistic?: string } = {},
): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: SPOT_SWEEP_NAMESPACE,
    metricName,
    dimensionsMap: { Sweep: sweep, Config: config },
    statistic: props.statistic ?? (metricName === 'Progress' ? cloudwatch.Stats.MAXIMUM : cloudwatch.Stats.AVERAGE),
    period: props.period ?? Duration.minutes(5),
    label: config,
  });
}
