import { storeKeys } from '../contract';
import { SweepStore } from '../store';
import { buildLeaderboardDocument, LeaderboardDocument } from '../../lambda/results-collector/collect';
import { renderReportWithDecision } from '../../lambda/results-collector/report';
import { renderDecision } from './decision-report';

/**
 * The sweep's leaderboard.json and report.html, rebuilt from what every config left in the store
 * (results.json, status.json, control.json) and the guard's spend.json. One function for the results
 * Lambda (on AWS, at every results.json) and `spot-sweep local` (at the end of a local sweep), so a
 * local user reads the same report as an AWS one.
 */
export async function rebuildSweepFiles(
  store: SweepStore,
  sweep: string,
  configs: readonly string[],
  options: { readonly baseline: string; readonly now?: Date },
): Promise<{ readonly doc: LeaderboardDocument; readonly leaderboardKey: string; readonly reportKey: string }> {
  const artifacts = await Promise.all(
    configs.map(async (config) => ({
      config,
      resultsText: await store.read(storeKeys.configFile(sweep, config, 'results')),
      statusText: await store.read(storeKeys.configFile(sweep, config, 'status')),
      // A stop request not yet obeyed shows as a note on the config's row.
      controlText: await store.read(storeKeys.configFile(sweep, config, 'control')),
    })),
  );
  const doc = buildLeaderboardDocument(sweep, artifacts, await store.read(storeKeys.sweepFile(sweep, 'spend')), (options.now ?? new Date()).toISOString());
  const leaderboardKey = storeKeys.sweepFile(sweep, 'leaderboard');
  const reportKey = storeKeys.sweepFile(sweep, 'report');
  await store.write(leaderboardKey, `${JSON.stringify(doc, null, 2)}\n`);
  // lib/store gives .html keys their content type (text/html; charset=utf-8), so the report opens in a browser.
  // The decision section: every config against the baseline, paired by fold (lib/results/compare.ts).
  const costUsd = new Map(doc.rows.flatMap((r) => (r.spendUsd === undefined ? [] : [[r.config, r.spendUsd] as const])));
  const interruptions = new Map(doc.rows.map((r) => [r.config, r.interruptions]));
  const decision = renderDecision({ baseline: options.baseline, costUsd, configs: artifacts.map((a) => ({ ...a, interruptions: interruptions.get(a.config) })) });
  await store.write(reportKey, renderReportWithDecision(doc, decision.html));
  return { doc, leaderboardKey, reportKey };
}
