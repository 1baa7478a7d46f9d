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
 * {config, groupName, market}), SPOT_FAILURES_BEFORE_ON_DEMAND.
 */
const settings: GuardSettings = {
  sweep: requireEnv('SWEEP'),
  budgetUsd: Number(requireEnv('BUDGET_USD')),
  groups: JSON.parse(requireEnv('GROUPS')) as GuardedGroup[],
  spotFailuresBeforeOnDemand: Number(requireEnv('SPOT_FAILURES_BEFORE_ON_DEMAND')),
};
const deps = awsDeps(
  { ec2: new EC2Client({}), autoscaling: new AutoScalingClient({}), cloudwatch: new CloudWatchClient({}), s3: new S3Client({}) },
  requireEnv('BUCKET'),
);

export async function handler(): Promise<{ totalUsd: number; budgetUsd: number; scaledToZero: readonly string[]; switchedToOnDemand: readonly string[] }> {
  const result = await runGuard(deps, settings, new Date());
  const summary = {
    totalUsd: result.ledger.totalUsd,
    budgetUsd: settings.budgetUsd,
    scaledToZero: result.scaledToZero,
    switchedToOnDemand: result.switchedToOnDemand,
  };
  console.log(JSON.stringify({ level: 'INFO', message: 'guard run complete', ...summary }));
  // The run did everything else first; failing now makes the Errors metric show the stale status.json.
  if (result.errors.length > 0) throw new Error(`Budget guard could not update: ${result.errors.join('; ')}`);
  return summary;
}
