import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { METRICS } from '../contract';

/**
 * Metric factories for a sweep: namespaces, names and dimensions come from the contract
 * (training/contract/names.json `metrics`, read through lib/contract). Constructs (fleets, dashboard,
 * the guard's alarm) use these factories; the guard Lambda and the job runner publish under the same names.
 */

/** Namespace the CloudWatch agent publishes to by default. */
export const CW_AGENT_NAMESPACE = METRICS.agentNamespace;
/** Namespace of the metrics the guard Lambda and the job runner (EMF) publish. */
export const SPOT_SWEEP_NAMESPACE = METRICS.namespace;

/**
 * The agent's `nvidia_gpu` plugin publishes `utilization_gpu` as `nvidia_smi_utilization_gpu`
 * (percent, per GPU); with `aggregation_dimensions: [["AutoScalingGroupName"]]` it also publishes the
 * average over every GPU of the group under that single dimension.
 * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-Agent-NVIDIA-GPU.html
 */
export const GPU_UTILIZATION_METRIC = METRICS.gpuUtilization;

const { group: GROUP, sweep: SWEEP, config: CONFIG } = METRICS.dimensions;

/** GPU utilisation (percent, average over the group's GPUs) of one config's Auto Scaling group. */
export function gpuUtilizationMetric(groupName: string, props: { period?: Duration; label?: string } = {}): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: CW_AGENT_NAMESPACE,
    metricName: GPU_UTILIZATION_METRIC,
    dimensionsMap: { [GROUP]: groupName },
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
    metricName: METRICS.instanceHours,
    dimensionsMap: { [SWEEP]: sweep, [CONFIG]: config },
    statistic: cloudwatch.Stats.MAXIMUM,
    period: props.period ?? Duration.minutes(5),
  });
}

/**
 * The sweep's spend so far in USD (guard Lambda). `label: false` leaves the metric unlabelled, as an
 * alarm needs it: CDK renders a labelled metric of an alarm as a metric-math expression.
 */
export function spendMetric(sweep: string, props: { period?: Duration; label?: string | false } = {}): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: SPOT_SWEEP_NAMESPACE,
    metricName: METRICS.spendUsd,
    dimensionsMap: { [SWEEP]: sweep },
    statistic: cloudwatch.Stats.MAXIMUM,
    period: props.period ?? Duration.minutes(5),
    label: props.label === false ? undefined : (props.label ?? 'spend (USD)'),
  });
}

/** Metrics the job runner emits as embedded-metric-format log lines, dimensions {Sweep, Config}. */
export type TrainingMetric = 'progress' | 'examplesPerSecond' | 'trainLoss';
/** The published names of those metrics (`Progress`, `ExamplesPerSecond`, `TrainLoss`). */
export type TrainingMetricName = (typeof METRICS)[TrainingMetric];

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
    dimensionsMap: { [SWEEP]: sweep, [CONFIG]: config },
    statistic: props.statistic ?? (metricName === METRICS.progress ? cloudwatch.Stats.MAXIMUM : cloudwatch.Stats.AVERAGE),
    period: props.period ?? Duration.minutes(5),
    label: config,
  });
}
