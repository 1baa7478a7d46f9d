import { S3Client } from '@aws-sdk/client-s3';
import { readArtifacts, rebuildSweepFiles } from '../../lib/results/sweep-files';
import { s3Store } from '../../lib/store';
import { requireEnv } from '../shared/env';

/**
 * Rebuilds the sweep's leaderboard.json and report.html whenever a results.json lands (an EventBridge
 * rule on the bucket's Object Created events). Environment (set by lib/constructs/results-collector.ts):
 * SWEEP, BUCKET, CONFIGS (JSON list of config names), BASELINE (the config the others are compared with).
 */
const sweep = requireEnv('SWEEP');
const configs = JSON.parse(requireEnv('CONFIGS')) as string[];
const baseline = requireEnv('BASELINE');
const store = s3Store({ client: new S3Client({}), bucket: requireEnv('BUCKET') });

/** The part of the EventBridge `Object Created` event the handler logs. */
interface ObjectCreatedEvent {
  readonly detail?: { readonly object?: { readonly key?: string } };
}

export async function handler(event: ObjectCreatedEvent = {}): Promise<{ rows: number; problems: number }> {
  const { doc } = await rebuildSweepFiles(store, sweep, await readArtifacts(store, sweep, configs), { baseline });
  console.log(JSON.stringify({ level: 'INFO', message: 'leaderboard rebuilt', trigger: event.detail?.object?.key, rows: doc.rows.length, problems: doc.problems }));
  return { rows: doc.rows.length, problems: doc.problems.length };
}
