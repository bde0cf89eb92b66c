import { context, propagation, trace, type ProxyTracerProvider } from '@opentelemetry/api';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

// Each test loads the kit afresh (no set-up started yet), as a handler module is loaded in a new process.
const kit = async () => {
  vi.resetModules();
  return { lib: await import('../../lib'), testing: await import('../../lib/testing') };
};
/** True once a set-up has registered the SDK's tracer provider with the OpenTelemetry API. */
const started = () => (trace.getTracerProvider() as ProxyTracerProvider).getDelegate().constructor.name !== 'NoopTracerProvider';
const nextTurn = () => new Promise((next) => setImmediate(next));

const saved = { ...process.env };
beforeEach(() => {
  process.env.OTEL_TRACES_EXPORTER = 'none';
  vi.spyOn(console, 'info').mockImplementation(() => undefined);
});
afterEach(() => {
  process.env = { ...saved };
  trace.disable();
  context.disable();
  propagation.disable();
  vi.restoreAllMocks();
});

describe('the set-up under a Lambda runtime', () => {
  it('starts in the turn after the handler module loaded, before the first invocation', async () => {
    process.env.AWS_LAMBDA_RUNTIME_API = '127.0.0.1:9001';
    const { lib } = await kit();

    lib.traceInvokeHandler(async () => 'ok');
    expect(started()).toBe(false);
    await nextTurn();

    expect(started()).toBe(true);
  });

  it('keeps the set-up the function starts itself while its module loads', async () => {
    process.env.AWS_LAMBDA_RUNTIME_API = '127.0.0.1:9001';
    const { lib, testing } = await kit();

    const handler = lib.traceInvokeHandler(async () => 'ok');
    const capture = testing.captureSpans();
    await nextTurn();
    await handler({}, testing.lambdaContext({ functionName: 'own-set-up' }));

    expect(capture.span('own-set-up').attributes['faas.invocation_id']).toBeDefined();
  });

  it('waits for the first invocation outside a Lambda runtime (tests, tools)', async () => {
    delete process.env.AWS_LAMBDA_RUNTIME_API;
    const { lib } = await kit();

    lib.traceInvokeHandler(async () => 'ok');
    await nextTurn();

    expect(started()).toBe(false);
  });
});
