import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { putHeartbeatMetric, putSpendMetrics } from '../../lambda/budget-guard/aws';
import { agentBaseConfig } from '../../lib/constructs/cloudwatch-agent-config';
import { FoundationStack } from '../../lib/foundation-stack';
import { validateSpec } from '../../lib/spec';
import { SweepStack } from '../../lib/sweep-stack';

/**
 * Every metric a dashboard widget or an alarm of a sweep reads is one that something in this repo
 * publishes, with the dimensions it publishes and no unit filter the publisher does not send (an alarm
 * or graph that names a unit matches only datapoints published with that unit).
 * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html
 */

const ROOT = path.join(__dirname, '..', '..');
const CDK_CONTEXT = require('../../cdk.json').context as Record<string, unknown>;

/** A published metric: namespace, name, the dimension names of one published combination, and its unit (undefined: none). */
interface Published {
  readonly namespace: string;
  readonly metricName: string;
  readonly dimensions: readonly string[];
  readonly unit?: string;
  readonly by: string;
}

/** What a widget or alarm reads. */
interface Read {
  readonly namespace: string;
  readonly metricName: string;
  readonly dimensions: Readonly<Record<string, string>>;
  readonly unit?: string;
  readonly where: string;
}

const key = (namespace: string, metricName: string, dimensions: readonly string[]) => `${namespace} ${metricName} {${[...dimensions].sort().join(',')}}`;

/**
 * The CloudWatch agent: the base config's measurements (user data) and the `nvidia_gpu` measurements
 * bootstrap.sh appends, each under the appended dimensions and each aggregation. The agent sends
 * `nvidia_smi_*` without a unit.
 * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-Agent-NVIDIA-GPU.html
 */
function agentPublished(): Published[] {
  const base = agentBaseConfig() as {
    metrics: { namespace: string; append_dimensions: Record<string, string>; aggregation_dimensions: string[][]; metrics_collected: Record<string, { measurement: string[] }> };
  };
  const bootstrap = readFileSync(path.join(ROOT, 'training', 'bootstrap.sh'), 'utf8');
  const heredoc = /<<'GPU_METRICS'\n([\s\S]*?)\nGPU_METRICS\n/.exec(bootstrap);
  if (!heredoc) throw new Error('bootstrap.sh no longer appends a GPU_METRICS agent config; update this test');
  const gpu = JSON.parse(heredoc[1]) as { metrics: { metrics_collected: { nvidia_gpu: { measurement: string[] } } } };
  const names = [
    ...Object.values(base.metrics.metrics_collected).flatMap((m) => m.measurement),
    // The plugin's measurement `utilization_gpu` is the CloudWatch metric `nvidia_smi_utilization_gpu`.
    ...gpu.metrics.metrics_collected.nvidia_gpu.measurement.map((m) => `nvidia_smi_${m}`),
  ];
  const combos = [Object.keys(base.metrics.append_dimensions), ...base.metrics.aggregation_dimensions];
  return names.flatMap((metricName) => combos.map((dimensions) => ({ namespace: base.metrics.namespace, metricName, dimensions, by: 'CloudWatch agent' })));
}

/** The budget guard's PutMetricData call, captured from the Lambda's own code. */
async function guardPublished(): Promise<Published[]> {
  const inputs: any[] = [];
  const client = { send: async (command: { input: unknown }) => void inputs.push(command.input) };
  await putSpendMetrics(client as never, 'tt', 1.5, { single: 0.5, multi: 1 }, new Date(0));
  await putHeartbeatMetric(client as never, 'tt', new Date(0));
  return inputs.flatMap((input) =>
    input.MetricData.map((d: any) => ({
      namespace: input.Namespace,
      metricName: d.MetricName,
      dimensions: d.Dimensions.map((x: any) => x.Name),
      unit: d.Unit,
      by: 'budget guard Lambda (PutMetricData)',
    })),
  );
}

/**
 * Auto Scaling group metrics the groups enable (MetricsCollection), namespace AWS/AutoScaling, dimension AutoScalingGroupName.
 * @see https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-metrics.html
 */
function groupMetricsPublished(resources: Record<string, any>): Published[] {
  return Object.values(resources)
    .filter((r) => r.Type === 'AWS::AutoScaling::AutoScalingGroup')
    .flatMap((r) => (r.Properties.MetricsCollection ?? []).flatMap((c: any) => c.Metrics as string[]))
    .map((metricName) => ({ namespace: 'AWS/AutoScaling', metricName, dimensions: ['AutoScalingGroupName'], by: 'Auto Scaling group metrics' }));
}

/** Fn::Join flattened to a string; any other intrinsic becomes `<ref>`. */
function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  const join = (value as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (join) return join[1].map(flatten).join(join[0]);
  return '<ref>';
}

/** The metrics of every graph widget: `[namespace, name, dimName, dimValue, ..., {options}]`. */
function dashboardReads(resources: Record<string, any>): Read[] {
  return Object.entries(resources)
    .filter(([, r]) => r.Type === 'AWS::CloudWatch::Dashboard')
    .flatMap(([id, r]) => {
      const body = JSON.parse(flatten(r.Properties.DashboardBody)) as { widgets: { properties: { title?: string; metrics?: unknown[][] } }[] };
      return body.widgets.flatMap((w) =>
        (w.properties.metrics ?? []).map((m) => {
          const options = (typeof m[m.length - 1] === 'object' ? m[m.length - 1] : {}) as { unit?: string; expression?: string };
          if (options.expression) throw new Error(`widget "${w.properties.title}": a math expression; extend this test to read its metrics`);
          const parts = m.filter((x) => typeof x === 'string') as string[];
          const dimensions: Record<string, string> = {};
          for (let i = 2; i + 1 < parts.length; i += 2) dimensions[parts[i]] = parts[i + 1];
          return { namespace: parts[0], metricName: parts[1], dimensions, unit: options.unit, where: `${id} widget "${w.properties.title}"` };
        }),
      );
    });
}

function alarmReads(resources: Record<string, any>): Read[] {
  return Object.values(resources)
    .filter((r) => r.Type === 'AWS::CloudWatch::Alarm')
    .flatMap((r) => {
      const p = r.Properties;
      const dims = (list: any[] | undefined) => Object.fromEntries((list ?? []).map((d) => [d.Name, typeof d.Value === 'string' ? d.Value : '<ref>']));
      if (p.MetricName) return [{ namespace: p.Namespace, metricName: p.MetricName, dimensions: dims(p.Dimensions), unit: p.Unit, where: `alarm ${p.AlarmName}` }];
      return (p.Metrics ?? [])
        .filter((q: any) => q.MetricStat)
        .map((q: any) => ({
          namespace: q.MetricStat.Metric.Namespace,
          metricName: q.MetricStat.Metric.MetricName,
          dimensions: dims(q.MetricStat.Metric.Dimensions),
          unit: q.MetricStat.Unit,
          where: `alarm ${p.AlarmName} (${q.Id})`,
        }));
    });
}

describe('every metric the dashboard and the alarms read is published', () => {
  const spec = validateSpec({
    name: 'tt',
    budgetUsd: 40,
    data: 's3://other-data/two-tower/',
    defaults: { instanceTypes: ['g5.xlarge'], maxRuntimeHours: 6, idleMinutes: 15, volumeGb: 150 },
    configs: [{ name: 'single' }, { name: 'multi', instanceTypes: ['g5.12xlarge'], gpus: 4 }],
  });
  const app = new App({ context: CDK_CONTEXT });
  const stack = new SweepStack(app, 'SpotSweep-tt', { spec, foundation: new FoundationStack(app, 'SpotSweep-Foundation') });
  const resources = Template.fromStack(stack).toJSON().Resources as Record<string, any>;
  const groupNames = Object.values(resources)
    .filter((r) => r.Type === 'AWS::AutoScaling::AutoScalingGroup')
    .map((r) => r.Properties.AutoScalingGroupName as string);

  let published: Map<string, Published>;
  beforeAll(async () => {
    published = new Map([...agentPublished(), ...(await guardPublished()), ...groupMetricsPublished(resources)].map((p) => [key(p.namespace, p.metricName, p.dimensions), p]));
  });

  const reads = [...dashboardReads(resources), ...alarmReads(resources)];

  test('the dashboard and the alarms read something', () => {
    expect(reads.filter((r) => r.where.startsWith('alarm')).length).toBeGreaterThanOrEqual(5);
    expect(reads.filter((r) => !r.where.startsWith('alarm')).length).toBeGreaterThanOrEqual(3);
  });

  test('each read names a published metric and dimension set, and a unit only where the publisher sends that unit', () => {
    const problems: string[] = [];
    for (const r of reads) {
      const p = published.get(key(r.namespace, r.metricName, Object.keys(r.dimensions)));
      if (!p) {
        problems.push(`${r.where}: ${key(r.namespace, r.metricName, Object.keys(r.dimensions))} is published by nothing in this repo`);
        continue;
      }
      if (r.unit !== undefined && r.unit !== p.unit) problems.push(`${r.where}: filters on unit ${r.unit}, but the ${p.by} publishes ${r.metricName} with ${p.unit ?? 'no unit'}`);
      const group = r.dimensions.AutoScalingGroupName;
      if (group !== undefined && !groupNames.includes(group)) problems.push(`${r.where}: group ${group} is none of the sweep's groups`);
      if (r.dimensions.Sweep !== undefined && r.dimensions.Sweep !== 'tt') problems.push(`${r.where}: sweep ${r.dimensions.Sweep} is not tt`);
    }
    expect(problems).toEqual([]);
  });
});
