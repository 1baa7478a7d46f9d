/**
 * The two read-only calls doctor makes besides the session's own clients: STS GetCallerIdentity and Service
 * Quotas ListServiceQuotas. Each takes the client configuration of the session (AwsSession.clientConfig:
 * the same region, profile or keys, and endpoint variables as its other clients), and its client is loaded
 * only when doctor runs and destroyed after the call.
 */

/** An SDK client configuration (AwsSession.clientConfig). */
type ClientConfig = Record<string, unknown>;

/** STS GetCallerIdentity: whose credentials these are. */
export interface CallerIdentity {
  readonly account: string;
  readonly arn: string;
}

/**
 * STS GetCallerIdentity. It needs no permission: an identity that is denied sts:GetCallerIdentity still gets
 * its answer, so a failure here means the credentials themselves.
 * @see https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html
 */
export async function getCallerIdentity(config: ClientConfig): Promise<CallerIdentity> {
  const { STSClient, GetCallerIdentityCommand } = await import('@aws-sdk/client-sts');
  const client = new STSClient(config);
  try {
    const r = await client.send(new GetCallerIdentityCommand({}));
    return { account: r.Account ?? '?', arn: r.Arn ?? '?' };
  } finally {
    client.destroy();
  }
}

/** One quota as ListServiceQuotas returns it (the fields used here). */
export interface ServiceQuota {
  readonly QuotaCode: string;
  readonly QuotaName: string;
  readonly Value?: number;
}

/**
 * Service Quotas ListServiceQuotas, every page: "the applied quota values for the specified AWS service"; for
 * some quotas only the default is available. Regional endpoint servicequotas.<region>.amazonaws.com.
 * @see https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_ListServiceQuotas.html
 * @see https://docs.aws.amazon.com/general/latest/gr/servicequotas.html
 */
export async function listServiceQuotas(config: ClientConfig, serviceCode: string): Promise<ServiceQuota[]> {
  const { ServiceQuotasClient, ListServiceQuotasCommand, ListAWSDefaultServiceQuotasCommand } = await import('@aws-sdk/client-service-quotas');
  const client = new ServiceQuotasClient(config);
  type Page = { Quotas?: { QuotaCode?: string; QuotaName?: string; Value?: number }[]; NextToken?: string };
  const all = async (page: (token: string | undefined) => Promise<Page>): Promise<ServiceQuota[]> => {
    const quotas: ServiceQuota[] = [];
    let token: string | undefined;
    do {
      const p = await page(token);
      for (const q of p.Quotas ?? []) {
        if (q.QuotaCode && q.QuotaName) quotas.push({ QuotaCode: q.QuotaCode, QuotaName: q.QuotaName, ...(typeof q.Value === 'number' ? { Value: q.Value } : {}) });
      }
      token = p.NextToken || undefined;
    } while (token);
    return quotas;
  };
  try {
    const applied = await all((token) => client.send(new ListServiceQuotasCommand({ ServiceCode: serviceCode, MaxResults: 100, NextToken: token })));
    // "If the applied value isn't available for a quota, the quota is not retrieved": a new account's G and P
    // spot quotas may be missing from the applied list, so the defaults (0 vCPUs there) fill the gaps.
    // @see https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_ListAWSDefaultServiceQuotas.html
    let defaults: ServiceQuota[] = [];
    try {
      defaults = await all((token) => client.send(new ListAWSDefaultServiceQuotasCommand({ ServiceCode: serviceCode, MaxResults: 100, NextToken: token })));
    } catch {
      // The applied values are what matters; without the defaults a missing quota is a warning.
    }
    const known = new Set(applied.map((q) => q.QuotaCode));
    return [...applied, ...defaults.filter((q) => !known.has(q.QuotaCode))];
  } finally {
    client.destroy();
  }
}
