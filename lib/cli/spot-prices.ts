import { existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { DescribeSpotPriceHistoryCommandInput } from '@aws-sdk/client-ec2';

/** What the live spot price lookup did, for the plan's "Prices:" line. */
export interface SpotLookup {
  readonly prices: ReadonlyMap<string, number>;
  /** One sentence for the user. */
  readonly note: string;
}

/** Give up on the lookup after this long: `plan` must never hang on a slow or absent network. */
const LOOKUP_TIMEOUT_MS = 5000;

/**
 * Whether AWS credentials are configured, judged from the environment and the shared config files
 * only. The instance metadata service is not asked: off EC2 that call would wait for a timeout.
 * @see https://docs.aws.amazon.com/sdkref/latest/guide/standardized-credentials.html
 */
export function hasAwsCredentials(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) return true;
  if (env.AWS_PROFILE || env.AWS_WEB_IDENTITY_TOKEN_FILE || env.AWS_CONTAINER_CREDENTIALS_FULL_URI || env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI) return true;
  const home = env.HOME ?? os.homedir();
  const files = [env.AWS_SHARED_CREDENTIALS_FILE ?? path.join(home, '.aws', 'credentials'), env.AWS_CONFIG_FILE ?? path.join(home, '.aws', 'config')];
  return files.some((f) => existsSync(f));
}

/**
 * Current spot prices (Linux/UNIX) for the given types, averaged over the region's AZs, from
 * EC2 DescribeSpotPriceHistory with StartTime = now (the price in effect per AZ).
 * @see https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeSpotPriceHistory.html
 * Never throws: on any failure the note says so and the table is used.
 */
export async function lookupSpotPrices(
  instanceTypes: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs: number = LOOKUP_TIMEOUT_MS,
): Promise<SpotLookup> {
  const table = 'built-in table (typical spot)';
  if (!hasAwsCredentials(env)) {
    return { prices: new Map(), note: `${table}; no AWS credentials found, so no live spot lookup.` };
  }
  const region = env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1';
  // Loaded only when needed: the SDK takes a noticeable moment to load, and offline plans never use it.
  const { DescribeSpotPriceHistoryCommand, EC2Client } = await import('@aws-sdk/client-ec2');
  // Keys and endpoint from `env` when set there (as the SDK would read them from process.env);
  // otherwise the SDK's default chain (profiles, SSO, ...).
  const client = new EC2Client({
    region,
    maxAttempts: 1,
    ...(env.AWS_ENDPOINT_URL_EC2 ? { endpoint: env.AWS_ENDPOINT_URL_EC2 } : {}),
    ...(env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
      ? { credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, sessionToken: env.AWS_SESSION_TOKEN } }
      : {}),
  });
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    const samples = new Map<string, number[]>();
    let nextToken: string | undefined;
    do {
      const page = await client.send(
        new DescribeSpotPriceHistoryCommand({
          InstanceTypes: [...instanceTypes] as DescribeSpotPriceHistoryCommandInput['InstanceTypes'],
          ProductDescriptions: ['Linux/UNIX'],
          StartTime: new Date(),
          NextToken: nextToken,
        }),
        { abortSignal: abort.signal },
      );
      for (const p of page.SpotPriceHistory ?? []) {
        if (!p.InstanceType || !p.SpotPrice) continue;
        const list = samples.get(p.InstanceType) ?? [];
        list.push(Number(p.SpotPrice));
        samples.set(p.InstanceType, list);
      }
      nextToken = page.NextToken || undefined;
    } while (nextToken);
    const prices = new Map([...samples].map(([type, list]) => [type, list.reduce((a, b) => a + b, 0) / list.length]));
    const missing = instanceTypes.filter((t) => !prices.has(t));
    const gap = missing.length > 0 ? ` (no live price for ${missing.join(', ')}: table used for those)` : '';
    return { prices, note: `live spot prices from EC2 DescribeSpotPriceHistory in ${region}, averaged over AZs${gap}.` };
  } catch (err) {
    const { name, message } = err as Error;
    const why = abort.signal.aborted ? `no answer within ${timeoutMs / 1000} s` : message && message !== 'Unknown' ? message : name;
    return { prices: new Map(), note: `${table}; the live spot lookup failed (${why}).` };
  } finally {
    clearTimeout(timer);
    client.destroy();
  }
}
