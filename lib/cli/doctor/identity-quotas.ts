import type { AwsCredentialIdentityProvider } from '@smithy/types';

/**
 * The two read-only calls doctor makes besides the session's own clients: STS GetCallerIdentity and Service
 * Quotas ListServiceQuotas, with the credentials and region of the session's other clients (same profile,
 * keys and region), each client loaded only when doctor runs.
 */

/** Where and as whom the call is made. */
export interface CallTarget {
  readonly region: string;
  readonly credentials: AwsCredentialIdentityProvider;
  /** An emulator's base URL; else the service's regional endpoint. */
  readonly endpoint?: string;
}

const clientConfig = (t: CallTarget) => ({ region: t.region, credentials: t.credentials, maxAttempts: 3, ...(t.endpoint ? { endpoint: t.endpoint } : {}) });

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
export async function getCallerIdentity(target: CallTarget): Promise<CallerIdentity> {
  const { STSClient, GetCallerIdentityCommand } = await import('@aws-sdk/client-sts');
  const client = new STSClient(clientConfig(target));
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
export async function listServiceQuotas(target: CallTarget, serviceCode: string): Promise<ServiceQuota[]> {
  const { ServiceQuotasClient, ListServiceQuotasCommand } = await import('@aws-sdk/client-service-quotas');
  const client = new ServiceQuotasClient(clientConfig(target));
  const quotas: ServiceQuota[] = [];
  try {
    let token: string | undefined;
    do {
      const page = await client.send(new ListServiceQuotasCommand({ ServiceCode: serviceCode, MaxResults: 100, NextToken: token }));
      for (const q of page.Quotas ?? []) {
        if (q.QuotaCode && q.QuotaName) quotas.push({ QuotaCode: q.QuotaCode, QuotaName: q.QuotaName, ...(typeof q.Value === 'number' ? { Value: q.Value } : {}) });
      }
      token = page.NextToken || undefined;
    } while (token);
  } finally {
    client.destroy();
  }
  return quotas;
}
