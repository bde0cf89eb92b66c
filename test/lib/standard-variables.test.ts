import { context, trace } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { currentTraceHeaders, traceInvokeHandler, withSpan } from '../../lib';
import { readTelemetryConfig } from '../../lib/config';
import { captureSpans, lambdaContext } from '../../lib/testing';
import { SPAN_ID, TRACE_ID, TRACEPARENT } from '../trace-ids';

// The standard OpenTelemetry variables the kit honours beyond the exporter's (each row of README's table).
const invokedWith = (custom: Record<string, string>) => lambdaContext({ functionName: 'fn', clientContext: { custom, env: {} as never, client: {} as never } });

/** The headers a function would forward from inside an invocation that received `custom` in its client context. */
async function forwardedFrom(custom: Record<string, string>): Promise<Record<string, string>> {
  let headers: Record<string, string> = {};
  await traceInvokeHandler(async () => {
    headers = currentTraceHeaders();
  })({}, invokedWith(custom));
  return headers;
}

describe('OTEL_RESOURCE_ATTRIBUTES', () => {
  it('adds its attributes to every span, over the detected ones; service.name follows OTEL_SERVICE_NAME first', async () => {
    const env = {
      OTEL_SERVICE_NAME: undefined,
      AWS_REGION: 'eu-west-1',
      AWS_LAMBDA_FUNCTION_NAME: 'fn',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=prod,team=orders%20team,service.name=orders-api',
    };
    let capture = captureSpans(env);
    await traceInvokeHandler(async () => 'done')({}, invokedWith({}));
    expect(capture.span('fn').resource.attributes).toMatchObject({
      'service.name': 'orders-api',
      'deployment.environment.name': 'prod',
      team: 'orders team',
      'cloud.region': 'eu-west-1',
      'faas.name': 'fn',
    });

    capture = captureSpans({ ...env, OTEL_SERVICE_NAME: 'named' });
    await traceInvokeHandler(async () => 'done')({}, invokedWith({}));
    expect(capture.span('fn').resource.attributes['service.name']).toBe('named');
  });
});

describe('OTEL_SDK_DISABLED', () => {
  it('turns tracing off: no span, nothing forwarded, the handler and its result as they are', async () => {
    const capture = captureSpans({ OTEL_SDK_DISABLED: 'TRUE' });
    let headers: Record<string, string> = { untouched: 'yes' };
    const result = await traceInvokeHandler(async (event: { n: number }) => {
      headers = currentTraceHeaders();
      return event.n + 1;
    })({ n: 41 }, invokedWith({ traceparent: TRACEPARENT }));

    expect(result).toBe(42);
    expect(capture.spans()).toEqual([]);
    expect(headers).toEqual({});
  });

  it('reports a value that is not true or false, and keeps tracing on', () => {
    const config = readTelemetryConfig({ OTEL_SDK_DISABLED: 'yes' });
    expect(config.disabled).toBe(false);
    expect(config.warnings).toEqual(['OTEL_SDK_DISABLED="yes" is not true or false; using false.']);
  });
});

describe('OTEL_PROPAGATORS', () => {
  const incoming = { traceparent: TRACEPARENT, baggage: 'customer=ada,tier=gold' };

  it("defaults to tracecontext and baggage: the caller's baggage goes on with the trace", async () => {
    captureSpans();
    const headers = await forwardedFrom(incoming);
    expect(headers.traceparent).toMatch(new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-0[13]$`));
    expect(headers.baggage?.split(',').sort()).toEqual(['customer=ada', 'tier=gold']);
  });

  it('forwards only what it lists: tracecontext alone drops the baggage, xray adds X-Amzn-Trace-Id', async () => {
    captureSpans({ OTEL_PROPAGATORS: 'tracecontext' });
    expect(Object.keys(await forwardedFrom(incoming))).toEqual(['traceparent']);

    captureSpans({ OTEL_PROPAGATORS: 'tracecontext,xray' });
    const headers = await forwardedFrom(incoming);
    expect(Object.keys(headers).sort()).toEqual(['traceparent', 'x-amzn-trace-id']);
    expect(headers['x-amzn-trace-id']).toMatch(new RegExp(`^Root=1-${TRACE_ID.slice(0, 8)}-${TRACE_ID.slice(8)};Parent=[0-9a-f]{16};Sampled=1$`));
  });

  it('with none, neither reads nor writes a context: each invocation starts its own trace', async () => {
    const capture = captureSpans({ OTEL_PROPAGATORS: 'none' });
    expect(await forwardedFrom(incoming)).toEqual({});
    const span = capture.span('fn');
    expect(span.spanContext().traceId).not.toBe(TRACE_ID);
    expect(span.parentSpanContext?.spanId).not.toBe(SPAN_ID);
  });

  it('reports a propagator it does not have and uses the others', () => {
    const config = readTelemetryConfig({ OTEL_PROPAGATORS: 'b3, tracecontext' });
    expect(config.propagators).toEqual(['tracecontext']);
    expect(config.warnings).toEqual(['OTEL_PROPAGATORS: b3 not supported (supported: tracecontext, baggage, xray, none); ignored.']);
  });
});

describe('span limits', () => {
  it('caps attributes, attribute values and events as the OTEL_*_LIMIT variables say', async () => {
    const capture = captureSpans({ OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: '2', OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT: '4', OTEL_SPAN_EVENT_COUNT_LIMIT: '1' });
    await traceInvokeHandler(async () =>
      withSpan(
        'limited',
        async () => {
          const span = trace.getSpan(context.active())!;
          span.addEvent('first');
          span.addEvent('second');
        },
        { a: 'abcdefgh', b: 'b', c: 'c' },
      ),
    )({}, invokedWith({}));

    const span = capture.span('limited');
    expect(span.attributes).toEqual({ a: 'abcd', b: 'b' });
    expect(span.droppedAttributesCount).toBe(1);
    expect(span.events.map((event) => event.name)).toEqual(['second']);
  });

  it('prefers the span-specific variable and reports a value that is not a count', () => {
    const config = readTelemetryConfig({ OTEL_ATTRIBUTE_COUNT_LIMIT: '64', OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: '32', OTEL_SPAN_LINK_COUNT_LIMIT: 'many' });
    expect(config.spanLimits).toEqual({ attributeCountLimit: 32 });
    expect(config.warnings).toEqual(['OTEL_SPAN_LINK_COUNT_LIMIT="many" is not a whole number; using the SDK\'s default.']);
  });
});

describe('OTLP headers', () => {
  it('merges the traces-specific headers over the generic ones, key by key', () => {
    const config = readTelemetryConfig({ OTEL_EXPORTER_OTLP_HEADERS: 'a=1,b=2', OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'b=3,c=%20four' });
    expect(config.otlpHeaders).toEqual({ a: '1', b: '3', c: ' four' });
  });
});
