import { App, Duration, Stack, Validations } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { AwsSolutionsChecks } from 'cdk-nag';
import { BudgetGuard, BudgetGuardProps, GuardedGroupProps } from '../../lib/constructs/budget-guard';
import { FoundationStack } from '../../lib/foundation-stack';
import { GUARD_SILENT_EXPRESSION, guardSilentStopMinutes } from '../../lib/monitoring/alarms';

type Props = Omit<BudgetGuardProps, 'bucket' | 'instanceRole' | 'groups'> & { groups: Omit<GuardedGroupProps, 'launchTemplates' | 'stopAction'>[] };

/** An alarm action whose ARN names the group it stands for (a ConfigFleet's scale-to-zero policy in a sweep). */
const stopActionOf = (group: string): cloudwatch.IAlarmAction => ({ bind: () => ({ alarmActionArn: `arn:aws:autoscaling:eu-west-1:111111111111:scalingPolicy:x:autoScalingGroupName/${group}:policyName/ScaleToZero` }) });

const GROUPS: Props['groups'] = [
  { config: 'o', groupName: 'SpotSweep-demo-o', market: 'spot', instanceTypes: ['p3.2xlarge'] },
  { config: 'p', groupName: 'SpotSweep-demo-p', market: 'spot-then-on-demand', instanceTypes: ['g5.xlarge', 'g6.xlarge'] },
];

/**
 * A sweep stack using the foundation's bucket and instance role (another stack), as bin/app.ts wires it, each
 * group with a launch template of its own (lt-<config>); cdk-nag registered.
 */
function build(props: Partial<Props> = {}) {
  const app = new App();
  const foundation = new FoundationStack(app, 'SpotSweep-Foundation');
  const stack = new Stack(app, 'SpotSweep-demo');
  const groups = (props.groups ?? GROUPS).map((g) => ({
    ...g,
    launchTemplates: [ec2.LaunchTemplate.fromLaunchTemplateAttributes(stack, `Lt-${g.config}`, { launchTemplateId: `lt-${g.config}` })],
    stopAction: stopActionOf(g.groupName),
  }));
  const guard = new BudgetGuard(stack, 'Budget', { sweepName: 'demo', budgetUsd: 40, bucket: foundation.bucket, instanceRole: foundation.instanceRole, ...props, groups });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack, guard, template: Template.fromStack(stack) };
}

/** Every statement of every IAM policy in the template. */
function statements(template: Template): { Sid?: string; Action: string | string[]; Resource: unknown; Condition?: unknown }[] {
  return Object.values(template.findResources('AWS::IAM::Policy')).flatMap((p) => p.Properties.PolicyDocument.Statement);
}

describe('BudgetGuard', () => {
  const { app, guard, template } = build();

  test('runs on Node.js 22 or newer, arm64, with source maps, a log group with retention and the sweep in its environment', () => {
    const fns = Object.values(template.findResources('AWS::Lambda::Function'));
    expect(fns).toHaveLength(1);
    const fn = fns[0].Properties;
    expect(Number(/^nodejs(\d+)\.x$/.exec(fn.Runtime)![1])).toBeGreaterThanOrEqual(22);
    expect(fn.Architectures).toEqual(['arm64']);
    expect(fn.Timeout).toBe(120);
    expect(fn.Environment.Variables).toMatchObject({
      SWEEP: 'demo',
      BUDGET_USD: '40',
      SPOT_FAILURES_BEFORE_ON_DEMAND: '2',
      STOP_GRACE_SECONDS: '180',
      NODE_OPTIONS: '--enable-source-maps',
      GROUPS: JSON.stringify([
        { config: 'o', groupName: 'SpotSweep-demo-o', market: 'spot' },
        { config: 'p', groupName: 'SpotSweep-demo-p', market: 'spot-then-on-demand' },
      ]),
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
    expect(fn.LoggingConfig.LogGroup.Ref).toMatch(/^BudgetFunctionLogs/);
  });

  test('runs every 5 minutes by default, and on the schedule given', () => {
    template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(5 minutes)', State: 'ENABLED' });
    build({ schedule: Duration.minutes(15) }).template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(15 minutes)' });
  });

  test('gives a stopping job the grace period it is configured with', () => {
    const fn = Object.values(build({ stopGrace: Duration.minutes(4) }).template.findResources('AWS::Lambda::Function'))[0].Properties;
    expect(fn.Environment.Variables.STOP_GRACE_SECONDS).toBe('240');
  });

  test('per config, a budget alarm on SpotSweep SpendUsd {Sweep} that scales that config\'s group to zero, and exposes the metric', () => {
    for (const g of GROUPS) {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: `SpotSweep-demo-${g.config}-budget`,
        Namespace: 'SpotSweep',
        MetricName: 'SpendUsd',
        Dimensions: [{ Name: 'Sweep', Value: 'demo' }],
        Statistic: 'Maximum',
        Period: 300,
        Threshold: 40,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        // Two runs over budget: the guard's own graceful stop (stop request, grace period) comes first.
        EvaluationPeriods: 2,
        DatapointsToAlarm: 2,
        TreatMissingData: 'ignore',
        AlarmActions: [stopActionOf(g.groupName).bind(null as never, null as never).alarmActionArn],
      });
    }
    expect(guard.alarms.map((a) => a.config)).toEqual(['o', 'p']);
    const stat = guard.spendMetric.toMetricConfig().metricStat!;
    expect(stat).toMatchObject({ namespace: 'SpotSweep', metricName: 'SpendUsd', statistic: 'Maximum' });
    expect(stat.dimensions).toEqual([{ Name: 'Sweep', Value: 'demo' }].map((d) => ({ name: d.Name, value: d.Value })));
  });

  test('per config, a guard-silent fail-safe: no heartbeat for 12 one-minute periods while the group has an instance in service scales it to zero', () => {
    for (const g of GROUPS) {
      const [alarm] = Object.values(template.findResources('AWS::CloudWatch::Alarm', { Properties: { AlarmName: `SpotSweep-demo-${g.config}-guard-silent` } }));
      const p = alarm.Properties;
      expect(p).toMatchObject({ ComparisonOperator: 'LessThanThreshold', Threshold: 1, EvaluationPeriods: 12, DatapointsToAlarm: 12, TreatMissingData: 'breaching' });
      expect(p.AlarmActions).toEqual([stopActionOf(g.groupName).bind(null as never, null as never).alarmActionArn]);
      const byId = Object.fromEntries(p.Metrics.map((m: any) => [m.Id, m]));
      const expression = p.Metrics.find((m: any) => m.Expression);
      expect(expression.Expression).toBe(GUARD_SILENT_EXPRESSION);
      expect(byId.beats.MetricStat).toMatchObject({ Metric: { Namespace: 'SpotSweep', MetricName: 'GuardHeartbeat', Dimensions: [{ Name: 'Sweep', Value: 'demo' }] }, Period: 60, Stat: 'SampleCount' });
      expect(byId.running.MetricStat).toMatchObject({
        Metric: { Namespace: 'AWS/AutoScaling', MetricName: 'GroupInServiceInstances', Dimensions: [{ Name: 'AutoScalingGroupName', Value: g.groupName }] },
        Period: 60,
      });
    }
  });

  test('the fail-safe math: it stops a sweep within 15 minutes of the last heartbeat, and lets a fresh sweep and one missed run pass', () => {
    const [alarm] = Object.values(template.findResources('AWS::CloudWatch::Alarm', { Properties: { AlarmName: 'SpotSweep-demo-o-guard-silent' } }));
    const { EvaluationPeriods: periods, DatapointsToAlarm: toAlarm } = alarm.Properties;
    const period = alarm.Properties.Metrics.find((m: any) => m.Expression).Period ?? 60;
    const windowMinutes = (periods * period) / 60;
    const scheduleMinutes = 5;
    expect(toAlarm).toBe(periods);
    // The last heartbeat's own minute, the silent window, one more minute for CloudWatch's next evaluation.
    expect(windowMinutes + 2).toBeLessThanOrEqual(15);
    expect(guardSilentStopMinutes(scheduleMinutes)).toBe(windowMinutes + 2);
    // A fresh sweep: the guard's first run comes at most one schedule after the deploy, an instance is in service no sooner.
    expect(windowMinutes).toBeGreaterThan(scheduleMinutes);
    // One missed run leaves two schedule intervals between heartbeats, under the window.
    expect(windowMinutes).toBeGreaterThan(2 * scheduleMinutes);
  });

  /**
   * The expression's meaning per minute, as the metric math page defines FILL (a constant, or REPEAT: the last
   * value before the gap) and IF; and the alarm's rule: the last `periods` minutes all below the threshold. A
   * model of what we rely on, not of CloudWatch: the canary checks it on a real account.
   */
  const silentMinutes = (expression: string, running: (number | undefined)[], beats: (number | undefined)[]): boolean[] => {
    const mode = /FILL\(running, (\w+)\)/.exec(expression)?.[1];
    let last: number | undefined;
    return running.map((r, i) => {
      if (r !== undefined) last = r;
      const filled = r ?? (mode === 'REPEAT' ? last : Number(mode));
      return (filled ?? 0) > 0 ? (beats[i] ?? 0) < 1 : false;
    });
  };
  const alarms = (minutes: boolean[], periods: number): boolean => minutes.length >= periods && minutes.slice(-periods).every(Boolean);

  test('the expression stops a dead guard\'s sweep although the newest group metric is late, and spares a live guard and a fresh sweep', () => {
    const [alarm] = Object.values(template.findResources('AWS::CloudWatch::Alarm', { Properties: { AlarmName: 'SpotSweep-demo-o-guard-silent' } }));
    const expression: string = alarm.Properties.Metrics.find((m: any) => m.Expression).Expression;
    const periods: number = alarm.Properties.EvaluationPeriods;
    const minutes = 20;
    // The guard died before the window; an instance is in service throughout, its metric two minutes late.
    const lateRunning = Array.from({ length: minutes }, (_, i) => (i < minutes - 2 ? 1 : undefined));
    const noBeats = Array.from({ length: minutes }, () => undefined);
    expect(alarms(silentMinutes(expression, lateRunning, noBeats), periods)).toBe(true);
    // With the in-service count filled with 0 instead, those late minutes read "nothing runs": the alarm would never fire.
    expect(alarms(silentMinutes(expression.replace('FILL(running, REPEAT)', 'FILL(running, 0)'), lateRunning, noBeats), periods)).toBe(false);
    // A live guard beats every 5 minutes.
    const beats = Array.from({ length: minutes }, (_, i) => (i % 5 === 0 ? 1 : undefined));
    expect(alarms(silentMinutes(expression, lateRunning, beats), periods)).toBe(false);
    // A fresh sweep: nothing in service yet, no guard run yet.
    const idle = Array.from({ length: minutes }, () => 0);
    expect(alarms(silentMinutes(expression, idle, noBeats), periods)).toBe(false);
  });

  test('warns when the schedule is too slow for the fail-safe to stop a sweep within 15 minutes', () => {
    const { stack } = build({ schedule: Duration.minutes(15) });
    const warnings = Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('dead guard stops the sweep up to 34 minutes after its last run, not within 15; use a schedule of at most 6 minutes'));
    expect(warnings).toHaveLength(1);
    expect(Annotations.fromStack(build().stack).findWarning('*', Match.stringLikeRegexp('dead guard'))).toHaveLength(0);
  });

  test('IAM: no * action; groups by exact name; metrics in its namespace only; reads under sweeps/demo/, writes only spend.json and control.json', () => {
    const all = statements(template);
    for (const s of all) expect([s.Action].flat().some((a) => a === '*' || a.endsWith(':*'))).toBe(false);
    const bySid = (sid: string) => all.find((s) => s.Sid === sid)!;
    expect(bySid('DescribeInstancesAndSpotPrices')).toMatchObject({ Action: ['ec2:DescribeInstances', 'ec2:DescribeSpotPriceHistory'], Resource: '*' });
    const update = bySid('UpdateSweepGroups');
    expect(update.Action).toBe('autoscaling:UpdateAutoScalingGroup');
    const arns = (update.Resource as { 'Fn::Join': [string, unknown[]] }[]).map((r) => r['Fn::Join'][1].filter((x) => typeof x === 'string').join('|'));
    expect(arns).toEqual([
      'arn:|:autoscaling:|:|:autoScalingGroup:*:autoScalingGroupName/SpotSweep-demo-o',
      'arn:|:autoscaling:|:|:autoScalingGroup:*:autoScalingGroupName/SpotSweep-demo-p',
    ]);
    expect(bySid('PutSpendMetrics')).toMatchObject({ Action: 'cloudwatch:PutMetricData', Condition: { StringEquals: { 'cloudwatch:namespace': 'SpotSweep' } } });
    const keyOf = (r: { 'Fn::Join': [string, unknown[]] }) => r['Fn::Join'][1].filter((x) => typeof x === 'string').join('');
    const reads = bySid('ReadSweepObjects');
    expect(reads.Action).toBe('s3:GetObject');
    expect(keyOf(reads.Resource as never)).toBe('/sweeps/demo/*');
    // One writer per file: never status.json (the job runner's), only the ledger and the stop requests.
    const writes = bySid('WriteLedgerAndStopRequests');
    expect(writes.Action).toBe('s3:PutObject');
    expect((writes.Resource as never[]).map(keyOf).sort()).toEqual(['/sweeps/demo/*/control.json', '/sweeps/demo/spend.json']);
    expect(all.filter((s) => [s.Action].flat().includes('s3:PutObject'))).toHaveLength(1);
    expect(all.filter((s) => JSON.stringify(s.Action).includes('logs:')).map((s) => s.Action)).toEqual([['logs:CreateLogStream', 'logs:PutLogEvents']]);
  });

  test('a missing status.json, control.json or spend.json reads as absent, not denied: ListBucket on the artifact bucket, no s3:prefix condition', () => {
    const list = statements(template).filter((s) => [s.Action].flat().includes('s3:ListBucket'));
    expect(list).toHaveLength(1);
    expect(JSON.stringify(list[0].Resource)).toMatch(/ArtifactsBucket.*Arn/);
    expect(list[0].Condition).toBeUndefined();
  });

  test('may update its groups when Auto Scaling checks the launch templates: RunInstances from the sweep templates only, PassRole of the instance role to EC2, tags at launch', () => {
    const all = statements(template);
    const withAction = (action: string) => all.filter((s) => [s.Action].flat().includes(action));
    const join = (r: unknown) => (r as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1].filter((x) => typeof x === 'string').join('|');

    const [run] = withAction('ec2:RunInstances');
    expect(run.Resource).toBe('*');
    const arnLike = (run.Condition as { ArnLike: Record<string, unknown[]> }).ArnLike['ec2:LaunchTemplate'];
    expect(arnLike.map(join)).toEqual(['arn:|:ec2:|:|:launch-template/lt-o', 'arn:|:ec2:|:|:launch-template/lt-p']);

    const [pass] = withAction('iam:PassRole');
    expect(JSON.stringify(pass.Resource)).toMatch(/ExportsOutputFnGetAttInstanceRole.*Arn/);
    expect(pass.Condition).toEqual({ StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } });

    const [tag] = withAction('ec2:CreateTags');
    expect(join(tag.Resource)).toBe('arn:|:ec2:|:|:*/*');
    expect(tag.Condition).toEqual({ StringEquals: { 'ec2:CreateAction': 'RunInstances' } });
    for (const s of [run, pass, tag]) expect([s.Action].flat()).toHaveLength(1);
  });

  test('cdk-nag AwsSolutions reports no unacknowledged finding', () => {
    expect(new AwsSolutionsChecks().validateScope(app).violations.map((v) => `${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
  });

  test('fails when the budget, the schedule, the limit or a group name is wrong, naming every problem', () => {
    expect(() =>
      build({
        budgetUsd: 0,
        schedule: Duration.seconds(90),
        spotFailuresBeforeOnDemand: 0,
        stopGrace: Duration.seconds(30),
        groups: [{ config: 'o', groupName: 'my-group', market: 'spot', instanceTypes: ['g5.xlarge'] }],
      }),
    ).toThrow(
      /budgetUsd is 0; give the sweep a budget above 0 USD\.[\s\S]*schedule is 90 s; use whole minutes[\s\S]*spotFailuresBeforeOnDemand is 0[\s\S]*stopGrace is 30 s[\s\S]*group of config "o" is named "my-group"; name it SpotSweep-demo-o/,
    );
  });
});
