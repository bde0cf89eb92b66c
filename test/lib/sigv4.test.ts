import { execFileSync } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { ExportResultCode } from '@opentelemetry/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { traceInvokeHandler } from '../../lib';
import { readTelemetryConfig } from '../../lib/config';
import { OtlpHttpSpanExporter } from '../../lib/export/otlp-exporter';
import { startTelemetry } from '../../lib/telemetry';
import { lambdaContext, MemorySpanExporter } from '../../lib/testing';

// The signature is checked by an independent computation written from AWS's SigV4 specification ("Create a
// signed AWS API request": canonical request, string to sign, derived signing key), not by the signer's code.
const CREDENTIALS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', sessionToken: 'FwoGZXIvYXdzEXAMPLETOKEN' };
const REGION = 'eu-west-1';

interface Received {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

let server: Server;
let url: string;
const received: Received[] = [];

beforeAll(async () => {
  server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({ method: request.method!, path: request.url!, headers: request.headers, body: Buffer.concat(chunks) });
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((done) => server.close(done));
});

/** Exports the spans of one traced invocation with the given exporter and returns the request the server got. */
async function exportOneInvocation(exporter: OtlpHttpSpanExporter): Promise<Received> {
  const before = received.length;
  startTelemetry(readTelemetryConfig({ OTEL_SERVICE_NAME: 'signed' }), { exporter });
  await traceInvokeHandler(async () => 'done')({}, lambdaContext({ functionName: 'signed-fn' }));
  expect(received).toHaveLength(before + 1);
  return received[before];
}

const lowerCased = (headers: Record<string, string>): IncomingHttpHeaders =>
  Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();

/** Recomputes the request's SigV4 signature from what arrived, with the given secret. */
function expectedSignature(request: Received, secret: string) {
  const authorization = String(request.headers.authorization);
  const match = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(
    authorization,
  );
  if (!match) throw new Error(`not a SigV4 Authorization header: ${authorization}`);
  const [, accessKeyId, date, region, service, signedHeaders, signature] = match;
  const canonicalHeaders = signedHeaders
    .split(';')
    .map((name) => `${name}:${String(request.headers[name]).trim().replace(/\s+/g, ' ')}\n`)
    .join('');
  const [path, query = ''] = request.path.split('?');
  const canonicalRequest = [request.method, path, query, canonicalHeaders, signedHeaders, sha256(request.body)].join('\n');
  const amzDate = String(request.headers['x-amz-date']);
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n');
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request');
  return { accessKeyId, date, region, service, signedHeaders: signedHeaders.split(';'), signature, expected: hmac(signingKey, stringToSign).toString('hex') };
}

// The same check by botocore, AWS's Python SDK (Debian's python3-botocore): its SigV4Auth canonicalises the request
// as it arrived, the query string read as AWS reads it (names and values percent-decoded, "+" a plus sign).
const BOTOCORE_SIGNATURE = `
import base64, json, sys
from urllib.parse import parse_qsl
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
r = json.load(sys.stdin)
path, _, query = r['path'].partition('?')
params = parse_qsl(query.replace('+', '%2B'), keep_blank_values=True)
request = AWSRequest(method=r['method'], url='https://' + r['headers']['host'] + path, params=params, data=base64.b64decode(r['body']), headers=r['headers'])
request.context['timestamp'] = r['headers']['x-amz-date']
auth = SigV4Auth(Credentials(r['accessKeyId'], r['secretAccessKey'], r['sessionToken']), r['service'], r['region'])
print(auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request))
`;

/** The signature botocore computes for the request as it arrived, over the headers the request says it signed. */
function botocoreSignature(request: Received, secretAccessKey: string): string {
  const { service, region, signedHeaders } = expectedSignature(request, secretAccessKey);
  const headers = Object.fromEntries(signedHeaders.map((name) => [name, String(request.headers[name])]));
  const input = JSON.stringify({
    method: request.method,
    path: request.path,
    headers,
    body: request.body.toString('base64'),
    accessKeyId: CREDENTIALS.accessKeyId,
    secretAccessKey,
    sessionToken: CREDENTIALS.sessionToken,
    service,
    region,
  });
  return execFileSync('python3', ['-c', BOTOCORE_SIGNATURE], { input, encoding: 'utf8' }).trim();
}

describe('SigV4-signed OTLP export', () => {
  it('signs each request as SigV4 defines, for xray in the region, with the session token', async () => {
    const request = await exportOneInvocation(
      new OtlpHttpSpanExporter({ url, headers: {}, timeoutMs: 2000, signing: { service: 'xray', region: REGION, credentials: CREDENTIALS } }),
    );

    const check = expectedSignature(request, CREDENTIALS.secretAccessKey);
    expect(check.signature).toBe(check.expected);
    expect(check).toMatchObject({ accessKeyId: CREDENTIALS.accessKeyId, region: REGION, service: 'xray' });
    expect(check.signedHeaders).toEqual(expect.arrayContaining(['content-type', 'host', 'x-amz-date', 'x-amz-security-token']));
    expect(request.headers['x-amz-security-token']).toBe(CREDENTIALS.sessionToken);
    // Signed now, in UTC, for today's scope.
    const amzDate = String(request.headers['x-amz-date']);
    expect(amzDate.slice(0, 8)).toBe(check.date);
    const signedAt = Date.parse(
      `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
    );
    expect(Math.abs(Date.now() - signedAt)).toBeLessThan(60_000);
    // The body AWS expects: OTLP JSON with the invocation's span.
    expect(request.headers['content-type']).toBe('application/json');
    const sent = JSON.parse(request.body.toString('utf8'));
    expect(sent.resourceSpans[0].scopeSpans[0].spans.map((span: { name: string }) => span.name)).toEqual(['signed-fn']);
    // The check itself tells a wrong key apart.
    const forged = expectedSignature(request, 'not-the-secret');
    expect(forged.signature).not.toBe(forged.expected);
  });

  it('signs the gzip-compressed body it sends', async () => {
    const request = await exportOneInvocation(
      new OtlpHttpSpanExporter({
        url,
        headers: {},
        timeoutMs: 2000,
        compression: 'gzip',
        signing: { service: 'xray', region: REGION, credentials: CREDENTIALS },
      }),
    );

    const check = expectedSignature(request, CREDENTIALS.secretAccessKey);
    expect(check.signature).toBe(check.expected);
    expect(request.headers['content-encoding']).toBe('gzip');
    expect(check.signedHeaders).toContain('content-encoding');
    expect(JSON.parse(gunzipSync(request.body).toString('utf8')).resourceSpans).toHaveLength(1);
  });

  it('signs the query string of the traces URL, repeated names and characters that need escaping included', async () => {
    const query = "?tenant=a%20b&tag=z&tag=a&path=%2Fteam%2Fkey&plain=c+d&sign=x%3Dy&empty=&flag&unicode=%C3%A9&marks=!*'()~";
    const request = await exportOneInvocation(
      new OtlpHttpSpanExporter({ url: `${url}${query}`, headers: {}, timeoutMs: 2000, signing: { service: 'xray', region: REGION, credentials: CREDENTIALS } }),
    );

    // Sent as the URL standard serialises it (which escapes the quote), and signed as sent.
    expect(request.path).toBe(`/v1/traces${query.replace("'", '%27')}`);
    const [, signature] = /Signature=([0-9a-f]{64})$/.exec(String(request.headers.authorization))!;
    expect(botocoreSignature(request, CREDENTIALS.secretAccessKey)).toBe(signature);
    // botocore tells a wrong key, and a query string the signature does not cover, apart.
    expect(botocoreSignature(request, 'not-the-secret')).not.toBe(signature);
    expect(botocoreSignature({ ...request, path: request.path.replace('tag=z', 'tag=y') }, CREDENTIALS.secretAccessKey)).not.toBe(signature);
  });

  it('gives the signature botocore computes for a request without a query string', async () => {
    const request = await exportOneInvocation(
      new OtlpHttpSpanExporter({ url, headers: {}, timeoutMs: 2000, signing: { service: 'xray', region: REGION, credentials: CREDENTIALS } }),
    );

    expect(botocoreSignature(request, CREDENTIALS.secretAccessKey)).toBe(/Signature=([0-9a-f]{64})$/.exec(String(request.headers.authorization))![1]);
  });

  it('signs the requests a crashing process sends before the event loop takes another turn', async () => {
    // Arrange: the spans of one invocation, and a turn of the event loop that must not come first.
    const memory = new MemorySpanExporter();
    startTelemetry(readTelemetryConfig({ OTEL_SERVICE_NAME: 'signed' }), { exporter: memory });
    await traceInvokeHandler(async () => 'done')({}, lambdaContext({ functionName: 'signed-fn' }));
    const exporter = new OtlpHttpSpanExporter({ url, headers: {}, timeoutMs: 2000, signing: { service: 'xray', region: REGION, credentials: CREDENTIALS } });
    let turned = false;
    setImmediate(() => (turned = true));

    // Act
    const prepared = await exporter.prepareBeforeCrash(memory.spans);

    // Assert: signed, as it will be sent from the worker thread, before the runtime's callbacks could run.
    expect(turned).toBe(false);
    if (typeof prepared === 'string') throw new Error(prepared);
    expect(prepared).toHaveLength(1);
    const [{ url: target, headers, body, spanCount }] = prepared;
    expect(target).toBe(url);
    expect(spanCount).toBe(1);
    const request: Received = { method: 'POST', path: '/v1/traces', headers: lowerCased(headers), body: Buffer.from(body) };
    const check = expectedSignature(request, CREDENTIALS.secretAccessKey);
    expect(check.signature).toBe(check.expected);
    expect(check.signedHeaders).toEqual(expect.arrayContaining(['content-length', 'content-type', 'host', 'x-amz-date', 'x-amz-security-token']));
    expect(botocoreSignature(request, CREDENTIALS.secretAccessKey)).toBe(check.signature);
    expect(JSON.parse(request.body.toString('utf8')).resourceSpans[0].scopeSpans[0].spans.map((span: { name: string }) => span.name)).toEqual(['signed-fn']);
  });

  it('fails the export with a clear reason, sending nothing, when the environment holds no credentials', async () => {
    const before = received.length;
    const exporter = new OtlpHttpSpanExporter({ url, headers: {}, timeoutMs: 2000, signing: { service: 'xray', region: REGION, credentials: undefined } });
    const result = await new Promise<{ code: number; error?: Error }>((done) => exporter.export([], done));

    expect(result.code).toBe(ExportResultCode.FAILED);
    expect(result.error?.message).toBe('signing for xray in eu-west-1 needs AWS credentials, and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set');
    expect(received).toHaveLength(before);
  });
});

describe('the CloudWatch OTLP endpoint in the configuration', () => {
  const credentials = {
    AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
    AWS_SESSION_TOKEN: CREDENTIALS.sessionToken,
  };

  it('signs for xray in the region the endpoint names, with the role credentials Lambda provides', () => {
    const config = readTelemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://xray.ap-southeast-2.amazonaws.com', AWS_REGION: 'eu-west-1', ...credentials });

    expect(config.otlpTracesUrl).toBe('https://xray.ap-southeast-2.amazonaws.com/v1/traces');
    expect(config.otlpSigning).toEqual({ service: 'xray', region: 'ap-southeast-2', credentials: CREDENTIALS });
    expect(config.warnings).toEqual([]);
  });

  it('signs nothing for any other endpoint, or when spans are not sent over OTLP', () => {
    expect(readTelemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otlp.example.com', ...credentials }).otlpSigning).toBeUndefined();
    expect(readTelemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://xray.example.com', ...credentials }).otlpSigning).toBeUndefined();
    expect(
      readTelemetryConfig({ OTEL_TRACES_EXPORTER: 'console', OTEL_EXPORTER_OTLP_ENDPOINT: 'https://xray.eu-west-1.amazonaws.com', ...credentials }).otlpSigning,
    ).toBeUndefined();
  });

  it('says at start-up that spans cannot be exported when the credentials are missing', () => {
    const config = readTelemetryConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://xray.eu-west-1.amazonaws.com/v1/traces' });

    expect(config.otlpSigning).toEqual({ service: 'xray', region: 'eu-west-1', credentials: undefined });
    expect(config.warnings).toEqual([
      'https://xray.eu-west-1.amazonaws.com/v1/traces needs SigV4-signed requests, and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set: spans cannot be exported.',
    ]);
  });

  it('reads OTEL_EXPORTER_OTLP_COMPRESSION, the traces-specific variable first', () => {
    expect(readTelemetryConfig({}).otlpCompression).toBe('none');
    expect(readTelemetryConfig({ OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip' }).otlpCompression).toBe('gzip');
    expect(readTelemetryConfig({ OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip', OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: 'none' }).otlpCompression).toBe('none');
    const config = readTelemetryConfig({ OTEL_EXPORTER_OTLP_COMPRESSION: 'brotli' });
    expect(config.otlpCompression).toBe('none');
    expect(config.warnings).toEqual(['OTEL_EXPORTER_OTLP_COMPRESSION="brotli" is not gzip or none; sending uncompressed.']);
  });
});
