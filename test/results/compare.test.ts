import { compareConfigs, pairedDelta } from '../../lib/results/compare';
import { incompleteBeta, tQuantile, tTwoSidedP } from '../../lib/results/stats';
import { ConfigResults } from '../../lib/results/compare';
import { text, trainResults } from './fixtures';

const train = (...args: Parameters<typeof trainResults>): ConfigResults['results'] => trainResults(...args) as ConfigResults['results'];
import { runDemo } from './demo-run';

jest.setTimeout(300_000);

describe('Student t', () => {
  // Two-sided 95% critical values from the t table (e.g. NIST/SEMATECH e-Handbook, table 1.3.6.7.2).
  test.each([
    [1, 12.706],
    [2, 4.303],
    [4, 2.776],
    [9, 2.262],
    [29, 2.045],
    [120, 1.98],
  ])('the 0.975 quantile with %i df is %f', (df, value) => {
    expect(tQuantile(0.975, df)).toBeCloseTo(value, 3);
  });

  test('the 0.995 quantile and the p-value agree with the table', () => {
    expect(tQuantile(0.995, 4)).toBeCloseTo(4.604, 3);
    expect(tQuantile(0.95, 10)).toBeCloseTo(1.812, 3);
    expect(tTwoSidedP(2.776445, 4)).toBeCloseTo(0.05, 5);
    expect(tTwoSidedP(0, 4)).toBeCloseTo(1, 10);
    expect(incompleteBeta(0.5, 2, 2)).toBeCloseTo(0.5, 12);
  });

  test('fails when asked for a quantile below the median', () => {
    expect(() => tQuantile(0.2, 4)).toThrow(/0.5 <= p < 1/);
  });
});

describe('pairedDelta', () => {
  test('computes mean, 95% interval, t and p of the per-fold differences', () => {
    const d = pairedDelta([0.52, 0.51, 0.55, 0.5, 0.53], [0.5, 0.5, 0.52, 0.49, 0.5])!;
    // differences 0.02 0.01 0.03 0.01 0.03: mean 0.02, std 0.01, se 0.01/sqrt(5)
    expect(d.meanDelta).toBeCloseTo(0.02, 12);
    expect(d.stdDelta).toBeCloseTo(0.01, 12);
    expect(d.t).toBeCloseTo(0.02 / (0.01 / Math.sqrt(5)), 9);
    expect(d.ciLow).toBeCloseTo(0.02 - 2.776445 * (0.01 / Math.sqrt(5)), 5);
    expect(d.p).toBeLessThan(0.05);
  });
});

describe('compareConfigs on synthetic folds', () => {
  const a = trainResults('s', 'a', [0.5, 0.5, 0.52, 0.49, 0.5]);
  test('fails to pair configs whose folds have other test queries, and says why', () => {
    const b = train('s', 'b', [0.6, 0.61, 0.6, 0.59, 0.6]);
    const fewer = { ...b, folds: b.folds.map((f) => ({ ...f, testQueries: 10 })), config: { ...b.config, maxExamples: 400 } };
    const cmp = compareConfigs({ configs: [{ config: 'a', resultsText: text(a) }, { config: 'b', resultsText: text(fewer) }] });
    const row = cmp.rows.find((r) => r.config === 'b')!;
    expect(row.verdict).toBe('not comparable');
    expect(row.why).toContain('b is scored on 10 test queries per fold, a on 100');
    expect(row.why).toContain('b uses 400 examples, a all');
    expect(row.paired).toBeUndefined();
  });

  test('takes the spec\'s baseline and notes configs without results', () => {
    const b = trainResults('s', 'b', [0.6, 0.61, 0.6, 0.59, 0.6]);
    const cmp = compareConfigs({ baseline: 'b', configs: [{ config: 'a', resultsText: text(a) }, { config: 'b', resultsText: text(b) }, { config: 'c' }] });
    expect(cmp.baseline).toBe('b');
    expect(cmp.rows.map((r) => [r.config, r.verdict])).toEqual([
      ['b', 'baseline'],
      ['a', 'worse'],
    ]);
    expect(cmp.notes).toEqual(['c: no results.json yet.']);
  });
});

describe('compareConfigs on the demo sweep, run for real', () => {
  const demo = runDemo();
  const cmp = compareConfigs({ configs: demo.configs });

  test('baseline is the first config; warm is a real loss, logq is indistinguishable', () => {
    expect(cmp.baseline).toBe('baseline');
    const byName = Object.fromEntries(cmp.rows.map((r) => [r.config, r]));
    expect(byName.warm.verdict).toBe('worse');
    expect(byName.warm.paired!.p).toBeLessThan(0.05);
    expect(byName.warm.paired!.ciHigh).toBeLessThan(0);
    expect(byName.logq.verdict).toBe('no difference shown');
    expect(byName.logq.paired!.ciLow).toBeLessThan(0);
    expect(byName.logq.paired!.ciHigh).toBeGreaterThan(0);
  });

  test('few-examples is not comparable: other test queries and examples', () => {
    const few = cmp.rows.find((r) => r.config === 'few-examples')!;
    expect(few.verdict).toBe('not comparable');
    expect(few.why).toMatch(/few-examples is scored on \d+ test queries per fold, baseline on \d+/);
    expect(few.why).toContain('few-examples uses 4000 examples, baseline all');
  });

  test('names the settings that differ', () => {
    expect(cmp.differingKeys).toEqual(expect.arrayContaining(['train.temperature', 'train.logQCorrection', 'examples']));
    expect(cmp.rows.find((r) => r.config === 'warm')!.differs).toEqual({ 'train.temperature': ['0.2', '0.05'] });
    expect(cmp.rows.find((r) => r.config === 'logq')!.differs).toEqual({ 'train.logQCorrection': ['true', 'false'] });
  });
});
