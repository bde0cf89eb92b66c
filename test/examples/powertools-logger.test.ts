import { diag } from '@opentelemetry/api';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { handler } from '../../examples/powertools-logger';
import { apiGatewayV2Event, captureSpans, lambdaContext, type SpanCapture } from '../../lib/testing';
import { TRACEPARENT } from '../trace-ids';

const OTHER_TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

// Powertools Logger writes each line as JSON through a Console of its own on process.stdout.
let lines: Record<string, unknown>[];
let capture: SpanCapture;
beforeEach(() => {
  capture = captureSpans();
  lines = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    for (const line of String(chunk).split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line));
    return true;
  });
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe('examples/powertools-logger', () => {
  it("puts the invocation span's trace_id and span_id in every line, invocation after invocation", async () => {
    // Act: two invocations in a row, continuing two different traces
    const contexts = [lambdaContext(), lambdaContext()];
    await handler(apiGatewayV2Event({ headers: { traceparent: TRACEPARENT } }), contexts[0]);
    const firstLines = lines.length;
    await handler(apiGatewayV2Event({ headers: { traceparent: OTHER_TRACEPARENT } }), contexts[1]);

    // Assert: each invocation's lines name the span the kit recorded for it
    expect(firstLines).toBe(2);
    expect(lines).toHaveLength(4);
    const spans = capture.spans();
    expect(spans).toHaveLength(2);
    expect(spans[0].spanContext().traceId).not.toBe(spans[1].spanContext().traceId);
    lines.forEach((line, index) => {
      const span = spans[index < firstLines ? 0 : 1];
      expect(line).toMatchObject({
        message: index % 2 === 0 ? 'order received' : 'order accepted',
        function_request_id: contexts[index < firstLines ? 0 : 1].awsRequestId,
        trace_id: span.spanContext().traceId,
        span_id: span.spanContext().spanId,
        trace_flags: '01',
      });
    });
  });

  it('leaves the last invocation’s trace out of the lines of one that runs untraced', async () => {
    await handler(apiGatewayV2Event({ headers: { traceparent: TRACEPARENT } }), lambdaContext());
    vi.spyOn(capture.telemetry.tracer, 'startSpan').mockImplementation(() => {
      throw new Error('tracer broken');
    });
    vi.spyOn(diag, 'error').mockImplementation(() => undefined);

    await handler(apiGatewayV2Event(), lambdaContext());

    expect(lines).toHaveLength(4);
    expect(lines.slice(0, 2).every((line) => typeof line.trace_id === 'string')).toBe(true);
    for (const line of lines.slice(2)) {
      expect(line).not.toHaveProperty('trace_id');
      expect(line).not.toHaveProperty('span_id');
    }
  });
});
