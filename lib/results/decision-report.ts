import { ALPHA, compareConfigs, Comparison, CompareInput, SweepComparison } from './compare';
import { Chart, contendersChart, costChart, deltaChart, escapeText, lossChart } from './charts';

/**
 * The report's decision section (an HTML fragment): which config wins and whether the win is real.
 * A verdict table (each config against the baseline, paired by fold) and the charts of lib/results/charts.ts;
 * the results of earlier job.json versions are the page's History (lib/results/report.ts),
 * never part of this comparison. Self-contained: a scoped <style>, inline SVG, no script, nothing fetched.
 */

export interface DecisionInput extends CompareInput {
  /** Spend per config (the budget guard's spend.json `configs[*].usd`). @default - no cost column values */
  readonly costUsd?: ReadonlyMap<string, number>;
}

const STYLE = `<style>
.decision table { border-collapse: collapse; width: 100%; font-size: 13px; }
.decision th, .decision td { border-bottom: 1px solid #dde1e8; padding: 6px 8px; text-align: left; vertical-align: top; }
.decision td { white-space: normal; overflow-wrap: break-word; } .decision th { background: #f3f5f8; } .decision td.verdict { min-width: 12em; } .decision .scroll { overflow-x: auto; } .decision td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.decision .v-better { color: #17713a; font-weight: 600; } .decision .v-worse { color: #b3261e; font-weight: 600; }
.decision .v-not-comparable { color: #8a5a00; } .decision .v-baseline { color: #0b3d91; } .decision .note { color: #5d6575; font-size: 13px; }
</style>`;

const signed = (v: number, digits = 4): string => `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(digits)}`;
const pText = (p: number): string => (p < 0.001 ? '< 0.001' : p.toFixed(3));
const queries = (qs: readonly number[]): string => (new Set(qs).size === 1 ? String(qs[0]) : qs.join('/'));

function verdictCell(r: Comparison): string {
  const cls = `v-${r.verdict.replace(/ /g, '-')}`;
  const why = r.why ? `<br><span class="note">${escapeText(r.why)}</span>` : '';
  return `<td class="verdict ${cls}">${escapeText(r.verdict)}${why}</td>`;
}

function row(r: Comparison, cost: ReadonlyMap<string, number>): string {
  const p = r.paired;
  const differs = Object.entries(r.differs)
    .map(([k, [mine, theirs]]) => `${k} ${mine} (vs ${theirs})`)
    .join('; ');
  const usd = cost.get(r.config);
  return [
    '<tr>',
    `<td>${escapeText(r.config)}</td>`,
    `<td class="num">${r.mean.toFixed(4)} ± ${r.std.toFixed(4)}</td>`,
    `<td class="num">${p ? `${signed(p.meanDelta)} [${signed(p.ciLow)}, ${signed(p.ciHigh)}]` : '–'}</td>`,
    `<td class="num">${p ? (Number.isFinite(p.t) ? p.t.toFixed(2) : escapeText(p.t > 0 ? '+∞' : '−∞')) : '–'}</td>`,
    `<td class="num">${p ? pText(p.p) : '–'}</td>`,
    verdictCell(r),
    `<td class="num">${escapeText(queries(r.testQueries))}</td>`,
    `<td>${escapeText(differs || (r.verdict === 'baseline' ? '(baseline)' : 'none'))}</td>`,
    `<td>${escapeText(r.instanceType)}, ${escapeText(r.market)}</td>`,
    `<td class="num">${r.interruptions}</td>`,
    `<td class="num">${usd === undefined ? '–' : `$${usd.toFixed(2)}`}</td>`,
    '</tr>',
  ].join('');
}

function chartBlock(title: string, chart: Chart): string {
  const body = chart.svg ?? '';
  const note = chart.note ? `<p class="note">${escapeText(chart.note)}</p>` : '';
  return body || note ? `<h3>${escapeText(title)}</h3>\n${body}\n${note}` : '';
}

/** The decision section, and the comparison it shows (for callers that also want the figures). */
export function renderDecision(input: DecisionInput): { html: string; comparison: SweepComparison } {
  const cmp = compareConfigs(input);
  const cost = input.costUsd ?? new Map<string, number>();
  const folds = new Map<string, number[]>();
  for (const c of input.configs) {
    try {
      const r = JSON.parse(c.resultsText ?? '') as { folds?: { ndcg10: number }[] };
      if (Array.isArray(r.folds)) folds.set(c.config, r.folds.map((f) => f.ndcg10));
    } catch {
      // compareConfigs has already noted an unreadable file; the chart just lacks its dots.
    }
  }
  if (cmp.rows.length === 0) {
    const html = `<section class="decision">${STYLE}<h2>Which config wins</h2><p class="note">No config has train-mode results yet.</p>${cmp.notes.map((n) => `<p class="note">${escapeText(n)}</p>`).join('')}</section>`;
    return { html, comparison: cmp };
  }
  const table = `<div class="scroll"><table>
<thead><tr><th>config</th><th>nDCG@10 (mean ± std)</th><th>Δ vs ${escapeText(cmp.baseline)} [95% CI]</th><th>t</th><th>p</th><th>verdict</th><th>test queries / fold</th><th>settings that differ</th><th>instance type, market</th><th>inter&shy;rup&shy;tions</th><th>cost</th></tr></thead>
<tbody>
${cmp.rows.map((r) => row(r, cost)).join('\n')}
</tbody>
</table></div>`;
  const html = [
    `<section class="decision">${STYLE}`,
    '<h2>Which config wins, and is the win real?</h2>',
    `<p class="note">Each config against the baseline <b>${escapeText(cmp.baseline)}</b>, fold by fold: the folds hold the same test queries when the configs share the data, seed, folds count and examples, so the per-fold difference cancels out how hard each fold is. Δ: mean difference with its 95% confidence interval (Student t, n − 1 degrees of freedom); verdict from the two-sided paired t test at α = ${ALPHA}: "no difference shown" means the folds do not tell the two apart, not that they are equal. Configs with other test sets are "not comparable" and never paired.</p>`,
    table,
    ...cmp.notes.map((n) => `<p class="note">${escapeText(n)}</p>`),
    chartBlock(`Difference to ${cmp.baseline} (paired by fold)`, deltaChart(cmp)),
    chartBlock('Contenders: the configs within reach of the best', contendersChart(cmp, folds)),
    chartBlock('Cost against nDCG@10', costChart(cmp, cost)),
    chartBlock('Training loss per epoch (mean over the folds)', lossChart(cmp)),
    '</section>',
  ];
  return { html: html.filter(Boolean).join('\n'), comparison: cmp };
}
