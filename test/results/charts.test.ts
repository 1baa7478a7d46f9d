import { contenders, contendersChart, costChart, deltaChart, lossChart, niceTicks, tickLabel } from '../../lib/results/charts';
import { compareConfigs, ConfigResults } from '../../lib/results/compare';
import { scriptResults, text, trainResults } from './fixtures';

const base = [0.9102, 0.903, 0.9112, 0.9076, 0.9108];
const configs = [
  { config: 'baseline', resultsText: text(trainResults('s', 'baseline', base)) },
  { config: 'same', resultsText: text(trainResults('s', 'same', base.map((v, i) => v + [0.001, -0.002, 0.0005, -0.001, 0.0012][i]))) },
  { config: 'lower', resultsText: text(trainResults('s', 'lower', base.map((v, i) => v - 0.008 - [0.001, 0.003, 0, 0.002, 0.001][i]))) },
  { config: 'far <b>off</b>', resultsText: text(trainResults('s', 'far', base.map((v) => v - 0.48))) },
];
const cmp = compareConfigs({ configs });
const folds = new Map(configs.map((c) => [c.config, JSON.parse(c.resultsText).folds.map((f: { ndcg10: number }) => f.ndcg10) as number[]]));

describe('axis ticks', () => {
  test('uses round steps of 1, 2 or 5 × 10^k, covering the range', () => {
    expect(niceTicks(0.8997, 0.9129, 5)).toMatchObject({ step: 0.002, lo: 0.898, hi: 0.914 });
    expect(niceTicks(0.8997, 0.9129, 2)).toMatchObject({ step: 0.005, lo: 0.895, hi: 0.915 });
    expect(niceTicks(-0.0128, 0.0012, 6).step).toBe(0.002);
    expect(niceTicks(0, 7.3, 6)).toMatchObject({ step: 1, lo: 0, hi: 8 });
    expect(niceTicks(0, 7.3, 3)).toMatchObject({ step: 2, lo: 0, hi: 8 });
    expect(tickLabel(0.902, 0.002)).toBe('0.902');
    expect(tickLabel(-0.0000000001, 0.002)).toBe('0.000');
    expect(tickLabel(4, 2)).toBe('4');
  });
});

describe('delta chart', () => {
  const chart = deltaChart(cmp);
  test('draws each config against the baseline with its verdict and a zero line, zoomed to the intervals', () => {
    expect(chart.svg).toContain('class="zero"');
    expect(chart.svg!.match(/<g class="delta"/g)).toHaveLength(3);
    expect(chart.svg).toContain('data-verdict="worse"');
    expect(chart.svg).toContain('data-verdict="no difference shown"');
    // The far config (−0.48) widens the axis: its labels step by 0.1, not by 0.002.
    const ticks = [...chart.svg!.matchAll(/fill="#5d6575">(-?[\d.]+)<\/text>/g)].map((m) => Number(m[1]));
    expect(Math.min(...ticks)).toBeLessThanOrEqual(-0.48);
  });

  test('leaves out configs that are not comparable and says which', () => {
    const few = { config: 'few', resultsText: text({ ...trainResults('s', 'few', [0.4, 0.5, 0.45, 0.42, 0.44]), folds: (trainResults('s', 'few', [0.4, 0.5, 0.45, 0.42, 0.44]) as ConfigResults['results']).folds.map((f) => ({ ...f, testQueries: 10 })) }) };
    const chart2 = deltaChart(compareConfigs({ configs: [configs[0], configs[2], few] }));
    expect(chart2.note).toBe('Not drawn (not comparable with baseline): few.');
    expect(chart2.svg!.match(/<g class="delta"/g)).toHaveLength(1);
  });
});

describe('contenders chart', () => {
  test('zooms to the configs within reach of the best and names the ones left out', () => {
    expect(contenders(cmp.rows).far.map((r) => r.config)).toEqual(['far <b>off</b>']);
    const chart = contendersChart(cmp, folds);
    expect(chart.svg!.match(/<g class="contender"/g)).toHaveLength(3);
    expect(chart.note).toMatch(/^Left out, far below the best: far <b>off<\/b> \(0\.4\d+\)\.$/);
    expect(chart.svg).not.toContain('<b>');
    const ticks = [...chart.svg!.matchAll(/text-anchor="end" font-size="12" fill="#5d6575">([\d.]+)</g)].map((m) => Number(m[1]));
    expect(Math.min(...ticks)).toBeGreaterThan(0.85);
  });
});

describe('cost and loss charts', () => {
  test('fails to draw a cost chart without measured cost, and says so', () => {
    expect(costChart(cmp, new Map())).toEqual({ note: expect.stringMatching(/no cost measured/) });
  });

  test('places each config with a cost, naming the ones without', () => {
    const chart = costChart(cmp, new Map([['baseline', 0.42], ['lower', 0.3]]));
    expect(chart.svg!.match(/<g class="cost-point"/g)).toHaveLength(2);
    // Notes are plain text: the decision section escapes them when it renders them.
    expect(chart.note).toBe('No cost measured for: same, far <b>off</b>.');
  });

  test('draws one loss-per-epoch curve per config, the mean over its folds, with a legend', () => {
    const withCurves = compareConfigs({
      configs: [
        ...configs,
        { config: 'script-run', resultsText: text(scriptResults('s', 'script-run')) },
      ],
    });
    const chart = lossChart(withCurves);
    expect(chart.svg!.match(/<polyline/g)).toHaveLength(4);
    expect(chart.svg!.match(/<g class="legend-item"/g)).toHaveLength(4);
    // Three epochs: the x axis is labelled 1, 2, 3 and each curve has a point per epoch.
    const line = chart.svg!.split('<g class="loss-line"')[1];
    expect(line.match(/<circle/g)).toHaveLength(3);
    expect(chart.svg).toContain('far &lt;b&gt;off&lt;/b&gt; (2.100)');
    expect(chart.note).toContain('Script-mode configs skipped');
    expect(chart.note).toContain('script-run');
  });

  test('averages epoch losses over the folds, lining up folds that recorded fewer epochs at the last one', () => {
    const r = trainResults('s', 'mixed', [0.9, 0.91]);
    if (r.mode !== 'train') throw new Error('train results expected');
    r.folds[0].epochLosses = [3, 2, 1];
    // A fold resumed from a checkpoint of a trainer before epochLosses: only the epochs after the resume.
    r.folds[1].epochLosses = [4, 2];
    const row = compareConfigs({ configs: [{ config: 'mixed', resultsText: text(r) }] }).rows[0];
    expect(row.epochLosses).toEqual([3, 3, 1.5]);
  });

  test('results written before epochLosses and finalModel existed still rank, with no curve', () => {
    const old = trainResults('s', 'old', [0.9, 0.91]);
    if (old.mode !== 'train') throw new Error('train results expected');
    for (const f of old.folds) delete f.epochLosses;
    delete (old.config as { finalModel?: boolean }).finalModel;
    const withOld = compareConfigs({ configs: [configs[0], { config: 'old', resultsText: text(old) }] });
    expect(withOld.rows.map((r) => r.config).sort()).toEqual(['baseline', 'old']);
    expect(withOld.rows.find((r) => r.config === 'old')!.epochLosses).toEqual([]);
    expect(lossChart(withOld).svg!.match(/<g class="loss-line"/g)).toHaveLength(1);
  });
});
