import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { EC2Client } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { requireEnv } from '../shared/env';
import { awsDeps } from './aws';
import { GuardedGroup, GuardSettings, runGuard } from './guard';

/**
 * The sweep budget guard, run by an EventBridge schedule. Environment (set by
 * lib/constructs/budget-guard.ts): SWEEP, BUCKET, BUDGET_USD, GROUPS (JSON list of
 * {config, groupName, market}), SPOT_FAILURES_BEFORE_ON_DEMAND, STOP_GRACE_SECONDS.
 */
const settings: GuardSettings = {
  sweep: requireEnv('SWEEP'),
  budgetUsd: Number(requireEnv('BUDGET_USD')),
  groups: JSON.parse(requireEnv('GROUPS')) as GuardedGroup[],
  spotFailuresBeforeOnDemand: Number(requireEnv('SPOT_FAILURES_BEFORE_ON_DEMAND')),
  stopGraceSeconds: Number(requireEnv('STOP_GRACE_SECONDS')),
};
const deps = awsDeps(
  { ec2: new EC2Client({}), autoscaling: new AutoScalingClient({}), cloudwatch: new CloudWatchClient({}), s3: new S3Client({}) },
  requireEnv('BUCKET'),
);

export interface GuardSummary {
  readonly totalUsd: number;
  readonly budgetUsd: number;
  readonly switchedToOnDemand: readonly string[];
  readonly stopRequested: readonly string[];
  readonly scaledToZero: readonly string[];
  readonly waitingForStop: readonly string[];
}

export async function handler(): Promise<GuardSummary> {
  const result = await runGuard(deps, settings, new Date());
  const summary: GuardSummary = {
    totalUsd: result.ledger.totalUsd,
    budgetUsd: settings.budgetUsd,
    switchedToOnDemand: result.switchedToOnDemand,
    stopRequested: result.stopRequested,
    scaledToZero: result.scaledToZero,
    waitingForStop: result.waitingForStop,
  };
  console.log(JSON.stringify({ level: 'INFO', message: 'guard run complete', ...summary }));
  // The run did everything else first; failing now makes the function's Errors metric show it.
  if (result.errors.length > 0) throw new Error(`Budget guard run had problems: ${result.errors.join('; ')}`);
  return summary;
}
