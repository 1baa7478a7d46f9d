import { lookupInstance } from '../../lib/cost/instances';

/** One spot price change: from `atMs` on, the price is `usdPerHour` (until the next change). */
export interface PricePoint {
  readonly atMs: number;
  readonly usdPerHour: number;
}

const HOUR_MS = 3_600_000;

/**
 * Cost of running from `startMs` to `endMs` under a spot price history, time-weighted: each
 * stretch of the interval is billed at the price in effect then (the latest change at or before it).
 *
 * DescribeSpotPriceHistory with a StartTime also returns the last change before it, "the effective
 * price as of the start time", so a history fetched for the interval covers its start.
 * @see https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeSpotPriceHistory.html
 * Returns undefined when the history has no price in effect at `startMs` (nothing at or before it).
 */
export function spotCostUsd(history: readonly PricePoint[], startMs: number, endMs: number): number | undefined {
  if (endMs <= startMs) return 0;
  const points = [...history].sort((a, b) => a.atMs - b.atMs);
  const inEffect = points.filter((p) => p.atMs <= startMs).pop();
  if (!inEffect) return undefined;
  let usd = 0;
  let from = startMs;
  let price = inEffect.usdPerHour;
  for (const p of points) {
    if (p.atMs <= startMs) continue;
    if (p.atMs >= endMs) break;
    usd += ((p.atMs - from) / HOUR_MS) * price;
    from = p.atMs;
    price = p.usdPerHour;
  }
  return usd + ((endMs - from) / HOUR_MS) * price;
}

/**
 * The on-demand price of an instance type from the project's price table (lib/cost/instances.ts:
 * us-east-1 Linux list prices, recorded by hand, see its PRICE_SOURCE). The Price List API would give
 * the live regional figure but needs another permission and a large query; the table is what the plan
 * showed the user. Undefined for a type the table does not price.
 */
export function onDemandUsdPerHour(instanceType: string): number | undefined {
  const found = lookupInstance(instanceType);
  return found.kind === 'gpu' ? found.info.onDemandUsdPerHour : undefined;
}

/** Hours between two instants. */
export function hoursBetween(startMs: number, endMs: number): number {
  return Math.max(0, endMs - startMs) / HOUR_MS;
}
