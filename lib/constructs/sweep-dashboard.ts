import { Duration, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { dashboardName } from '../contract';
import { gpuUtilizationMetric, hostMemoryMetric, inServiceInstancesMetric, spendMetric } from '../monitoring/metrics';

/** What the dashboard shows of one config. */
export interface DashboardConfig {
  readonly config: string;
  /** The config's Auto Scaling group name. */
  readonly groupName: string;
  /** Alarms of the config (idle GPU, maximum runtime). */
  readonly alarms: readonly cloudwatch.IAlarm[];
}

export interface SweepDashboardProps {
  readonly sweepName: string;
  /** The sweep budget, drawn as a horizontal line on the spend graph. */
  readonly budgetUsd: number;
  readonly configs: readonly DashboardConfig[];
  /**
   * The sweep's spend so far (the budget guard's metric).
   * @default - `SpotSweep SpendUsd {Sweep}` (lib/monitoring/metrics.ts)
   */
  readonly spendMetric?: cloudwatch.IMetric;
  /**
   * Sweep-level alarms shown with the configs' (e.g. the budget alarm).
   * @default - none
   */
  readonly sweepAlarms?: readonly cloudwatch.IAlarm[];
}

/**
 * One CloudWatch dashboard per sweep (lib/contract `dashboardName`: `SpotSweep-<sweep>`): GPU utilisation
 * and host memory per config (CloudWatch agent), instances in service per config (Auto Scaling group
 * metrics), spend against the budget (budget guard), and the state of every alarm.
 * @see https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Dashboards.html
 */
export class SweepDashboard extends Construct {
  public readonly dashboard: cloudwatch.Dashboard;
  public readonly dashboardName: string;

  constructor(scope: Construct, id: string, props: SweepDashboardProps) {
    super(scope, id);
    if (props.configs.length === 0) {
      throw new Error(`sweep "${props.sweepName}": the dashboard needs at least one config; add a config to the spec.`);
    }
    if (!(props.budgetUsd > 0)) {
      throw new Error(`sweep "${props.sweepName}": budgetUsd ${props.budgetUsd} must be above 0 to draw the budget line; set e.g. "budgetUsd": 50.`);
    }
    const { sweepName } = props;
    this.dashboardName = dashboardName(sweepName);
    const width = 12;
    const height = 6;

    const gpu = new cloudwatch.GraphWidget({
      title: 'GPU utilisation per config (%)',
      left: props.configs.map((c) => gpuUtilizationMetric(c.groupName, { label: c.config })),
      leftYAxis: { min: 0, max: 100, showUnits: false },
      width,
      height,
    });
    // Every widget reads a metric something publishes (test/monitoring/published-metrics.test.ts): the
    // job runner publishes no training metrics (progress, examples/s and loss are in status.json, read by
    // `spot-sweep status`), so the dashboard shows what Auto Scaling and the agent send.
    const inService = new cloudwatch.GraphWidget({
      title: 'Instances in service per config',
      left: props.configs.map((c) => inServiceInstancesMetric(c.groupName, { label: c.config })),
      leftYAxis: { min: 0, showUnits: false },
      width,
      height,
    });
    const memory = new cloudwatch.GraphWidget({
      title: 'Host memory used per config (%)',
      left: props.configs.map((c) => hostMemoryMetric(c.groupName, { label: c.config })),
      leftYAxis: { min: 0, max: 100, showUnits: false },
      width,
      height,
    });
    const spend = new cloudwatch.GraphWidget({
      title: `Spend against the budget (USD ${props.budgetUsd})`,
      left: [props.spendMetric ?? spendMetric(sweepName)],
      leftAnnotations: [{ value: props.budgetUsd, label: 'budget', color: cloudwatch.Color.RED }],
      leftYAxis: { min: 0, showUnits: false },
      width,
      height,
    });
    // Alarms by name rather than by Fn::GetAtt: the widget needs only their ARNs, and a dashboard that
    // does not reference the alarm resources deploys wherever they are skipped (the moto emulator of
    // the deploy smoke test ignores alarms). Every spot-sweep alarm has an explicit name.
    const alarms = [...props.configs.flatMap((c) => c.alarms), ...(props.sweepAlarms ?? [])].map((alarm, i) => {
      const name = literalAlarmName(alarm);
      return name === undefined ? alarm : cloudwatch.Alarm.fromAlarmName(this, `AlarmRef${i}`, name);
    });
    const alarmStatus = new cloudwatch.AlarmStatusWidget({
      title: 'Alarms (each one scales its config, or the sweep, to zero)',
      alarms,
      width: 24,
      height: Math.max(2, Math.ceil(alarms.length / 4) + 1),
    });

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: this.dashboardName,
      defaultInterval: Duration.hours(12),
      widgets: [
        [
          new cloudwatch.TextWidget({
            markdown: `# spot-sweep: ${sweepName}\nConfigs: ${props.configs.map((c) => `\`${c.config}\``).join(', ')}. Budget USD ${props.budgetUsd}. Training progress, examples/s and loss: \`spot-sweep status\`. GPU metrics start after the instance's setup (bootstrap.sh), before the job's data download.`,
            width: 24,
            height: 2,
          }),
        ],
        [alarmStatus],
        [gpu, spend],
        [inService, memory],
      ],
    });
  }
}

/** The name an alarm was given in this app (its `alarmName` prop), or undefined when CloudFormation names it. */
function literalAlarmName(alarm: cloudwatch.IAlarm): string | undefined {
  const cfn = alarm.node.defaultChild;
  return cfn instanceof cloudwatch.CfnAlarm && typeof cfn.alarmName === 'string' && !Token.isUnresolved(cfn.alarmName) ? cfn.alarmName : undefined;
}
