import { CONFIG_FILES, storeKeys } from '../contract';
import { SweepStore } from '../store';
import { HistoryArtifact } from './history';
import { ConfigArtifacts } from './leaderboard';
import { buildLeaderboardDocument, LeaderboardDocument } from './leaderboard-document';
import { renderReportWithDecision } from './report';
import { renderDecision } from './decision-report';

/**
 * What every config left in the store: results.json, status.json and control.json (a stop request not
 * yet obeyed shows as a note on the config's row), and the results of its earlier job.json versions
 * (history/<digest>/results.json). The one read the leaderboard, the report and the CLI's tables are built from.
 */
export async function readArtifacts(store: SweepStore, sweep: string, configs: readonly string[]): Promise<ConfigArtifacts[]> {
  return Promise.all(
    configs.map(async (config) => {
      const [resultsText, statusText, controlText, history] = await Promise.all([
        store.read(storeKeys.configFile(sweep, config, 'results')),
        store.read(storeKeys.configFile(sweep, config, 'status')),
        store.read(storeKeys.configFile(sweep, config, 'control')),
        readHistory(store, sweep, config),
      ]);
      return { config, resultsText, statusText, controlText, history };
    }),
  );
}

/** history/<digest>/results.json of a config; history/ also keeps unreadable status.json copies, not read here. */
async function readHistory(store: SweepStore, sweep: string, config: string): Promise<HistoryArtifact[]> {
  const prefix = storeKeys.configFile(sweep, config, 'history');
  const results = CONFIG_FILES.results;
  const digests = (await store.list(prefix))
    .map((key) => key.slice(prefix.length))
    .filter((rest) => rest.endsWith(`/${results}`) && rest.split('/').length === 2)
    .map((rest) => rest.split('/')[0]);
  return Promise.all(digests.map(async (digest) => ({ digest, resultsText: await store.read(`${prefix}${digest}/${results}`) })));
}

/**
 * The sweep's leaderboard.json and report.html, rebuilt from the configs' files ({@link readArtifacts})
 * and the guard's spend.json. One function for the results Lambda (on AWS, at every results.json) and
 * `spot-sweep local` (at the end of a local sweep), so a local user reads the same report as an AWS one.
 */
export async function rebuildSweepFiles(
  store: SweepStore,
  sweep: string,
  artifacts: readonly ConfigArtifacts[],
  options: { readonly baseline: string; readonly now?: Date },
): Promise<{ readonly doc: LeaderboardDocument; readonly leaderboardKey: string; readonly reportKey: string }> {
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
