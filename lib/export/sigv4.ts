/**
 * AWS Signature Version 4 for OTLP requests to an AWS endpoint (CloudWatch's `https://xray.<region>.amazonaws.com/
 * v1/traces`), with AWS's own signer, `@smithy/signature-v4`, the code the AWS SDK v3 signs its own requests with,
 * over Node.js's SHA-256. The signer is bundled (the Lambda runtime's copy of the SDK does not promise it) and
 * evaluated, with node:crypto, when the first export is signed, not when the function starts.
 */

/** What the signer hashes: text or bytes. */
type SourceData = string | ArrayBuffer | ArrayBufferView;

/** The function's role credentials, as the Lambda runtime puts them in the environment. */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface SigningConfig {
  /** The signing name of the service: `xray` for the CloudWatch OTLP traces endpoint. */
  service: string;
  region: string;
  /** Undefined when the environment holds none: every export then fails, saying why. */
  credentials: AwsCredentials | undefined;
}

export interface RequestToSign {
  method: string;
  protocol: string;
  hostname: string;
  port?: number;
  /** The path and query string as sent (`/v1/traces?key=value`). */
  path: string;
  headers: Record<string, string>;
  body: Uint8Array;
}

/** Resolves with the headers to send: the request's own plus host, x-amz-date, the token and Authorization. */
export type RequestSigner = (request: RequestToSign) => Promise<Record<string, string>>;

export function createRequestSigner({ service, region, credentials }: SigningConfig): RequestSigner {
  if (!credentials) {
    const missing = new Error(`signing for ${service} in ${region} needs AWS credentials, and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set`);
    return () => Promise.reject(missing);
  }
  // Requires, not imports: esbuild then evaluates the signer's modules, and Node.js loads node:crypto (several
  // milliseconds at a cold start), on this first call only.
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { SignatureV4 } = require('@smithy/signature-v4') as typeof import('@smithy/signature-v4');
  const { createHash, createHmac } = require('node:crypto') as typeof import('node:crypto');
  /* eslint-enable @typescript-eslint/no-require-imports */
  // The signer's hash interface over Node.js's SHA-256 and HMAC-SHA-256 (what @smithy/core's Hash does; importing
  // that one would load node:crypto at start-up, requiring it would bundle all of @smithy/core/serde).
  class Sha256 {
    private hash;
    constructor(private readonly secret?: SourceData) {
      this.hash = this.start();
    }
    update(data: SourceData): void {
      this.hash.update(toBytes(data));
    }
    async digest(): Promise<Uint8Array> {
      return new Uint8Array(this.hash.digest());
    }
    reset(): void {
      this.hash = this.start();
    }
    private start() {
      return this.secret === undefined ? createHash('sha256') : createHmac('sha256', toBytes(this.secret));
    }
  }
  const signer = new SignatureV4({ service, region, credentials, sha256: Sha256, uriEscapePath: true });
  return async ({ hostname, port, headers, path: pathAndQuery, ...request }) => {
    const host = port ? `${hostname}:${port}` : hostname;
    const [path, query] = splitQuery(pathAndQuery);
    const signed = await signer.sign({ ...request, hostname, port, path, query, headers: { ...headers, host } });
    return signed.headers;
  };
}

/**
 * The path as sent, and its query as the record the signer canonicalises (it sorts and escapes the names and
 * values, repeated names included): AWS refuses a request whose query string is not in the signature.
 */
function splitQuery(pathAndQuery: string): [string, Record<string, string | string[]>] {
  const at = pathAndQuery.indexOf('?');
  if (at < 0) return [pathAndQuery, {}];
  const query: Record<string, string | string[]> = {};
  // A "+" in a URL's query is a plus sign (RFC 3986), as AWS reads it, not the space of HTML forms.
  for (const [name, value] of new URLSearchParams(pathAndQuery.slice(at + 1).replaceAll('+', '%2B'))) {
    const seen = query[name];
    query[name] = seen === undefined ? value : [...(Array.isArray(seen) ? seen : [seen]), value];
  }
  return [pathAndQuery.slice(0, at), query];
}

function toBytes(data: SourceData): Uint8Array | string {
  if (typeof data === 'string') return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}

/** `xray.<region>.amazonaws.com` (and the China partition's `.com.cn`): the CloudWatch OTLP traces endpoint. */
export function xraySigningRegion(url: string): string | undefined {
  try {
    return /^xray\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/.exec(new URL(url).hostname)?.[1];
  } catch {
    return undefined;
  }
}
