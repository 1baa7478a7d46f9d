import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileStore, SweepStore } from '../../../lib/store';
import { GuardDeps } from '../../../lambda/budget-guard/guard';
import { ObservedInstance } from '../../../lambda/budget-guard/ledger';
import { PricePoint } from '../../../lambda/budget-guard/pricing';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** In-memory stand-ins for EC2, Auto Scaling and CloudWatch, recording every call; the store is a real local one (lib/store fileStore). */
export class FakeAws implements GuardDeps {
  instances: ObservedInstance[] = [];
  prices = new Map<string, PricePoint[]>();
  launchFailures = new Map<string, number>();
  scaled: string[] = [];
  switched: string[] = [];
  metrics: { sweep: string; totalUsd: number; hours: Record<string, number> }[] = [];
  heartbeats: { sweep: string; at: string }[] = [];
  /** Groups whose scale-to-zero fails. */
  failScaling = new Set<string>();
  /** DescribeInstances fails (the guard cannot price the sweep). */
  failListing = false;
  /** PutMetricData of the heartbeat fails. */
  failHeartbeat = false;
  readonly dir: string;
  readonly store: SweepStore;

  constructor() {
    this.dir = mkdtempSync(path.join(tmpdir(), 'spot-sweep-guard-'));
    dirs.push(this.dir);
    this.store = fileStore(this.dir);
  }

  async listInstances(): Promise<ObservedInstance[]> {
    if (this.failListing) throw new Error('UnauthorizedOperation');
    return this.instances;
  }
  async spotPriceHistory(instanceType: string, az: string): Promise<PricePoint[]> {
    return this.prices.get(`${instanceType} ${az}`) ?? [];
  }
  async spotLaunchFailures(group: string): Promise<number> {
    return this.launchFailures.get(group) ?? 0;
  }
  async scaleToZero(group: string): Promise<void> {
    if (this.failScaling.has(group)) throw new Error('AccessDenied');
    this.scaled.push(group);
  }
  async switchToOnDemand(group: string): Promise<void> {
    this.switched.push(group);
  }
  async putMetrics(sweep: string, totalUsd: number, hours: Readonly<Record<string, number>>): Promise<void> {
    this.metrics.push({ sweep, totalUsd, hours: { ...hours } });
  }
  async putHeartbeat(sweep: string, at: Date): Promise<void> {
    if (this.failHeartbeat) throw new Error('Throttling');
    this.heartbeats.push({ sweep, at: at.toISOString() });
  }
  log(): void {}

  /** Writes an object as another writer (the job runner, a person) would. */
  async put(key: string, value: unknown): Promise<void> {
    await this.store.write(key, typeof value === 'string' ? value : JSON.stringify(value));
  }
  async json(key: string): Promise<Record<string, unknown>> {
    const text = await this.store.read(key);
    if (text === undefined) throw new Error(`${key} does not exist`);
    return JSON.parse(text) as Record<string, unknown>;
  }
}
