import { storeKeys } from '../contract';
import { BUILT_IN_METRIC } from './leaderboard';
import { LeaderboardDocument, LeaderboardEntry } from './leaderboard-document';

/**
 * sweeps/<sweep>/report.html: one self-contained page (inline CSS and SVG, no script, no request to
 * anywhere), so it opens from S3, a laptop's disk or an e-mail attachment alike. Every string that
 * comes from the sweep's files goes through `escapeHtml`. A script-mode config that declares a metric named
 * nDCG@10 is ranked beside the built-in trainer's configs; one with another metric is ranked among the
 * configs of that metric (its score cell names it); one with no metric is a row without a score, its
 * result files named in the note; none of them is a problem. The charts are the decision section's
 * (lib/results/decision-report.ts), zoomed to the configs in reach of the best.
 */

/** Escapes text for HTML element content and double- or single-quoted attributes. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const fixed = (v: number | undefined, digits: number): string => (v === undefined ? '–' : v.toFixed(digits));

function duration(seconds: number | undefined): string {
  if (seconds === undefined) return '–';
  if (seconds < 90) return `${seconds.toFixed(0)} s`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(2)} h`;
}

const STYLE = `
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #1d2330; margin: 24px auto; max-width: 1100px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.muted, .note { color: #5d6575; } .note { font-size: 13px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { border-bottom: 1px solid #dde1e8; padding: 6px 8px; text-align: left; vertical-align: top; }
td { white-space: nowrap; } td.text { white-space: normal; overflow-wrap: anywhere; min-width: 10em; }
th { background: #f3f5f8; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.state-SUCCEEDED { color: #17713a; } .state-FAILED { color: #b3261e; } .state-STOPPED { color: #8a5a00; }
svg { max-width: 100%; height: auto; background: #fff; }
ul.problems li { color: #b3261e; }
`;

function row(r: LeaderboardEntry, sweep: string): string {
  const cells = [
    `<td class="num">${r.rank ?? '–'}</td>`,
    `<td>${escapeHtml(r.config)}</td>`,
    `<td class="state-${escapeHtml(r.state)}">${escapeHtml(r.state)}</td>`,
    `<td class="num">${escapeHtml(scoreCell(r))}</td>`,
    `<td class="num">${r.folds?.length ?? '–'}</td>`,
    `<td class="num">${r.spendUsd === undefined ? '–' : `$${r.spendUsd.toFixed(2)}`}</td>`,
    `<td class="num">${duration(r.totalSeconds)}</td>`,
    `<td class="num">${r.examplesPerSecond === undefined ? '–' : Math.round(r.examplesPerSecond).toLocaleString('en-US')}</td>`,
    `<td class="text">${escapeHtml(r.device ?? '–')}</td>`,
    `<td class="text">${escapeHtml(r.instanceType ?? '–')}</td>`,
    `<td class="text">${escapeHtml(r.market ?? '–')}</td>`,
    `<td class="num">${r.interruptions ?? '–'}</td>`,
    `<td class="text">${modelCell(r, sweep)}</td>`,
    `<td class="text">${escapeHtml(note(r))}</td>`,
  ];
  return `<tr${r.mode === 'script' ? ' class="mode-script"' : ''}>${cells.join('')}</tr>`;
}

/**
 * The model cell: links to the final model's files, relative to the report (which sits at
 * sweeps/<sweep>/report.html, above the configs' folders), so they open from a local store, from a
 * `results --download` folder (the same layout) and from the bucket's console path alike.
 */
function modelCell(r: LeaderboardEntry, sweep: string): string {
  if (!r.model) return '–';
  const prefix = storeKeys.sweep(sweep);
  if (!r.model.key.startsWith(prefix)) return escapeHtml(r.model.key);
  const rel = r.model.key.slice(prefix.length).split('/').map(encodeURIComponent).join('/');
  const sha = r.model.sha256.replace(/^sha256:/, '').slice(0, 12);
  return `<a href="${escapeHtml(rel)}model.json">model.json</a> · <a href="${escapeHtml(rel)}model.safetensors">weights</a> <code title="SHA-256 of model.safetensors">${escapeHtml(sha)}</code>`;
}

/** The score cell: nDCG@10 as mean ± std; another metric named, with its direction; a script without one says so. */
function scoreCell(r: LeaderboardEntry): string {
  const s = r.score;
  if (!s) return r.mode === 'script' && r.state === 'SUCCEEDED' ? 'no metric' : '–';
  const value = `${s.mean.toFixed(4)} ± ${s.std === undefined ? '–' : s.std.toFixed(4)}`;
  return s.name === BUILT_IN_METRIC && s.higherIsBetter ? value : `${s.name}${s.higherIsBetter ? '' : ' (lower is better)'}: ${value}`;
}

/** The note cell: what is wrong, then what is worth knowing (a script's files, a pending stop). */
function note(r: LeaderboardEntry): string {
  const files = r.mode === 'script' && r.resultFiles && r.resultFiles.length > 0 ? ` (${r.resultFiles.slice(0, 5).join(', ')}${r.resultFiles.length > 5 ? ', …' : ''})` : '';
  return [r.problem, r.note ? `${r.note}${files}` : undefined].filter(Boolean).join('; ');
}

/**
 * Results of earlier job.json versions, below the ranking and apart from it: they are another job's
 * results (the config was changed and run again), so they never take a rank.
 */
function historySection(doc: LeaderboardDocument): string {
  const history = doc.history ?? [];
  if (history.length === 0) return '';
  const rows = history.map((h) => {
    const score = h.ndcg10 ? `${h.ndcg10.mean.toFixed(4)} ± ${h.ndcg10.std === undefined ? '–' : h.ndcg10.std.toFixed(4)}` : '–';
    const digest = h.jobDigest.replace(/^sha256:/, '').slice(0, 16);
    return `<tr class="history"><td>${escapeHtml(h.config)}</td><td><code>${escapeHtml(digest)}</code></td><td class="num">${escapeHtml(score)}</td><td class="num">${h.folds ?? '–'}</td><td>${escapeHtml(h.finishedAt ?? '–')}</td><td class="text">${escapeHtml(h.note ?? '')}</td></tr>`;
  });
  return `<h2>History</h2>
<p class="note">Results of earlier job.json versions: when a config was changed and run again, the job runner kept its earlier results under ${escapeHtml(storeKeys.configFile(doc.sweep, '<config>', 'history'))}&lt;job digest&gt;/results.json. They are another job's results, so they are listed here and never ranked.</p>
<table>
<thead><tr><th>config</th><th>earlier job</th><th class="num">nDCG@10 (mean ± std)</th><th class="num">folds</th><th>finished</th><th>note</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>`;
}

/** The whole report page. */
export function renderReport(doc: LeaderboardDocument): string {
  const spend =
    doc.totalSpendUsd === undefined
      ? 'Spend: not measured yet (the budget guard has not run).'
      : `Spend so far: $${fixed(doc.totalSpendUsd, 2)}${doc.budgetUsd === undefined ? '' : ` of a $${fixed(doc.budgetUsd, 2)} budget`}.`;
  const scriptNote = doc.rows.some((r) => r.mode === 'script')
    ? `<p class="note">Script-mode configs run your own script. One that declares a metric (script.metric) named nDCG@10 ranks with the built-in trainer's configs; another metric ranks among the configs of that metric (rank 1 is the best of each); one without a metric has no score. Their result files are under ${escapeHtml(storeKeys.configFile(doc.sweep, '<config>', 'scriptResults'))} in the bucket.</p>`
    : '';
  const problems =
    doc.problems.length === 0 ? '' : `<h2>Problems</h2>\n<ul class="problems">${doc.problems.map((p) => `<li>${escapeHtml(p)}</li>`).join('')}</ul>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>spot-sweep report: ${escapeHtml(doc.sweep)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>Sweep ${escapeHtml(doc.sweep)}</h1>
<p class="muted">Generated ${escapeHtml(doc.generatedAt)}. ${escapeHtml(spend)}</p>
<h2>Configs</h2>
<table>
<thead><tr><th class="num">rank</th><th>config</th><th>state</th><th class="num">nDCG@10 (mean ± std)</th><th class="num">folds</th><th class="num">cost</th><th class="num">runtime</th><th class="num">examples/s</th><th>device</th><th>instance type</th><th>market</th><th class="num">interruptions survived</th><th>model</th><th>note</th></tr></thead>
<tbody>
${doc.rows.map((r) => row(r, doc.sweep)).join('\n')}
</tbody>
</table>
${scriptNote}
<p class="note">Cost: instance-hours × price (spot price history for spot instances, the on-demand list price otherwise), from the budget guard's spend.json; storage and data transfer are not included. Runtime: the trainer's total wall time.</p>
${historySection(doc)}
${problems}
</body>
</html>
`;
}

/**
 * The report page with the decision section (lib/results/decision-report.ts `renderDecision`) placed
 * before the config table, where a reader looks for which config wins.
 */
export function renderReportWithDecision(doc: LeaderboardDocument, decisionHtml: string): string {
  const page = renderReport(doc);
  const at = page.includes('<h2>Configs</h2>') ? '<h2>Configs</h2>' : '</body>';
  return page.replace(at, () => `${decisionHtml}\n${at}`);
}
