import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DescribeSpotPriceHistoryCommand, EC2Client } from '@aws-sdk/client-ec2';
import { GetProductsCommand, PricingClient } from '@aws-sdk/client-pricing';
import { mockClient } from 'aws-sdk-client-mock';
import { main } from '../../lib/cli/main';
import { PlanJson } from '../../lib/cli/commands/plan';
import { priceListEndpointRegion } from '../../lib/cli/on-demand-prices';
import { INSTANCES } from '../../lib/cost/instances';

/**
 * `plan` outside us-east-1, whose prices the built-in table holds: on-demand prices of the region from the AWS
 * Price List API (a stubbed PricingClient), or the table with a warning. EC2 (live spot prices) is stubbed too.
 */
const pricing = mockClient(PricingClient);
const ec2 = mockClient(EC2Client);
beforeEach(() => {
  pricing.reset();
  ec2.reset();
  ec2.on(DescribeSpotPriceHistoryCommand).resolves({ SpotPriceHistory: [] });
});
afterAll(() => {
  pricing.restore();
  ec2.restore();
});

const dir = mkdtempSync(path.join(os.tmpdir(), 'spot-sweep-prices-'));
const spec = path.join(dir, 'od.json');
writeFileSync(spec, JSON.stringify({ name: 'od', budgetUsd: 100, data: 's3://data-bucket/x/', configs: [{ name: 'a', examples: 1_000_000, market: 'on-demand', instanceTypes: ['g5.xlarge'] }] }));

const credentials = { AWS_ACCESS_KEY_ID: 'AKIATEST', AWS_SECRET_ACCESS_KEY: 'secret' };
async function plan(env: Record<string, string>, ...args: string[]) {
  let stdout = '';
  const code = await main(['plan', spec, ...args], { out: (t) => (stdout += t), err: () => undefined, env: { HOME: dir, ...env } });
  return { code, stdout };
}
/** One GetProducts result as the Price List API returns it: the product and its on-demand term. */
const product = (usd: string) =>
  JSON.stringify({
    product: { productFamily: 'Compute Instance', attributes: { instanceType: 'g5.xlarge', regionCode: 'eu-west-1', operatingSystem: 'Linux' } },
    terms: { OnDemand: { 'SKU1.JRTCKXETXF': { priceDimensions: { 'SKU1.JRTCKXETXF.6YS6EN2CT7': { unit: 'Hrs', pricePerUnit: { USD: usd } } } } } },
  });

test("with credentials in eu-west-1: the region's on-demand price from the Price List API, asked at the nearest endpoint", async () => {
  pricing.on(GetProductsCommand).resolves({ PriceList: [product('1.5000000000')] });
  const { code, stdout } = await plan({ ...credentials, AWS_REGION: 'eu-west-1' }, '--json');
  expect(code).toBe(0);
  const doc = JSON.parse(stdout) as PlanJson;
  const [e] = doc.configs[0].instances;
  expect(e.onDemandPriceLive).toBe(true);
  expect(e.onDemandUsd).toBeCloseTo(e.runtimeHours * 1.5, 6);
  expect(doc.prices).toMatch(/On-demand: AWS Price List API, eu-west-1\./);
  expect(doc.warnings).toEqual([]);

  const [call] = pricing.commandCalls(GetProductsCommand);
  expect(call.args[0].input).toMatchObject({ ServiceCode: 'AmazonEC2' });
  expect(call.args[0].input.Filters).toEqual(
    expect.arrayContaining([
      { Type: 'TERM_MATCH', Field: 'instanceType', Value: 'g5.xlarge' },
      { Type: 'TERM_MATCH', Field: 'regionCode', Value: 'eu-west-1' },
      { Type: 'TERM_MATCH', Field: 'operatingSystem', Value: 'Linux' },
      { Type: 'TERM_MATCH', Field: 'tenancy', Value: 'Shared' },
    ]),
  );
  expect(await (call.thisValue as PricingClient).config.region()).toBe('eu-central-1');
});

test('the Price List API endpoints are us-east-1, eu-central-1 and ap-south-1', () => {
  expect(['us-west-2', 'eu-west-1', 'ap-northeast-1', 'sa-east-1', 'me-central-1'].map(priceListEndpointRegion)).toEqual(['us-east-1', 'eu-central-1', 'ap-south-1', 'us-east-1', 'eu-central-1']);
});

test('fails over to the table when the Price List API refuses: the warning names the region, the table region and the error', async () => {
  pricing.on(GetProductsCommand).rejects(Object.assign(new Error('User is not authorized to perform: pricing:GetProducts'), { name: 'AccessDeniedException' }));
  const { code, stdout } = await plan({ ...credentials, AWS_REGION: 'eu-west-1' }, '--json');
  expect(code).toBe(0);
  const doc = JSON.parse(stdout) as PlanJson;
  expect(doc.configs[0].instances[0].onDemandPriceLive).toBe(false);
  expect(doc.configs[0].instances[0].onDemandUsd).toBeCloseTo(doc.configs[0].instances[0].runtimeHours * INSTANCES.get('g5.xlarge')!.onDemandUsdPerHour, 6);
  expect(doc.warnings).toEqual([
    expect.stringMatching(
      /^the AWS region is eu-west-1 \(AWS_REGION or AWS_DEFAULT_REGION\), but the built-in price table is us-east-1's, recorded [\d-]+: reading its prices from the AWS Price List API failed \(AccessDeniedException: User is not authorized to perform: pricing:GetProducts\), so on-demand figures .* are us-east-1 prices and may be off for eu-west-1\.$/,
    ),
  ]);
});

test('warns, without calling AWS, when the region is not us-east-1 and there are no credentials, or --offline is given', async () => {
  const none = await plan({ AWS_REGION: 'eu-west-1' });
  expect(none.stdout).toMatch(/^Warning: the AWS region is eu-west-1 .*: no AWS credentials were found to read its prices from the AWS Price List API, so on-demand figures .* may be off for eu-west-1\.$/m);
  expect(none.stdout).toMatch(/^Prices: .*On-demand: built-in table\. Table: us-east-1, recorded/m);
  const offline = await plan({ ...credentials, AWS_DEFAULT_REGION: 'ap-southeast-2' }, '--offline');
  expect(offline.stdout).toMatch(/^Warning: the AWS region is ap-southeast-2 .*: --offline was given, so on-demand figures/m);
  expect(pricing.commandCalls(GetProductsCommand)).toHaveLength(0);
});

test('in us-east-1 the table is the region\'s own: no Price List call, no warning', async () => {
  const { stdout } = await plan({ ...credentials, AWS_REGION: 'us-east-1' });
  expect(stdout).not.toMatch(/Warning/);
  expect(pricing.commandCalls(GetProductsCommand)).toHaveLength(0);
});
