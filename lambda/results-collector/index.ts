import { S3Client } from '@aws-sdk/client-s3';
import { storeKeys } from '../../lib/contract';
import { s3Store } from '../../lib/store';
import { requireEnv } from '../shared/env';
import { buildLeaderboardDocument } from './collect';
import { renderDecision } from '../../lib/results/decision-report';
import { renderReportWithDecision } from './report';

/**
 * Rebuilds the sweep's leaderboard.json and report.html whenever a results.json lands (an EventBridge
 * rule on the bucket's Object Created events). Environment (set by lib/constructs/results-collector.ts):
 * SWEEP, BUCKET, CONFIGS (JSON list of config names).
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
  const artifacts = await Promise.all(
    configs.map(async (config) => ({
      config,
      resultsText: await store.read(storeKeys.configFile(sweep, config, 'results')),
      statusText: await store.read(storeKeys.configFile(sweep, config, 'status')),
      // A stop request not yet obeyed shows as a note on the config's row.
      controlText: await store.read(storeKeys.configFile(sweep, config, 'control')),
    })),
  );
  const doc = buildLeaderboardDocument(sweep, artifacts, await store.read(storeKeys.sweepFile(sweep, 'spend')), new Date().toISOString());
  await store.write(storeKeys.sweepFile(sweep, 'leaderboard'), `${JSON.stringify(doc, null, 2)}\n`);
  // lib/store gives .html keys their content type (text/html; charset=utf-8), so the report opens in a browser.
  // The decision section: every config against the baseline, paired by fold (lib/results/compare.ts).
  const costUsd = new Map(doc.rows.flatMap((r) => (r.spendUsd === undefined ? [] : [[r.config, r.spendUsd] as const])));
  const interruptions = new Map(doc.rows.map((r) => [r.config, r.interruptions]));
  const decision = renderDecision({ baseline, costUsd, configs: artifacts.map((a) => ({ ...a, interruptions: interruptions.get(a.config) })) });
  await store.write(storeKeys.sweepFile(sweep, 'report'), renderReportWithDecision(doc, decision.html));
  console.log(JSON.stringify({ level: 'INFO', message: 'leaderboard rebuilt', trigger: event.detail?.object?.key, rows: doc.rows.length, problems: doc.problems }));
  return { rows: doc.rows.length, problems: doc.problems.length };
}
