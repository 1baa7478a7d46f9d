import { Comparison, SweepComparison } from './compare';

/**
 * The decision report's charts: self-contained inline SVG (styles as attributes, no script, no external
 * reference), every text from the sweep's files escaped. Each chart zooms its axis to what it must show
 * and labels it with round steps (1, 2 or 5 × 10^k).
 */

/** Escapes text for SVG/HTML content and quoted attributes (config names are user input). */
export function escapeText(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Round tick values covering [lo, hi]: about `target` steps of 1, 2 or 5 × 10^k. */
export function niceTicks(lo: number, hi: number, target = 5): { ticks: number[]; step: number; lo: number; hi: number } {
  if (!(hi > lo)) {
    const pad = Math.abs(lo) > 0 ? Math.abs(lo) * 0.01 : 0.001;
    return niceTicks(lo - pad, hi + pad, target);
  }
  const raw = (hi - lo) / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  // The round step whose number of intervals is nearest the target (ties: the coarser step).
  const step = [0.5, 1, 2, 5, 10]
    .map((m) => m * mag)
    .reduce((best, s) => (Math.abs((hi - lo) / s - target) <= Math.abs((hi - lo) / best - target) ? s : best));
  const start = Math.floor(lo / step + 1e-9) * step;
  const end = Math.ceil(hi / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let v = start; v <= end + step / 2; v += step) ticks.push(Number(v.toFixed(12)));
  return { ticks, step, lo: start, hi: end };
}

/** A tick label with just the decimals the step needs. */
export function tickLabel(v: number, step: number): string {
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  const text = (Object.is(v, -0) ? 0 : v).toFixed(decimals);
  return /^-0\.?0*$/.test(text) ? text.slice(1) : text;
}

const COLORS = { better: '#17713a', worse: '#b3261e', 'no difference shown': '#5d6575', 'not comparable': '#8a5a00', baseline: '#0b3d91' } as const;
const FONT = 'font-family="system-ui, sans-serif"';
const f1 = (v: number): string => v.toFixed(1);

function svgOpen(id: string, title: string, width: number, height: number): string {
  return `<svg viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-labelledby="${id}-title" class="${id}" ${FONT}><title id="${id}-title">${escapeText(title)}</title><rect width="${width}" height="${height}" fill="#ffffff"/>`;
}

export interface Chart {
  /** The SVG, or undefined when there is nothing to draw (then `note` says why). */
  readonly svg?: string;
  /** What the reader should know: configs left out, data that is missing. */
  readonly note?: string;
}

/** (a) Each comparable config's mean paired difference to the baseline with its 95% interval, and the zero line. */
export function deltaChart(cmp: SweepComparison): Chart {
  const rows = cmp.rows.filter((r) => r.paired);
  const left = cmp.rows.filter((r) => r.verdict === 'not comparable').map((r) => r.config);
  const leftNote = left.length > 0 ? `Not drawn (not comparable with ${cmp.baseline}): ${left.join(', ')}.` : undefined;
  if (rows.length === 0) return { note: leftNote ?? `No config to compare with ${cmp.baseline} yet.` };
  const width = 960;
  const labelW = 200;
  const right = 170;
  const rowH = 36;
  const top = 16;
  const axisH = 44;
  const height = top + rows.length * rowH + axisH;
  const lo = Math.min(0, ...rows.map((r) => r.paired!.ciLow));
  const hi = Math.max(0, ...rows.map((r) => r.paired!.ciHigh));
  const pad = (hi - lo) * 0.08;
  const axis = niceTicks(lo - pad, hi + pad, 6);
  const x = (v: number): number => labelW + ((v - axis.lo) / (axis.hi - axis.lo)) * (width - labelW - right);
  const parts = [svgOpen('delta-chart', `nDCG@10 difference to ${cmp.baseline}, paired by fold: mean and 95% confidence interval`, width, height)];
  const plotBottom = top + rows.length * rowH;
  for (const t of axis.ticks) {
    parts.push(`<line x1="${f1(x(t))}" x2="${f1(x(t))}" y1="${top}" y2="${plotBottom}" stroke="#e6e9ef"/>`);
    parts.push(`<text x="${f1(x(t))}" y="${plotBottom + 18}" text-anchor="middle" font-size="12" fill="#5d6575">${tickLabel(t, axis.step)}</text>`);
  }
  parts.push(`<line class="zero" x1="${f1(x(0))}" x2="${f1(x(0))}" y1="${top - 6}" y2="${plotBottom}" stroke="#1d2330" stroke-width="1.5"/>`);
  parts.push(`<text x="${f1((labelW + width - right) / 2)}" y="${plotBottom + 38}" text-anchor="middle" font-size="13" fill="#5d6575">nDCG@10 minus ${escapeText(cmp.baseline)}'s, per fold (0 = no difference)</text>`);
  rows.forEach((r, i) => {
    const p = r.paired!;
    const cy = top + rowH * (i + 0.5);
    const color = COLORS[r.verdict];
    parts.push(`<g class="delta" data-verdict="${escapeText(r.verdict)}"><title>${escapeText(r.config)}: ${p.meanDelta.toFixed(4)} [${p.ciLow.toFixed(4)}, ${p.ciHigh.toFixed(4)}], p = ${p.p.toFixed(3)}: ${r.verdict}</title>`);
    parts.push(`<text x="${labelW - 10}" y="${f1(cy + 4)}" text-anchor="end" font-size="13" fill="#1d2330">${escapeText(r.config)}</text>`);
    parts.push(`<line x1="${f1(x(p.ciLow))}" x2="${f1(x(p.ciHigh))}" y1="${f1(cy)}" y2="${f1(cy)}" stroke="${color}" stroke-width="3"/>`);
    for (const v of [p.ciLow, p.ciHigh]) parts.push(`<line x1="${f1(x(v))}" x2="${f1(x(v))}" y1="${f1(cy - 7)}" y2="${f1(cy + 7)}" stroke="${color}" stroke-width="2"/>`);
    parts.push(`<circle cx="${f1(x(p.meanDelta))}" cy="${f1(cy)}" r="6" fill="${color}"/>`);
    parts.push(`<text x="${width - right + 10}" y="${f1(cy + 4)}" font-size="12" fill="${color}">${escapeText(r.verdict)}</text></g>`);
  });
  parts.push('</svg>');
  return { svg: parts.join('\n'), note: leftNote };
}

/** Configs within reach of the best: mean + 2 std at least the best's mean - 2 std. */
export function contenders(rows: readonly Comparison[]): { near: Comparison[]; far: Comparison[] } {
  const best = rows.reduce<Comparison | undefined>((b, r) => (!b || r.mean > b.mean ? r : b), undefined);
  if (!best) return { near: [], far: [] };
  const floor = best.mean - 2 * best.std;
  const near = rows.filter((r) => r.mean + 2 * r.std >= floor);
  return { near, far: rows.filter((r) => !near.includes(r)) };
}

/** (b) The contenders' nDCG@10: each fold as a dot, mean ± std, on an axis zoomed to them alone. */
export function contendersChart(cmp: SweepComparison, foldScores: ReadonlyMap<string, readonly number[]>): Chart {
  const { near, far } = contenders(cmp.rows);
  const note = far.length > 0 ? `Left out, far below the best: ${far.map((r) => `${r.config} (${r.mean.toFixed(4)})`).join(', ')}.` : undefined;
  if (near.length === 0) return { note: 'No config has scores yet.' };
  const width = 960;
  const height = 320;
  const left = 72;
  const right = 24;
  const top = 16;
  const bottom = 60;
  const values = near.flatMap((r) => [...(foldScores.get(r.config) ?? []), r.mean - r.std, r.mean + r.std]);
  const span = Math.max(...values) - Math.min(...values);
  const axis = niceTicks(Math.min(...values) - span * 0.08, Math.max(...values) + span * 0.08, 5);
  const plotH = height - top - bottom;
  const y = (v: number): number => top + ((axis.hi - v) / (axis.hi - axis.lo)) * plotH;
  const slot = (width - left - right) / near.length;
  const parts = [svgOpen('contenders-chart', 'nDCG@10 of the configs within reach of the best: each fold, mean ± std', width, height)];
  for (const t of axis.ticks) {
    parts.push(`<line x1="${left}" x2="${width - right}" y1="${f1(y(t))}" y2="${f1(y(t))}" stroke="#e6e9ef"/>`);
    parts.push(`<text x="${left - 8}" y="${f1(y(t) + 4)}" text-anchor="end" font-size="12" fill="#5d6575">${tickLabel(t, axis.step)}</text>`);
  }
  parts.push(`<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle" font-size="13" fill="#5d6575">nDCG@10 (zoomed)</text>`);
  near.forEach((r, i) => {
    const cx = left + slot * (i + 0.5);
    const w = Math.min(60, slot * 0.5);
    const color = COLORS[r.verdict];
    parts.push(`<g class="contender"><title>${escapeText(r.config)}: ${r.mean.toFixed(4)} ± ${r.std.toFixed(4)}</title>`);
    parts.push(`<rect x="${f1(cx - w / 2)}" width="${f1(w)}" y="${f1(y(r.mean + r.std))}" height="${f1(Math.max(1, y(r.mean - r.std) - y(r.mean + r.std)))}" fill="#9ec5fe" fill-opacity="0.55"/>`);
    parts.push(`<line x1="${f1(cx - w / 2)}" x2="${f1(cx + w / 2)}" y1="${f1(y(r.mean))}" y2="${f1(y(r.mean))}" stroke="${color}" stroke-width="3"/>`);
    const folds = foldScores.get(r.config) ?? [];
    folds.forEach((v, k) => {
      const dx = folds.length > 1 ? (k / (folds.length - 1) - 0.5) * w * 1.3 : 0;
      parts.push(`<circle cx="${f1(cx + dx)}" cy="${f1(y(v))}" r="3.5" fill="#e8590c" fill-opacity="0.85" stroke="#fff"/>`);
    });
    parts.push(`<text x="${f1(cx)}" y="${height - bottom + 20}" text-anchor="middle" font-size="13" fill="#1d2330">${escapeText(r.config)}</text>`);
    parts.push(`<text x="${f1(cx)}" y="${height - bottom + 38}" text-anchor="middle" font-size="12" fill="#5d6575">${r.mean.toFixed(4)}</text></g>`);
  });
  parts.push('</svg>');
  return { svg: parts.join('\n'), note };
}

/** (c) Cost against nDCG@10, one dot per config with a measured cost (the budget guard's spend.json). */
export function costChart(cmp: SweepComparison, costUsd: ReadonlyMap<string, number>): Chart {
  const rows = cmp.rows.filter((r) => costUsd.has(r.config));
  const missing = cmp.rows.filter((r) => !costUsd.has(r.config)).map((r) => r.config);
  if (rows.length === 0) {
    return { note: 'Cost vs nDCG@10: no cost measured (the budget guard\'s spend.json has none for these configs; local runs have none).' };
  }
  const note = missing.length > 0 ? `No cost measured for: ${missing.join(', ')}.` : undefined;
  const width = 960;
  const height = 300;
  const left = 72;
  const right = 140;
  const top = 16;
  const bottom = 50;
  const cx = niceTicks(0, Math.max(...rows.map((r) => costUsd.get(r.config)!)) * 1.05 || 1, 6);
  const means = rows.map((r) => r.mean);
  const span = Math.max(...means) - Math.min(...means);
  const cy = niceTicks(Math.min(...means) - span * 0.1, Math.max(...means) + span * 0.1, 5);
  const x = (v: number): number => left + ((v - cx.lo) / (cx.hi - cx.lo)) * (width - left - right);
  const y = (v: number): number => top + ((cy.hi - v) / (cy.hi - cy.lo)) * (height - top - bottom);
  const parts = [svgOpen('cost-chart', 'Cost (USD) against mean nDCG@10, per config', width, height)];
  for (const t of cx.ticks) parts.push(`<text x="${f1(x(t))}" y="${height - bottom + 18}" text-anchor="middle" font-size="12" fill="#5d6575">$${tickLabel(t, cx.step)}</text>`);
  for (const t of cy.ticks) {
    parts.push(`<line x1="${left}" x2="${width - right}" y1="${f1(y(t))}" y2="${f1(y(t))}" stroke="#e6e9ef"/>`);
    parts.push(`<text x="${left - 8}" y="${f1(y(t) + 4)}" text-anchor="end" font-size="12" fill="#5d6575">${tickLabel(t, cy.step)}</text>`);
  }
  parts.push(`<text x="${f1((left + width - right) / 2)}" y="${height - 8}" text-anchor="middle" font-size="13" fill="#5d6575">cost so far (USD)</text>`);
  for (const r of rows) {
    const px = x(costUsd.get(r.config)!);
    const py = y(r.mean);
    parts.push(`<g class="cost-point"><circle cx="${f1(px)}" cy="${f1(py)}" r="6" fill="${COLORS[r.verdict]}"/><text x="${f1(px + 10)}" y="${f1(py + 4)}" font-size="12" fill="#1d2330">${escapeText(r.config)}</text></g>`);
  }
  parts.push('</svg>');
  return { svg: parts.join('\n'), note };
}

/**
 * (d) Training loss curves: each config's mean train loss per epoch (results.json folds[].epochLosses,
 * averaged over the folds), one line per config with a legend. A config whose curve still falls at the
 * last epoch would gain from more epochs; a far higher curve trained on another objective's scale
 * (temperature and logQ change it). Script-mode configs are left out, named in the note.
 */
export function lossChart(cmp: SweepComparison): Chart {
  // Results written before folds[].epochLosses existed have none: those configs have no curve.
  const rows = cmp.rows.filter((r) => r.epochLosses.length > 0);
  const script = cmp.scriptConfigs ?? [];
  const note = script.length > 0 ? `Script-mode configs skipped (their own script records no train loss the report reads): ${script.join(', ')}.` : undefined;
  if (rows.length === 0) return note ? { note } : {};
  const width = 960;
  const left = 72;
  const right = 220;
  const top = 16;
  const bottom = 50;
  const legendRow = 18;
  const height = Math.max(280, top + rows.length * legendRow + bottom);
  const epochs = Math.max(...rows.map((r) => r.epochLosses.length));
  const all = rows.flatMap((r) => r.epochLosses);
  const span = Math.max(...all) - Math.min(...all);
  const axis = niceTicks(Math.min(...all) - span * 0.05, Math.max(...all) + span * 0.05, 5);
  // A curve shorter than the longest (fewer epochs) ends at its own last epoch: epoch numbers line up.
  const x = (epoch: number): number => left + (epochs === 1 ? 0.5 : (epoch - 1) / (epochs - 1)) * (width - left - right);
  const y = (v: number): number => top + ((axis.hi - v) / (axis.hi - axis.lo)) * (height - top - bottom);
  // None of the verdict colours (COLORS): a green or red curve would read as "better" or "worse".
  const palette = ['#1f77b4', '#e8590c', '#6f42c1', '#0a7c86', '#d63384', '#bcbd22', '#4d4d4d', '#17becf'];
  const parts = [svgOpen('loss-chart', 'Mean train loss per epoch (over the folds), per config', width, height)];
  for (const t of axis.ticks) {
    parts.push(`<line x1="${left}" x2="${width - right}" y1="${f1(y(t))}" y2="${f1(y(t))}" stroke="#e6e9ef"/>`);
    parts.push(`<text x="${left - 8}" y="${f1(y(t) + 4)}" text-anchor="end" font-size="12" fill="#5d6575">${tickLabel(t, axis.step)}</text>`);
  }
  // At most about 10 epoch labels, so that long runs stay readable.
  const every = Math.max(1, Math.ceil(epochs / 10));
  for (let e = 1; e <= epochs; e++) {
    if ((e - 1) % every === 0 || e === epochs) parts.push(`<text x="${f1(x(e))}" y="${height - bottom + 18}" text-anchor="middle" font-size="12" fill="#5d6575">${e}</text>`);
  }
  parts.push(`<text x="${f1((left + width - right) / 2)}" y="${height - 10}" text-anchor="middle" font-size="13" fill="#5d6575">epoch</text>`);
  parts.push(`<text transform="translate(16 ${f1(top + (height - top - bottom) / 2)}) rotate(-90)" text-anchor="middle" font-size="13" fill="#5d6575">mean train loss</text>`);
  const legendX = width - right + 20;
  rows.forEach((r, k) => {
    const color = palette[k % palette.length];
    const pts = r.epochLosses.map((v, i) => `${f1(x(i + 1))},${f1(y(v))}`).join(' ');
    const last = r.epochLosses[r.epochLosses.length - 1];
    parts.push(`<g class="loss-line" data-config="${escapeText(r.config)}"><title>${escapeText(r.config)}: ${r.epochLosses.map((v) => v.toFixed(4)).join(' → ')}</title>`);
    parts.push(`<polyline points="${pts}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const [i, v] of r.epochLosses.entries()) parts.push(`<circle cx="${f1(x(i + 1))}" cy="${f1(y(v))}" r="3" fill="${color}"/>`);
    parts.push('</g>');
    const ly = top + 10 + k * legendRow;
    parts.push(`<g class="legend-item"><line x1="${legendX}" x2="${legendX + 22}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="3"/><text x="${legendX + 30}" y="${ly + 4}" font-size="12" fill="#1d2330">${escapeText(r.config)} (${last.toFixed(3)})</text></g>`);
  });
  parts.push('</svg>');
  return { svg: parts.join('\n'), note };
}
