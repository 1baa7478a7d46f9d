import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { idleGpuAlarm, maxRuntimeAlarm } from '../../lib/monitoring/alarms';
import { gpuUtilizationMetric, hostMemoryMetric, inServiceInstancesMetric, instanceHoursMetric, spendMetric } from '../../lib/monitoring/metrics';

const stack = () => new Stack(new App(), 'Test');

describe('metric factories (names from .ci/CONTRACTS.md)', () => {
  test('GPU utilisation: CWAgent nvidia_smi_utilization_gpu by AutoScalingGroupName, one-minute average', () => {
    const m = gpuUtilizationMetric('SpotSweep-s-c');
    expect([m.namespace, m.metricName, m.dimensions, m.statistic, m.period.toSeconds()]).toEqual([
      'CWAgent',
      'nvidia_smi_utilization_gpu',
      { AutoScalingGroupName: 'SpotSweep-s-c' },
      'Average',
      60,
    ]);
  });

  test('guard and job runner metrics live in SpotSweep with the agreed dimensions', () => {
    expect([spendMetric('s').namespace, spendMetric('s').metricName, spendMetric('s').dimensions]).toEqual(['SpotSweep', 'SpendUsd', { Sweep: 's' }]);
    expect([instanceHoursMetric('s', 'c').metricName, instanceHoursMetric('s', 'c').dimensions]).toEqual(['InstanceHours', { Sweep: 's', Config: 'c' }]);
  });

  test('no metric read from the agent or Auto Scaling names a unit (the agent sends nvidia_smi_* with none)', () => {
    for (const m of [gpuUtilizationMetric('g'), hostMemoryMetric('g'), inServiceInstancesMetric('g')]) expect(m.unit).toBeUndefined();
    expect([inServiceInstancesMetric('g').namespace, inServiceInstancesMetric('g').metricName, inServiceInstancesMetric('g').dimensions]).toEqual([
      'AWS/AutoScaling',
      'GroupInServiceInstances',
      { AutoScalingGroupName: 'g' },
    ]);
  });
});

describe('alarm factories', () => {
  test('idle GPU: below the threshold for idleMinutes one-minute periods, missing data not breaching', () => {
    const s = stack();
    idleGpuAlarm(s, 'Idle', { sweep: 's', config: 'c', groupName: 'SpotSweep-s-c', idleMinutes: 20, thresholdPercent: 3 });
    Template.fromStack(s).hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'SpotSweep-s-c-gpu-idle',
      Threshold: 3,
      ComparisonOperator: 'LessThanThreshold',
      EvaluationPeriods: 20,
      DatapointsToAlarm: 20,
      Period: 60,
      TreatMissingData: 'notBreaching',
    });
  });

  test('idle GPU: the alarm names no Unit, so it matches the agent unit-less nvidia_smi_utilization_gpu datapoints', () => {
    const s = stack();
    idleGpuAlarm(s, 'Idle', { sweep: 's', config: 'c', groupName: 'SpotSweep-s-c', idleMinutes: 20 });
    Template.fromStack(s).hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'CWAgent',
      MetricName: 'nvidia_smi_utilization_gpu',
      Dimensions: [{ Name: 'AutoScalingGroupName', Value: 'SpotSweep-s-c' }],
      Unit: Match.absent(),
    });
  });

  test('maximum runtime: instance-hours at or above the limit, missing data ignored', () => {
    const s = stack();
    maxRuntimeAlarm(s, 'Runtime', { sweep: 's', config: 'c', groupName: 'SpotSweep-s-c', maxRuntimeHours: 12 });
    Template.fromStack(s).hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'SpotSweep-s-c-max-runtime',
      Namespace: 'SpotSweep',
      MetricName: 'InstanceHours',
      Threshold: 12,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      EvaluationPeriods: 1,
      TreatMissingData: 'ignore',
    });
  });

  test('fails when idleMinutes exceeds the one day an alarm can evaluate', () => {
    expect(() => idleGpuAlarm(stack(), 'Idle', { sweep: 's', config: 'c', groupName: 'g', idleMinutes: 1441 })).toThrow(/idleMinutes 1441 cannot be alarmed on/);
  });

  test('fails when the idle threshold is not a percentage', () => {
    expect(() => idleGpuAlarm(stack(), 'Idle', { sweep: 's', config: 'c', groupName: 'g', idleMinutes: 10, thresholdPercent: 0 })).toThrow(/threshold 0 % is not a percentage/);
  });

  test('fails when maxRuntimeHours is not above 0', () => {
    expect(() => maxRuntimeAlarm(stack(), 'Runtime', { sweep: 's', config: 'c', groupName: 'g', maxRuntimeHours: 0 })).toThrow(/maxRuntimeHours 0 must be above 0/);
  });
});
