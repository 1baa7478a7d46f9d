import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { METRICS } from '../contract';

/**
 * Metric factories for a sweep: namespaces, names and dimensions come from the contract
 * (training/contract/names.json `metrics`, read through lib/contract). Constructs (fleets, dashboard,
 * the guard's alarm) use these factories; the guard Lambda and the CloudWatch agent publish under the same names.
 */

/** Namespace the CloudWatch agent publishes to by default. */
export const CW_AGENT_NAMESPACE = METRICS.agentNamespace;
/** Namespace of the metrics the guard Lambda publishes (PutMetricData). */
export const SPOT_SWEEP_NAMESPACE = METRICS.namespace;

/**
 * The agent's `nvidia_gpu` plugin publishes `utilization_gpu` as `nvidia_smi_utilization_gpu`
 * (a percentage, per GPU); with `aggregation_dimensions: [["AutoScalingGroupName"]]` it also publishes
 * the average over every GPU of the group under that single dimension. It sends the value WITHOUT a
 * CloudWatch unit ("All of these metrics are collected with no CloudWatch Unit"), so nothing that reads
 * it may name a unit.
 * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-Agent-NVIDIA-GPU.html
 */
export const GPU_UTILIZATION_METRIC = METRICS.gpuUtilization;

/** The agent's `mem` measurement the base config collects (host memory in use, percent). */
export const HOST_MEMORY_METRIC = 'mem_used_percent';

const { group: GROUP, sweep: SWEEP, config: CONFIG } = METRICS.dimensions;

/**
 * GPU utilisation (percent, average over the group's GPUs) of one config's Auto Scaling group.
 *
 * No `unit`: an alarm (or graph) with a Unit reads only datapoints published with that unit, and one
 * whose unit was never published stays INSUFFICIENT_DATA ("We recommend omitting Unit so that you don't
 * inadvertently specify an incorrect unit that is not published for this metric. Doing so causes the
 * alarm to be stuck in the INSUFFICIENT DATA state.").
 * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html
 * @see https://docs.aws.amazon.com/sdk-for-kotlin/api/latest/cloudwatch/aws.sdk.kotlin.services.cloudwatch.model/-put-metric-alarm-request/unit.html
 */
export function gpuUtilizationMetric(groupName: string, props: { period?: Duration; label?: string } = {}): cloudwatch.Metric {
  return agentGroupMetric(GPU_UTILIZATION_METRIC, groupName, props);
}

/** A CloudWatch agent metric of one config's group, averaged over its instances, read without a unit. */
function agentGroupMetric(metricName: string, groupName: string, props: { period?: Duration; label?: string }): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: CW_AGENT_NAMESPACE,
    metricName,
    dimensionsMap: { [GROUP]: groupName },
    statistic: cloudwatch.Stats.AVERAGE,
    period: props.period ?? Duration.minutes(1),
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

/**
 * Host memory in use (percent) of one config's Auto Scaling group, averaged over its instances: the
 * agent's base config (lib/constructs/cloudwatch-agent-config.ts) collects it from boot on. No unit, as
 * for every agent metric read here (whatever unit the agent sends for it, a read without one matches it).
 */
export function hostMemoryMetric(groupName: string, props: { period?: Duration; label?: string } = {}): cloudwatch.Metric {
  return agentGroupMetric(HOST_MEMORY_METRIC, groupName, props);
}

/** Auto Scaling's own metric of in-service instances (enabled by ConfigFleet's `groupMetrics`). */
export const GROUP_IN_SERVICE_METRIC = 'GroupInServiceInstances';

/**
 * Instances in service in one config's group: Amazon EC2 Auto Scaling publishes it in `AWS/AutoScaling`
 * by `AutoScalingGroupName`, every minute, once group metrics are enabled on the group.
 * @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-metrics.html
 */
export function inServiceInstancesMetric(groupName: string, props: { period?: Duration; label?: string } = {}): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: 'AWS/AutoScaling',
    metricName: GROUP_IN_SERVICE_METRIC,
    dimensionsMap: { [GROUP]: groupName },
    statistic: cloudwatch.Stats.MAXIMUM,
    period: props.period ?? Duration.minutes(1),
    label: props.label,
  });
}

/**
 * One datapoint per run of the guard Lambda, published as soon as the run has priced the sweep (before the
 * on-demand switch, the budget stop and the ledger write, so a run that fails part-way still beats). A guard
 * that cannot run at all (deleted, disabled schedule, broken role, throttled) publishes nothing: that silence is
 * what the guard-silent alarm (lib/monitoring/alarms.ts) watches. SampleCount counts the runs in a period.
 */
export function guardHeartbeatMetric(sweep: string, props: { period?: Duration } = {}): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: SPOT_SWEEP_NAMESPACE,
    metricName: METRICS.guardHeartbeat,
    dimensionsMap: { [SWEEP]: sweep },
    statistic: cloudwatch.Stats.SAMPLE_COUNT,
    period: props.period ?? Duration.minutes(1),
  });
}
