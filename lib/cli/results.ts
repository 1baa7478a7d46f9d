import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { buildLeaderboard, formatLeaderboard } from '../results/leaderboard';
import { AwsOptions, AwsSession, bucketStore, loadSweep, parseArgs, UsageError } from './aws';

export const RESULTS_USAGE = 'spot-sweep results <spec.json> [--open [FILE.html]] [--region R] [--bucket NAME]';

/** Exit code of `results --open` when the sweep has no report yet. */
export const RESULTS_EXIT = { noReport: 6 } as const;

export interface ResultsIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
}

/**
 * `spot-sweep results`: the leaderboard built from each config's results.json and status.json in
 * the bucket (the same table as `local`); with `--open`, also copies the collector's report.html to
 * FILE (default ./<sweep>-report.html) and prints its path. Works after `cdk destroy` of the sweep:
 * it needs only the foundation's bucket.
 */
export async function runResults(args: readonly string[], io: ResultsIo): Promise<number> {
  const parsed = parseArgs(args, { optional: { '--open': (next) => next.endsWith('.html') } });
  if (parsed.positional.length > 1) throw new UsageError(`one spec file expected, got ${parsed.positional.length}.`);
  const spec = loadSweep(parsed.positional[0], RESULTS_USAGE);
  const options: AwsOptions = { region: parsed.values.get('--region'), bucket: parsed.values.get('--bucket') };
  const session = await AwsSession.open(options, io.env);
  try {
    const bucket = await session.bucket(options);
    const store = await bucketStore(session, bucket);
    const prefix = `sweeps/${spec.name}`;
    const artifacts = await Promise.all(
      spec.configs.map(async (c) => ({
        config: c.name,
        resultsText: await store.read(`${prefix}/${c.name}/results.json`),
        statusText: await store.read(`${prefix}/${c.name}/status.json`),
      })),
    );
    io.out(`Leaderboard of "${spec.name}" (s3://${bucket}/${prefix}/):\n${formatLeaderboard(buildLeaderboard(artifacts))}`);
    if (!parsed.flags.has('--open')) return 0;
    const html = await store.read(`${prefix}/report.html`);
    if (html === undefined) {
      io.err(`spot-sweep results: s3://${bucket}/${prefix}/report.html does not exist yet; the results collector writes it when a config's results.json arrives.\n`);
      return RESULTS_EXIT.noReport;
    }
    const file = path.resolve(parsed.values.get('--open') ?? `${spec.name}-report.html`);
    writeFileSync(file, html);
    io.out(`Report: ${file}\n`);
    return 0;
  } finally {
    session.close();
  }
}
