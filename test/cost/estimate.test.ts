import * as path from 'node:path';
import { estimateConfig, estimateSweep, makespanHours } from '../../lib/cost/estimate';
import { GPUS, INSTANCES, PRICE_SOURCE, lookupInstance } from '../../lib/cost/instances';
import { THROUGHPUT, examplesPerSecond } from '../../lib/cost/throughput';
import { loadSpec, validateSpec } from '../../lib/spec';

const seed = loadSpec(path.join(__dirname, '..', '..', 'sweeps', 'seed-plan.json'));

describe('instance table', () => {
  test('covers every family the project supports, with GPU facts', () => {
    const expected: Record<string, [string, number, number]> = {
      'g4dn.xlarge': ['T4', 1, 16],
      'g5.xlarge': ['A10G', 1, 24],
      'g6.xlarge': ['L4', 1, 24],
      'g6e.xlarge': ['L40S', 1, 48],
      'p3.2xlarge': ['V100', 1, 16],
      'p3.8xlarge': ['V100', 4, 16],
      'p3.16xlarge': ['V100', 8, 16],
      'p3dn.24xlarge': ['V100', 8, 32],
      'p4d.24xlarge': ['A100', 8, 40],
      'p4de.24xlarge': ['A100', 8, 80],
      'p5.48xlarge': ['H100', 8, 80],
    };
    for (const [type, [gpu, count, memory]] of Object.entries(expected)) {
      expect(INSTANCES.get(type)).toMatchObject({ gpuModel: gpu, gpuCount: count, gpuMemoryGiB: memory });
    }
  });

  test('marks bf16 only on GPUs that have it', () => {
    expect(Object.entries(GPUS).filter(([, g]) => !g.bf16).map(([m]) => m).sort()).toEqual(['T4', 'V100']);
    expect(INSTANCES.get('p3.2xlarge')!.bf16).toBe(false);
    expect(INSTANCES.get('g5.xlarge')!.bf16).toBe(true);
  });

  test('every row has a price, spot below on-demand, and the prices carry a source and date', () => {
    for (const info of INSTANCES.values()) {
      expect(info.onDemandUsdPerHour).toBeGreaterThan(0);
      expect(info.spotUsdPerHour).toBeGreaterThan(0);
      expect(info.spotUsdPerHour).toBeLessThan(info.onDemandUsdPerHour);
    }
    expect(PRICE_SOURCE.recordedOn).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(PRICE_SOURCE.onDemand).toMatch(/aws\.amazon\.com\/ec2\/pricing/);
  });

  test('classifies names that are not priced GPU types', () => {
    expect(lookupInstance('m5.large').kind).toBe('not-gpu');
    expect(lookupInstance('p3.2xl').kind).toBe('unknown-size');
    expect(lookupInstance('inf2.xlarge').kind).toBe('unpriced-accelerated');
    expect(lookupInstance('p3_2xlarge').kind).toBe('malformed');
  });
});

describe('cost estimate', () => {
  test('counts examples x folds x epochs x (folds-1)/folds example-passes over the throughput, plus setup', () => {
    const o = estimateConfig(seed.configs.find((c) => c.name === 'o')!);
    expect(o.examplePasses).toBeCloseTo(876_000 * 10 * 3 * 0.9);
    const g5 = o.byInstance[0];
    expect(g5.instance.instanceType).toBe('g5.2xlarge');
    const expectedHours = THROUGHPUT.A10G.setupMinutes / 60 + (876_000 * 27) / THROUGHPUT.A10G.examplesPerSecondPerGpu / 3600;
    expect(g5.runtimeHours).toBeCloseTo(expectedHours);
    expect(g5.onDemandUsd).toBeCloseTo(expectedHours * 1.212);
    expect(g5.spotUsd).toBeCloseTo(expectedHours * INSTANCES.get('g5.2xlarge')!.spotUsdPerHour);
  });

  test('scales with GPUs at less than linear efficiency, and fp32 is slower', () => {
    expect(examplesPerSecond('V100', 4, 'auto')).toBeCloseTo(4 * THROUGHPUT.V100.examplesPerSecondPerGpu * THROUGHPUT.V100.multiGpuEfficiency);
    expect(examplesPerSecond('V100', 4, 'auto')).toBeLessThan(4 * examplesPerSecond('V100', 1, 'auto'));
    expect(examplesPerSecond('A100', 1, 'fp32')).toBeLessThan(examplesPerSecond('A100', 1, 'bf16'));
  });

  test('counts each config at its market on its dearest listed type, and live spot prices replace the table', () => {
    const o = estimateConfig(seed.configs[0], new Map([['g5.2xlarge', 0.5]]));
    expect(o.byInstance[0]).toMatchObject({ spotUsdPerHour: 0.5, spotPriceLive: true });
    expect(o.budgetUsd).toBeCloseTo(Math.max(...o.byInstance.map((e) => e.spotUsd)));
    const full = estimateConfig(seed.configs.find((c) => c.name === 'full')!);
    expect(full.budgetUsd).toBeCloseTo(full.byInstance[0].onDemandUsd);
  });

  test('the seed plan fits its $100 budget', () => {
    const estimate = estimateSweep(seed);
    expect(estimate.overBudget).toBe(false);
    expect(estimate.totalUsd).toBeCloseTo(estimate.configs.reduce((sum, c) => sum + (c.budgetUsd ?? 0), 0));
    expect(estimate.totalUsd).toBeGreaterThan(1);
    expect(estimate.totalUsd).toBeLessThan(100);
  });

  test('flags a sweep whose estimate exceeds the budget, and configs that can not be estimated', () => {
    const spec = validateSpec({
      name: 'dear',
      budgetUsd: 1,
      data: 's3://bkt/d/',
      defaults: { instanceTypes: ['p5.48xlarge'], market: 'on-demand' },
      configs: [{ name: 'a', examples: 10_000_000 }, { name: 'b' }],
    });
    const estimate = estimateSweep(spec);
    expect(estimate.overBudget).toBe(true);
    expect(estimate.unestimated).toEqual(['b']);
  });
});

describe('wall time with maxParallel', () => {
  test('greedy in spec order: each config takes the slot that frees first', () => {
    // Slots of 2: 5 and 1 start; 3 starts at 1 (ends 4); 2 starts at 4 (ends 6); 5 ends at 5: makespan 6.
    expect(makespanHours([5, 1, 3, 2], 2)).toBe(6);
    expect(makespanHours([5, 1, 3, 2], 1)).toBe(11);
    expect(makespanHours([5, 1, 3, 2], null)).toBe(5);
    expect(makespanHours([5, 1, 3, 2], 9)).toBe(5);
    expect(makespanHours([], 2)).toBe(0);
  });

  test('the total cost stays the same; the wall time becomes the makespan', () => {
    const raw = {
      name: 'w',
      budgetUsd: 500,
      data: 's3://data-bucket/d/',
      configs: [{ name: 'a', examples: 2000000 }, { name: 'b', examples: 1000000 }, { name: 'c', examples: 1000000 }],
    };
    const free = estimateSweep(validateSpec(raw));
    const capped = estimateSweep(validateSpec({ ...raw, maxParallel: 1 }));
    expect(capped.totalUsd).toBe(free.totalUsd);
    const [a, b, c] = free.configs.map((x) => x.runtimeHours!);
    expect(free.wallHours).toBeCloseTo(Math.max(a, b, c), 9);
    expect(free.maxParallel).toBeNull();
    expect(capped.wallHours).toBeCloseTo(a + b + c, 9);
    expect(capped.maxParallel).toBe(1);
  });
});
