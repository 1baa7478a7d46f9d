import type { Filter } from '@aws-sdk/client-pricing';
import { PRICE_SOURCE } from '../cost/instances';
import { hasAwsCredentials } from './spot-prices';

/** What the on-demand price lookup did, for the plan's "Prices:" line and its warnings. */
export interface OnDemandLookup {
  /** USD per hour by instance type, for the deploy region; types missing here use the built-in table. */
  readonly prices: ReadonlyMap<string, number>;
  /** One sentence for the "Prices:" line. */
  readonly note: string;
  /** Set when the estimate uses prices of another region than the one the sweep deploys to. */
  readonly warning?: string;
}

/** The "Prices:" sentence when the on-demand prices are the built-in table's. */
export const ON_DEMAND_FROM_TABLE = 'On-demand: built-in table.';

/** Give up after this long: `plan` must never hang on a slow or absent network. */
const LOOKUP_TIMEOUT_MS = 5000;

/**
 * The Price List API answers at three endpoints; the Region "is the API endpoint for the Price List Query API.
 * The endpoints aren't related to product or service attributes": any of them prices every region. The nearest
 * one is asked.
 * @see https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/using-price-list-query-api.html
 * @see https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/using-ppslong.html (the endpoints: us-east-1, eu-central-1, ap-south-1)
 */
export function priceListEndpointRegion(region: string): 'us-east-1' | 'eu-central-1' | 'ap-south-1' {
  if (/^(eu|me|af|il)-/.test(region)) return 'eu-central-1';
  if (/^ap-/.test(region)) return 'ap-south-1';
  return 'us-east-1';
}

/** The warning `plan` prints when its figures are the built-in table's (us-east-1) but the AWS region is another. */
export function tableRegionWarning(region: string, why: string): string {
  return (
    `the AWS region is ${region} (AWS_REGION or AWS_DEFAULT_REGION), but the built-in price table is ${PRICE_SOURCE.region}'s, recorded ${PRICE_SOURCE.recordedOn}: ${why}, ` +
    `so on-demand figures (and spot figures not looked up live) are ${PRICE_SOURCE.region} prices and may be off for ${region}.`
  );
}

/**
 * On-demand prices (Linux, shared tenancy, no preinstalled software) of the given types in the deploy region
 * (AWS_REGION, else AWS_DEFAULT_REGION), from the AWS Price List Query API (GetProducts), when that region is
 * not the built-in table's and AWS credentials are configured. Never throws: without credentials, or when the
 * lookup fails, the table is used and the warning says so.
 * @see https://docs.aws.amazon.com/aws-cost-management/latest/APIReference/API_pricing_GetProducts.html
 */
export async function lookupOnDemandPrices(
  instanceTypes: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs: number = LOOKUP_TIMEOUT_MS,
): Promise<OnDemandLookup> {
  const region = env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  if (region === undefined || region === PRICE_SOURCE.region) return { prices: new Map(), note: ON_DEMAND_FROM_TABLE };
  const table = ON_DEMAND_FROM_TABLE;
  if (!hasAwsCredentials(env)) {
    return { prices: new Map(), note: table, warning: tableRegionWarning(region, 'no AWS credentials were found to read its prices from the AWS Price List API') };
  }
  const endpointRegion = priceListEndpointRegion(region);
  // Loaded only when needed: the SDK takes a noticeable moment to load, and most plans never use it.
  const sdk = await import('@aws-sdk/client-pricing');
  const client = new sdk.PricingClient({
    region: endpointRegion,
    maxAttempts: 1,
    ...(env.AWS_ENDPOINT_URL_PRICING ? { endpoint: env.AWS_ENDPOINT_URL_PRICING } : {}),
    ...(env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
      ? { credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, sessionToken: env.AWS_SESSION_TOKEN } }
      : {}),
  });
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    const found = await Promise.all(
      instanceTypes.map(async (type) => {
        const page = await client.send(new sdk.GetProductsCommand({ ServiceCode: 'AmazonEC2', Filters: productFilters(type, region), MaxResults: 10 }), {
          abortSignal: abort.signal,
        });
        const items = Array.isArray(page.PriceList) ? (page.PriceList as unknown[]) : [];
        const usd = items.map(onDemandUsdPerHour).find((p) => p !== undefined);
        return [type, usd] as const;
      }),
    );
    const prices = new Map(found.filter((f): f is readonly [string, number] => f[1] !== undefined));
    const missing = instanceTypes.filter((t) => !prices.has(t));
    if (missing.length === 0) return { prices, note: `On-demand: AWS Price List API, ${region}.` };
    return {
      prices,
      note: `On-demand: AWS Price List API, ${region}; built-in table for ${missing.join(', ')}.`,
      warning: tableRegionWarning(region, `the AWS Price List API has no on-demand price for ${missing.join(', ')} there`),
    };
  } catch (err) {
    const { name, message } = err as Error;
    const why = abort.signal.aborted ? `no answer within ${timeoutMs / 1000} s` : message && message !== 'Unknown' ? `${name}: ${message}` : name;
    return { prices: new Map(), note: table, warning: tableRegionWarning(region, `reading its prices from the AWS Price List API failed (${why})`) };
  } finally {
    clearTimeout(timer);
    client.destroy();
  }
}

/**
 * One EC2 product: the instance type in the region, Linux, shared tenancy, no SQL or other software, the
 * ordinary (not capacity-reservation) usage line. Attribute names and values of the AmazonEC2 offer
 * (DescribeServices / GetAttributeValues list them).
 * @see https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/using-price-list-query-api.html
 */
function productFilters(instanceType: string, region: string): Filter[] {
  const attributes: Record<string, string> = {
    instanceType,
    regionCode: region,
    operatingSystem: 'Linux',
    tenancy: 'Shared',
    preInstalledSw: 'NA',
    licenseModel: 'No License required',
    capacitystatus: 'Used',
  };
  return Object.entries(attributes).map(([Field, Value]) => ({ Type: 'TERM_MATCH' as const, Field, Value }));
}

/** A price dimension of a term: `unit` ("Hrs" for instance hours) and `pricePerUnit` by currency. */
interface PriceDimension {
  readonly unit?: string;
  readonly pricePerUnit?: { readonly USD?: string };
}

/**
 * The hourly USD price in one GetProducts result ("The list contains both the product metadata and the price
 * information", one JSON document per product: `product`, and `terms.OnDemand.<offer term>` with
 * `priceDimensions.<rate code>.{unit, pricePerUnit}`), or undefined when it has none.
 * @see https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/reading-service-price-list-file-for-services.html
 */
function onDemandUsdPerHour(item: unknown): number | undefined {
  let doc: { terms?: { OnDemand?: Record<string, { priceDimensions?: Record<string, PriceDimension> }> } };
  try {
    doc = typeof item === 'object' && item !== null && !(item instanceof String) ? (item as typeof doc) : JSON.parse(String(item));
  } catch {
    return undefined;
  }
  for (const term of Object.values(doc.terms?.OnDemand ?? {})) {
    for (const dimension of Object.values(term.priceDimensions ?? {})) {
      const usd = Number(dimension.pricePerUnit?.USD);
      if (dimension.unit === 'Hrs' && usd > 0) return usd;
    }
  }
  return undefined;
}
