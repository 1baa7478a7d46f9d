import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { lookupSpotPrices } from '../../lib/cli/spot-prices';

/** A stand-in EC2 endpoint on localhost; `respond` false never answers (a hung network). */
async function fakeEc2(respond: boolean): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    req.resume();
    if (!respond) return;
    res.writeHead(200, { 'content-type': 'text/xml' });
    res.end(`<DescribeSpotPriceHistoryResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>r-1</requestId>
  <spotPriceHistorySet>
    <item><instanceType>p3.2xlarge</instanceType><productDescription>Linux/UNIX</productDescription><spotPrice>0.900000</spotPrice><timestamp>2026-11-28T00:00:00.000Z</timestamp><availabilityZone>us-east-1a</availabilityZone></item>
    <item><instanceType>p3.2xlarge</instanceType><productDescription>Linux/UNIX</productDescription><spotPrice>1.100000</spotPrice><timestamp>2026-11-28T00:00:00.000Z</timestamp><availabilityZone>us-east-1b</availabilityZone></item>
  </spotPriceHistorySet>
  <nextToken></nextToken>
</DescribeSpotPriceHistoryResponse>`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const credentials = { AWS_ACCESS_KEY_ID: 'AKIATEST', AWS_SECRET_ACCESS_KEY: 'secret', AWS_REGION: 'us-east-1', HOME: '/nonexistent' };

describe('live spot price lookup', () => {
  test('averages the current price over AZs and names the types it found no price for', async () => {
    const { server, url } = await fakeEc2(true);
    try {
      const r = await lookupSpotPrices(['p3.2xlarge', 'g5.xlarge'], { ...credentials, AWS_ENDPOINT_URL_EC2: url });
      expect(r.prices.get('p3.2xlarge')).toBeCloseTo(1.0);
      expect(r.note).toMatch(/live spot prices from EC2 DescribeSpotPriceHistory in us-east-1.*no live price for g5\.xlarge/);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  test('gives up after its timeout when the endpoint does not answer, and falls back to the table', async () => {
    const { server, url } = await fakeEc2(false);
    try {
      const started = Date.now();
      const r = await lookupSpotPrices(['p3.2xlarge'], { ...credentials, AWS_ENDPOINT_URL_EC2: url }, 300);
      expect(Date.now() - started).toBeLessThan(3000);
      expect(r.prices.size).toBe(0);
      expect(r.note).toMatch(/live spot lookup failed \(no answer within 0\.3 s\)/);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  test('does not call AWS without credentials', async () => {
    const r = await lookupSpotPrices(['p3.2xlarge'], { HOME: '/nonexistent' });
    expect(r.note).toMatch(/no AWS credentials found/);
  });
});
