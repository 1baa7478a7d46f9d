import { GuardDeps } from '../../../lambda/budget-guard/guard';
import { ObservedInstance } from '../../../lambda/budget-guard/ledger';
import { PricePoint } from '../../../lambda/budget-guard/pricing';

export class Conflict extends Error {}

/** In-memory stand-ins for EC2, Auto Scaling, CloudWatch and S3, recording every call. */
export class FakeAws implements GuardDeps {
  instances: ObservedInstance[] = [];
  prices = new Map<string, PricePoint[]>();
  launchFailures = new Map<string, number>();
  objects = new Map<string, { text: string; etag: string }>();
  scaled: string[] = [];
  switched: string[] = [];
  metrics: { sweep: string; totalUsd: number; hours: Record<string, number> }[] = [];
  /** Per key, what another writer (the job runner) writes just before the guard's next write of it. */
  racers = new Map<string, string>();
  private version = 0;

  async listInstances(): Promise<ObservedInstance[]> {
    return this.instances;
  }
  async spotPriceHistory(instanceType: string, az: string): Promise<PricePoint[]> {
    return this.prices.get(`${instanceType} ${az}`) ?? [];
  }
  async spotLaunchFailures(group: string): Promise<number> {
    return this.launchFailures.get(group) ?? 0;
  }
  async scaleToZero(group: string): Promise<void> {
    this.scaled.push(group);
  }
  async switchToOnDemand(group: string): Promise<void> {
    this.switched.push(group);
  }
  async putMetrics(sweep: string, totalUsd: number, hours: Readonly<Record<string, number>>): Promise<void> {
    this.metrics.push({ sweep, totalUsd, hours: { ...hours } });
  }
  async read(key: string): Promise<{ text: string; etag: string } | undefined> {
    return this.objects.get(key);
  }
  async write(key: string, body: string, ifMatch?: string): Promise<void> {
    const current = this.objects.get(key);
    const other = this.racers.get(key);
    if (other !== undefined && ifMatch !== undefined) {
      this.racers.delete(key);
      this.put(key, other);
      throw new Conflict('precondition failed');
    }
    if (ifMatch === 'absent' ? current !== undefined : ifMatch !== undefined && current?.etag !== ifMatch) throw new Conflict('precondition failed');
    this.put(key, body);
  }
  put(key: string, text: string): void {
    this.objects.set(key, { text, etag: `"v${++this.version}"` });
  }
  json(key: string): Record<string, unknown> {
    return JSON.parse(this.objects.get(key)!.text) as Record<string, unknown>;
  }
  isConflict(err: unknown): boolean {
    return err instanceof Conflict;
  }
  log(): void {}
}
