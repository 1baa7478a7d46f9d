import { hoursBetween, onDemandUsdPerHour, spotCostUsd } from '../../../lambda/budget-guard/pricing';

const at = (hhmm: string): number => Date.parse(`2026-11-28T${hhmm}:00Z`);

describe('spot cost from price history', () => {
  // 0.50 $/h from 09:00 (the change before the interval: the price in effect at its start),
  // 0.75 from 11:00, 0.25 from 12:00.
  const history = [
    { atMs: at('12:00'), usdPerHour: 0.25 },
    { atMs: at('09:00'), usdPerHour: 0.5 },
    { atMs: at('11:00'), usdPerHour: 0.75 },
  ];

  test('weights each price by the time it was in effect (10:00-12:30 = 1 h x 0.50 + 1 h x 0.75 + 0.5 h x 0.25)', () => {
    expect(spotCostUsd(history, at('10:00'), at('12:30'))).toBe(1.375);
  });

  test('an interval inside one price stretch costs that price x its hours', () => {
    expect(spotCostUsd(history, at('11:15'), at('11:45'))).toBe(0.375);
  });

  test('ignores changes after the end and charges nothing for an empty interval', () => {
    expect(spotCostUsd(history, at('09:30'), at('10:30'))).toBe(0.5);
    expect(spotCostUsd(history, at('10:00'), at('10:00'))).toBe(0);
  });

  test('is undefined when no price was in effect at the start', () => {
    expect(spotCostUsd(history, at('08:00'), at('10:00'))).toBeUndefined();
    expect(spotCostUsd([], at('08:00'), at('10:00'))).toBeUndefined();
  });
});

describe('on-demand price', () => {
  test('comes from the project price table (lib/cost/instances.ts)', () => {
    expect(onDemandUsdPerHour('g5.xlarge')).toBe(1.006);
    expect(onDemandUsdPerHour('p3.2xlarge')).toBe(3.06);
    expect(onDemandUsdPerHour('m5.large')).toBeUndefined();
  });

  test('hours never go negative', () => {
    expect(hoursBetween(at('10:00'), at('11:30'))).toBe(1.5);
    expect(hoursBetween(at('11:00'), at('10:00'))).toBe(0);
  });
});
