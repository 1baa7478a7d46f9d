import * as path from 'node:path';
import { ConfigEstimate, SweepEstimate } from '../cost/estimate';
import { PRICE_SOURCE } from '../cost/instances';
import { SweepSpec, sweepStackName } from '../spec/types';

const usd = (x: number): string => `$${x.toFixed(2)}`;
const hours = (h: number): string => (h < 1 ? `${Math.round(h * 60)} min` : `${h.toFixed(1)} h`);

/** The text `spot-sweep plan` prints: one block per config, the total and the verdict. */
export function formatPlan(spec: SweepSpec, estimate: SweepEstimate, priceNote: string): string {
  const file = spec.specFile ? path.relative(process.cwd(), spec.specFile) : 'spec';
  const out: string[] = [];
  out.push(
    `Sweep "${spec.name}" (${file}, stack ${sweepStackName(spec.name)}): ${spec.configs.length} config${spec.configs.length === 1 ? '' : 's'}, budget ${usd(spec.budgetUsd)}`,
  );
  out.push(`Prices: ${priceNote} Table: ${PRICE_SOURCE.region}, recorded ${PRICE_SOURCE.recordedOn}.`);
  out.push('Runtime: assumed throughput per GPU model (lib/cost/throughput.ts), to be calibrated from measured runs.');
  out.push('');

  const header = ['config', 'examples', 'market', 'instance type', 'GPUs', 'runtime', 'spot', 'on-demand'];
  const rows: string[][] = [header];
  for (const c of estimate.configs) rows.push(...configRows(c));
  const widths = header.map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const right = new Set([1, 5, 6, 7]);
  for (const r of rows) {
    out.push(r.map((cell, i) => (right.has(i) ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join('  ').trimEnd());
  }
  out.push('');

  const warnings: string[] = [];
  for (const c of estimate.configs) {
    if (c.runtimeHours !== null && c.runtimeHours > c.config.maxRuntimeHours) {
      warnings.push(
        `config "${c.config.name}": estimated ${hours(c.runtimeHours)} exceeds maxRuntimeHours ${c.config.maxRuntimeHours}; the run would be stopped first: raise maxRuntimeHours (at most 48), use more GPUs, or fewer examples.`,
      );
    }
  }
  if (estimate.unestimated.length > 0) {
    warnings.push(
      `not estimated (examples not set, so the data set size is unknown): ${estimate.unestimated.join(', ')}; set "examples" to count them against the budget.`,
    );
  }
  for (const w of warnings) out.push(`Warning: ${w}`);
  if (warnings.length > 0) out.push('');

  const share = spec.budgetUsd > 0 ? Math.round((estimate.totalUsd / spec.budgetUsd) * 100) : 0;
  out.push(
    `Total: ${usd(estimate.totalUsd)} of the ${usd(spec.budgetUsd)} budget (${share}%), each config at its market ` +
      '(spot-then-on-demand counted at on-demand) on its dearest listed instance type.',
  );
  if (estimate.overBudget) {
    out.push(
      `Over budget: the estimate ${usd(estimate.totalUsd)} exceeds budgetUsd ${usd(spec.budgetUsd)} by ${usd(estimate.totalUsd - spec.budgetUsd)}. ` +
        'Lower examples, epochs or folds, move configs to spot or cheaper instance types, or raise budgetUsd.',
    );
  } else {
    out.push('Within budget.');
  }
  return out.join('\n') + '\n';
}

function configRows(c: ConfigEstimate): string[][] {
  const cfg = c.config;
  const examples = cfg.examples === null ? 'all' : cfg.examples.toLocaleString('en-US');
  if (c.byInstance.length === 0) {
    return cfg.instanceTypes.map((t, i) => [i === 0 ? cfg.name : '', i === 0 ? examples : '', i === 0 ? cfg.market : '', t, `${cfg.gpus}`, '?', '?', '?']);
  }
  return c.byInstance.map((e, i) => [
    i === 0 ? cfg.name : '',
    i === 0 ? examples : '',
    i === 0 ? cfg.market : '',
    e.instance.instanceType,
    `${cfg.gpus}x ${e.instance.gpuModel}${cfg.gpus < e.instance.gpuCount ? ` (of ${e.instance.gpuCount})` : ''}`,
    hours(e.runtimeHours),
    usd(e.spotUsd) + (e.spotPriceLive ? '*' : ''),
    usd(e.onDemandUsd),
  ]);
}
