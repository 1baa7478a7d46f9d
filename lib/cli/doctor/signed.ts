import { createHash, createHmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentityProvider, Checksum, SourceData } from '@smithy/types';

/**
 * Two read-only calls of services this checkout has no SDK client package for (STS GetCallerIdentity and
 * Service Quotas ListServiceQuotas), made with the SDK's own Signature Version 4 signer and the credentials
 * of the session's other clients, so they use the same profile, keys and region.
 * @see https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv.html
 */

/** SHA-256 (and HMAC-SHA-256 with a secret) for the signer, from Node's crypto. */
class Sha256 implements Checksum {
  private hash;
  constructor(private readonly secret?: SourceData) {
    this.hash = this.make();
  }
  private make() {
    return this.secret === undefined ? createHash('sha256') : createHmac('sha256', toBuffer(this.secret));
  }
  update(data: Uint8Array): void {
    this.hash.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {
    this.hash = this.make();
  }
}

function toBuffer(data: SourceData): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

/** Where and as whom the call is made. */
export interface SignedTarget {
  readonly region: string;
  readonly credentials: AwsCredentialIdentityProvider;
  /** The signing name, e.g. `sts`, `servicequotas`. */
  readonly service: string;
  /** Base URL (an emulator's), else `https://<service>.<region>.amazonaws.com`. */
  readonly endpoint?: string;
  /** @default 10000 */
  readonly timeoutMs?: number;
}

/** An AWS error as the SDK would raise it: `name` is the service's error code. */
export class AwsCallError extends Error {
  constructor(
    name: string,
    message: string,
    public readonly status: number,
    public readonly code?: string,
  ) {
    super(message);
    this.name = name;
  }
}

/** POSTs a signed request and returns the response body; non-2xx answers become {@link AwsCallError}s. */
export async function signedPost(target: SignedTarget, headers: Record<string, string>, body: string, parseError: (status: number, text: string) => AwsCallError): Promise<string> {
  const url = new URL(target.endpoint ?? `https://${target.service}.${target.region}.amazonaws.com`);
  const signer = new SignatureV4({ credentials: target.credentials, region: target.region, service: target.service, sha256: Sha256 });
  const request = await signer.sign({
    method: 'POST',
    protocol: url.protocol,
    hostname: url.hostname,
    ...(url.port ? { port: Number(url.port) } : {}),
    path: url.pathname || '/',
    query: {},
    headers: { ...headers, host: url.host },
    body,
  });
  let response: Response;
  try {
    response = await fetch(url, { method: 'POST', headers: request.headers, body, signal: AbortSignal.timeout(target.timeoutMs ?? 10_000) });
  } catch (err) {
    // fetch wraps socket errors (ECONNREFUSED, ENOTFOUND) in a TypeError whose cause carries the code.
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const e = err as Error;
    throw new AwsCallError(e.name === 'TimeoutError' ? 'TimeoutError' : 'NetworkError', cause?.message ?? e.message, 0, cause?.code ?? (e.name === 'TimeoutError' ? 'ETIMEDOUT' : undefined));
  }
  const text = await response.text();
  if (!response.ok) throw parseError(response.status, text);
  return text;
}

const tag = (xml: string, name: string): string | undefined => new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1];

/** STS GetCallerIdentity: whose credentials these are. */
export interface CallerIdentity {
  readonly account: string;
  readonly arn: string;
}

/**
 * STS GetCallerIdentity (Query protocol, version 2011-06-15). It needs no permission: an identity that is
 * denied sts:GetCallerIdentity still gets its answer, so a failure here means the credentials themselves.
 * @see https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html
 */
export async function getCallerIdentity(target: Omit<SignedTarget, 'service'>): Promise<CallerIdentity> {
  const xml = await signedPost(
    { ...target, service: 'sts' },
    { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
    'Action=GetCallerIdentity&Version=2011-06-15',
    (status, text) => new AwsCallError(tag(text, 'Code') ?? `HTTP${status}`, tag(text, 'Message') ?? text.slice(0, 200), status),
  );
  return { account: tag(xml, 'Account') ?? '?', arn: tag(xml, 'Arn') ?? '?' };
}

/** One quota as ListServiceQuotas returns it (the fields used here). */
export interface ServiceQuota {
  readonly QuotaCode: string;
  readonly QuotaName: string;
  readonly Value?: number;
}

/**
 * Service Quotas ListServiceQuotas (JSON 1.1 protocol, target prefix ServiceQuotasV20190624), every page:
 * "the applied quota values for the specified AWS service"; for some quotas only the default is available.
 * Regional endpoint servicequotas.<region>.amazonaws.com.
 * @see https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_ListServiceQuotas.html
 * @see https://docs.aws.amazon.com/general/latest/gr/servicequotas.html
 */
export async function listServiceQuotas(target: Omit<SignedTarget, 'service'>, serviceCode: string): Promise<ServiceQuota[]> {
  const quotas: ServiceQuota[] = [];
  let token: string | undefined;
  do {
    const text = await signedPost(
      { ...target, service: 'servicequotas' },
      { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'ServiceQuotasV20190624.ListServiceQuotas' },
      JSON.stringify({ ServiceCode: serviceCode, MaxResults: 100, ...(token ? { NextToken: token } : {}) }),
      (status, body) => {
        let doc: { __type?: string; message?: string; Message?: string } = {};
        try {
          doc = JSON.parse(body);
        } catch {
          // not JSON: keep the status
        }
        return new AwsCallError((doc.__type ?? `HTTP${status}`).split('#').pop() as string, doc.message ?? doc.Message ?? body.slice(0, 200), status);
      },
    );
    const page = JSON.parse(text) as { Quotas?: ServiceQuota[]; NextToken?: string };
    quotas.push(...(page.Quotas ?? []));
    token = page.NextToken || undefined;
  } while (token);
  return quotas;
}
