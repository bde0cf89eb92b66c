import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SpanExporter } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTelemetryConfig } from '../../lib/config';
import { traceHttpHandler, traceInvokeHandler, traceSqsRecords } from '../../lib';
import { startTelemetry } from '../../lib/telemetry';
import { apiGatewayV2Event, captureSpans, lambdaContext, MemorySpanExporter } from '../../lib/testing';
import { closedPort } from '../closed-port';

describe('telemetry never changes the result', () => {
  it('answers as usual when the OTLP endpoint refuses connections', async () => {
    startTelemetry(readTelemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${await closedPort()}` }));
    const handler = traceHttpHandler(async () => ({ statusCode: 201, body: 'created' }));

    await expect(handler(apiGatewayV2Event(), lambdaContext())).resolves.toEqual({ statusCode: 201, body: 'created' });
  });

  it('bounds the flush when the exporter never answers', async () => {
    const silent: SpanExporter = { export: () => undefined, shutdown: async () => undefined };
    startTelemetry(readTelemetryConfig({ OTEL_EXPORTER_OTLP_TIMEOUT: '50' }), { exporter: silent });
    const handler = traceInvokeHandler(async () => 'done');

    const started = Date.now();
    await expect(handler({}, lambdaContext())).resolves.toBe('done');
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('never waits for the export past what is left of the invocation', async () => {
    const silent: SpanExporter = { export: () => undefined, shutdown: async () => undefined };
    startTelemetry(readTelemetryConfig({ OTEL_EXPORTER_OTLP_TIMEOUT: '5000' }), { exporter: silent });
    const handler = traceInvokeHandler(async () => 'done');
    const almostOut = { ...lambdaContext(), getRemainingTimeInMillis: () => 120 };

    const started = Date.now();
    await expect(handler({}, almostOut)).resolves.toBe('done');
    // 120 ms left, less the 50 ms margin: the flush gives up after ~70 ms instead of the configured 5 s.
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('answers as usual when the exporter throws', async () => {
    const broken: SpanExporter = {
      export: () => {
        throw new Error('exporter bug');
      },
      shutdown: async () => undefined,
    };
    startTelemetry(readTelemetryConfig({}), { exporter: broken });
    const handler = traceInvokeHandler(async () => 'done');

    await expect(handler({}, lambdaContext())).resolves.toBe('done');
  });

  it('exports nothing and still answers with OTEL_TRACES_EXPORTER=none', async () => {
    const telemetry = startTelemetry(readTelemetryConfig({ OTEL_TRACES_EXPORTER: 'none' }));
    const handler = traceInvokeHandler(async () => 'done');

    await expect(handler({}, lambdaContext())).resolves.toBe('done');
    await expect(telemetry.flush()).resolves.toBeUndefined();
  });
});

describe('OTLP/HTTP export', () => {
  let server: Server;
  const bodies: unknown[] = [];
  beforeAll(async () => {
    server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        bodies.push({ url: request.url, type: request.headers['content-type'], body: JSON.parse(Buffer.concat(chunks).toString()) });
        response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  it('sends the invocation spans as OTLP JSON to the configured endpoint before returning', async () => {
    const { port } = server.address() as AddressInfo;
    startTelemetry(
      readTelemetryConfig({
        OTEL_SERVICE_NAME: 'create-order',
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
        AWS_LAMBDA_FUNCTION_NAME: 'order-pipeline-dev-create-order',
        AWS_REGION: 'eu-west-1',
      }),
    );
    const handler = traceHttpHandler(async () => ({ statusCode: 200 }));

    await handler(apiGatewayV2Event(), lambdaContext());

    expect(bodies).toHaveLength(1);
    const [{ url, type, body }] = bodies as [{ url: string; type: string; body: any }];
    expect(url).toBe('/v1/traces');
    expect(type).toBe('application/json');
    const [resourceSpans] = body.resourceSpans;
    const resource = Object.fromEntries(
      resourceSpans.resource.attributes.map((a: { key: string; value: { stringValue?: string } }) => [a.key, a.value.stringValue]),
    );
    expect(resource).toMatchObject({
      'service.name': 'create-order',
      'cloud.provider': 'aws',
      'cloud.region': 'eu-west-1',
      'faas.name': 'order-pipeline-dev-create-order',
    });
    expect(resourceSpans.scopeSpans[0].spans.map((span: { name: string }) => span.name)).toEqual(['POST /orders']);
  });
});

describe('sampling', () => {
  it('exports nothing for new traces with OTEL_TRACES_SAMPLER=always_off, and follows a sampled parent when parent-based', async () => {
    const exporter = new MemorySpanExporter();
    startTelemetry(readTelemetryConfig({ OTEL_TRACES_SAMPLER: 'parentbased_always_off' }), { exporter });
    const handler = traceHttpHandler(async () => ({ statusCode: 200 }));

    await handler(apiGatewayV2Event(), lambdaContext());
    await handler(apiGatewayV2Event({ headers: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' } }), lambdaContext());

    expect(exporter.spans.map((span) => span.spanContext().traceId)).toEqual(['4bf92f3577b34da6a3ce929d0e0e4736']);
  });
});

describe('events that are not what their type says', () => {
  it('still runs the handler, untraced where nothing can be read', async () => {
    captureSpans();
    const seen: unknown[] = [];
    const http = traceHttpHandler(async (event: unknown) => {
      seen.push(event);
      return { statusCode: 204 };
    });
    const invoke = traceInvokeHandler(async (event: unknown) => {
      seen.push(event);
      return 'ok';
    });
    const sqs = traceSqsRecords(async (record) => {
      seen.push(record.body);
    });

    await expect(http(undefined as never, lambdaContext())).resolves.toEqual({ statusCode: 204 });
    await expect(invoke('plain', undefined as never)).resolves.toBe('ok');
    await expect(sqs({ Records: [{ body: 'x' }] } as never, lambdaContext())).resolves.toEqual({ batchItemFailures: [] });
    expect(seen).toEqual([undefined, 'plain', 'x']);
  });
});
