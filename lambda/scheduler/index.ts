import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { S3Client } from '@aws-sdk/client-s3';
import { SSMClient } from '@aws-sdk/client-ssm';
import { s3Store } from '../../lib/store';
import { requireEnv } from '../shared/env';
import { awsDeps } from './aws';
import { schedule, ScheduleInput, ScheduleResult } from './schedule';

/**
 * The sweep's scheduler (lib/constructs/scheduler.ts), run by an EventBridge schedule and by Auto Scaling's
 * instance-terminated events of the sweep's groups; the event itself is not read, every run looks at the
 * whole sweep. Environment: SWEEP, BUCKET, CONFIGS (JSON list of config names, spec order), MAX_PARALLEL.
 */
const sweep = requireEnv('SWEEP');
const input: ScheduleInput = { sweep, configs: JSON.parse(requireEnv('CONFIGS')) as string[], maxParallel: Number(requireEnv('MAX_PARALLEL')) };
const deps = awsDeps(
  {
    autoscaling: new AutoScalingClient({}),
    ssm: new SSMClient({}),
  },
  s3Store({
    client: new S3Client({}),
    bucket: requireEnv('BUCKET'),
    explain: (err, call) => new Error(`${call} failed: ${(err as Error).message}. The scheduler starts nothing it cannot read the files of; it runs again at the next tick.`),
  }),
  sweep,
);

export async function handler(): Promise<ScheduleResult> {
  return schedule(deps, input);
}
