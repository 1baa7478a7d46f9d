import { S3Client } from '@aws-sdk/client-s3';
import { requireEnv } from '../shared/env';
import { readText, writeText } from '../shared/json-objects';
import { buildLeaderboardDocument, leaderboardKey, reportKey, resultsKey, spendKey, statusKey } from './collect';
import { renderReport } from './report';

/**
 * Rebuilds the sweep's leaderboard.json and report.html whenever a results.json lands (an EventBridge
 * rule on the bucket's Object Created events). Environment (set by lib/constructs/results-collector.ts):
 * SWEEP, BUCKET, CONFIGS (JSON list of config names).
 */
const sweep = requireEnv('SWEEP');
const bucket = requireEnv('BUCKET');
const configs = JSON.parse(requireEnv('CONFIGS')) as string[];
const s3 = new S3Client({});

/** The part of the EventBridge `Object Created` event the handler logs. */
interface ObjectCreatedEvent {
  readonly detail?: { readonly object?: { readonly key?: string } };
}

export async function handler(event: ObjectCreatedEvent = {}): Promise<{ rows: number; problems: number }> {
  const read = async (key: string): Promise<string | undefined> => (await readText(s3, bucket, key))?.text;
  const artifacts = await Promise.all(
    configs.map(async (config) => ({ config, resultsText: await read(resultsKey(sweep, config)), statusText: await read(statusKey(sweep, config)) })),
  );
  const doc = buildLeaderboardDocument(sweep, artifacts, await read(spendKey(sweep)), new Date().toISOString());
  await writeText(s3, bucket, leaderboardKey(sweep), `${JSON.stringify(doc, null, 2)}\n`);
  await writeText(s3, bucket, reportKey(sweep), renderReport(doc), { contentType: 'text/html; charset=utf-8' });
  console.log(JSON.stringify({ level: 'INFO', message: 'leaderboard rebuilt', trigger: event.detail?.object?.key, rows: doc.rows.length, problems: doc.problems }));
  return { rows: doc.rows.length, problems: doc.problems.length };
}
