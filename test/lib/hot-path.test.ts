import { createContextKey, ROOT_CONTEXT, SpanKind, trace, TraceFlags, type Context, type SpanContext } from '@opentelemetry/api';
import { AlwaysOnSampler, ParentBasedSampler } from '@opentelemetry/sdk-trace';
import { describe, expect, it } from 'vitest';
import { readTelemetryConfig, startTelemetry } from '../../lib';
import { entryContext, getEntrySpan } from '../../lib/invocation/entry-context';
import { captureSpans } from '../../lib/testing';
import { SPAN_ID, TRACE_ID } from '../trace-ids';

// The per-span work the kit does instead of the SDK's defaults: the entry context that links instead of copying,
// and the default sampler that does not re-validate the parent. Each must decide and read exactly as the API's and
// the SDK's own would.

describe('the entry context', () => {
  const callerKey = createContextKey('traced-lambda test: from the caller');
  const parent = ROOT_CONTEXT.setValue(callerKey, 'kept');
  const span = trace.wrapSpanContext({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: TraceFlags.SAMPLED });

  it('reads as a context made by the API: the span current and the entry span, the parent values kept', () => {
    const ctx = entryContext(parent, span);
    expect(trace.getSpan(ctx)).toBe(span);
    expect(getEntrySpan(ctx)).toBe(span);
    expect(ctx.getValue(callerKey)).toBe('kept');
    // Values set on it later shadow, without changing it.
    expect(ctx.setValue(callerKey, 'changed').getValue(callerKey)).toBe('changed');
    expect(ctx.getValue(callerKey)).toBe('kept');
    expect(ctx.deleteValue(callerKey).getValue(callerKey)).toBeUndefined();
  });

  it('keeps every value through long chains of values set on it, nearest first, deletions included', () => {
    const keys = Array.from({ length: 30 }, (_, index) => createContextKey(`key ${index}`));
    const shared = createContextKey('shared');
    let ctx: Context = entryContext(parent, span);
    let reference: Context = trace.setSpan(parent, span);
    for (const [index, key] of keys.entries()) {
      ctx = ctx.setValue(key, index).setValue(shared, index);
      reference = reference.setValue(key, index).setValue(shared, index);
      if (index % 7 === 3) {
        ctx = ctx.deleteValue(keys[index - 1]);
        reference = reference.deleteValue(keys[index - 1]);
      }
      for (const probe of [...keys, shared]) expect(ctx.getValue(probe)).toBe(reference.getValue(probe));
    }
    expect(trace.getSpan(ctx)).toBe(span);
    expect(getEntrySpan(ctx)).toBe(span);
    // A key set twice, then enough other values to fold the links into one context: the later value still wins.
    let folded = entryContext(parent, span).setValue(shared, 'old').setValue(shared, 'new');
    for (const key of keys) folded = folded.setValue(key, 'other');
    expect(folded.getValue(shared)).toBe('new');
    expect(folded.getValue(callerKey)).toBe('kept');
    // The parent is never changed by what is set after it.
    expect(parent.getValue(shared)).toBeUndefined();
  });
});

describe('the default sampler (parentbased_always_on)', () => {
  const parents: [string, SpanContext | undefined][] = [
    ['no parent', undefined],
    ['a sampled parent', { traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: TraceFlags.SAMPLED, isRemote: true }],
    ['a parent not sampled', { traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: TraceFlags.NONE, isRemote: true }],
    ['a local parent not sampled', { traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: TraceFlags.NONE }],
    ['an invalid parent, not sampled', { traceId: '0'.repeat(32), spanId: SPAN_ID, traceFlags: TraceFlags.NONE, isRemote: true }],
    ['an invalid parent, sampled', { traceId: TRACE_ID, spanId: '0'.repeat(16), traceFlags: TraceFlags.SAMPLED, isRemote: true }],
  ];

  it.each(parents)('decides as the SDK would for %s', (_, parentSpanContext) => {
    const capture = captureSpans();
    const ctx = parentSpanContext ? trace.setSpanContext(ROOT_CONTEXT, parentSpanContext) : ROOT_CONTEXT;
    const span = capture.telemetry.tracer.startSpan('probe', { kind: SpanKind.CONSUMER }, ctx);
    const expected = new ParentBasedSampler({ root: new AlwaysOnSampler() }).shouldSample(ctx, TRACE_ID, 'probe', SpanKind.CONSUMER, {}, []);
    expect(span.isRecording()).toBe(expected.decision !== 0);
    expect(span.spanContext().traceFlags & TraceFlags.SAMPLED).toBe(expected.decision === 2 ? TraceFlags.SAMPLED : 0);
    span.end();
  });

  it('is what OTEL_TRACES_SAMPLER names, by default and when asked for', () => {
    for (const env of [{}, { OTEL_TRACES_SAMPLER: 'parentbased_always_on' }]) {
      const telemetry = startTelemetry(readTelemetryConfig(env), {
        exporter: { export: (_spans, done) => done({ code: 0 }), shutdown: async () => undefined },
      });
      const notSampled = trace.setSpanContext(ROOT_CONTEXT, { traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: TraceFlags.NONE, isRemote: true });
      expect(telemetry.tracer.startSpan('a', {}, notSampled).isRecording()).toBe(false);
      expect(telemetry.tracer.startSpan('b', {}, ROOT_CONTEXT).isRecording()).toBe(true);
    }
  });
});
