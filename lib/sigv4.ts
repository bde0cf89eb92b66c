/**
 * AWS Signature Version 4 for OTLP requests to an AWS endpoint (CloudWatch's `https://xray.<region>.amazonaws.com/
 * v1/traces`), with AWS's own signer: `@smithy/signature-v4` and the SHA-256 of `@smithy/core`, the code the AWS
 * SDK v3 signs its own requests with. The signer is bundled (the Lambda runtime's copy of the SDK does not promise
 * it) and evaluated when the first export is signed, not when the function starts.
 */
import { Hash } from '@smithy/core/serde';

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
  path: string;
  headers: Record<string, string>;
  body: Uint8Array;
}

/** Resolves with the headers to send: the request's own plus host, x-amz-date, the token and Authorization. */
export type RequestSigner = (request: RequestToSign) => Promise<Record<string, string>>;

export function createRequestSigner({ service, region, credentials }: SigningConfig): RequestSigner {
  if (!credentials) {
    const missing = new Error(
      `signing for ${service} in ${region} needs AWS credentials, and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set`,
    );
    return () => Promise.reject(missing);
  }
  // A require, not an import: esbuild then evaluates the signer's modules on this first call only. (The hash is
  // imported: a require would keep the whole of @smithy/core/serde, ~40 KB, in every bundle.)
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { SignatureV4 } = require('@smithy/signature-v4') as typeof import('@smithy/signature-v4');
  const signer = new SignatureV4({ service, region, credentials, sha256: Hash.bind(null, 'sha256'), uriEscapePath: true });
  return async ({ hostname, port, headers, ...request }) => {
    const host = port ? `${hostname}:${port}` : hostname;
    const signed = await signer.sign({ ...request, hostname, port, query: {}, headers: { ...headers, host } });
    return signed.headers;
  };
}

/** `xray.<region>.amazonaws.com` (and the China partition's `.com.cn`): the CloudWatch OTLP traces endpoint. */
export function xraySigningRegion(url: string): string | undefined {
  try {
    return /^xray\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/.exec(new URL(url).hostname)?.[1];
  } catch {
    return undefined;
  }
}
