import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiGatewayV2Event } from '../../lib/testing';
import { startOtlpReceiver, type OtlpReceiver } from '../../scripts/offline/otlp-receiver';
import { runtimeClientProblem, startPackagedFunction, type PackagedFunction } from './lambda-runtime';
import { packageFixture } from './packaged-fixture';

// A response-streaming function (traceHttpStreamHandler) run by AWS's runtime interface client, which posts its
// response streamed (Lambda-Runtime-Function-Response-Mode: streaming) to the local Runtime API as Lambda's own
// runtime does: the span must end with the stream, carry the status code of the metadata prelude, and be exported
// in either export mode; the bytes must reach the Runtime API as the handler wrote them.
const PRELUDE = '{"statusCode":201,"headers":{"content-type":"text/plain"}}';
const DELIMITER = '\0'.repeat(8);

let work: string;
let receiver: OtlpReceiver;
const started: PackagedFunction[] = [];

beforeAll(async () => {
  const problem = runtimeClientProblem();
  if (problem) throw new Error(problem);
  work = await mkdtemp(join(tmpdir(), 'traced-streaming-'));
  await packageFixture(join(__dirname, 'fixtures', 'streaming.ts'), work);
  await packageFixture(join(__dirname, 'fixtures', 'bare-streaming.ts'), work);
  await mkdir(join(work, 'runtime'), { recursive: true });
  receiver = await startOtlpReceiver(0);
}, 60_000);

afterAll(async () => {
  await Promise.all(started.map((fn) => fn.stop()));
  await receiver?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

async function startStreaming(afterResponse: boolean): Promise<PackagedFunction> {
  const fn = await startPackagedFunction({
    name: `streaming-${afterResponse ? 'after' : 'in'}`,
    taskRoot: work,
    handler: 'functions/streaming.handler',
    nodePath: join(work, 'runtime'),
    environment: {
      NODE_OPTIONS: '--enable-source-maps --import ./extension/after-response.mjs',
      TRACED_LAMBDA_EXPORT_AFTER_RESPONSE: String(afterResponse),
      OTEL_SERVICE_NAME: 'streaming',
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    },
  });
  started.push(fn);
  return fn;
}

/** Invokes `path` in a trace of its own; the result and that trace's one span once exported. */
async function invoke(fn: PackagedFunction, path: string, timeoutMs = 5_000) {
  const traceId = randomBytes(16).toString('hex');
  const result = await fn
    .invoke(apiGatewayV2Event({ method: 'GET', path, headers: { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` } }), { timeoutMs })
    .catch((error: Error) => ({ ok: false as const, failure: error.message }));
  const spans = await receiver
    .waitFor((received) => received.some((span) => span.traceId === traceId), 5_000)
    .then((received) => received.filter((span) => span.traceId === traceId))
    .catch((error: Error) => {
      throw new Error(`${error.message}\n${fn.logs()}`);
    });
  expect(spans).toHaveLength(1);
  return { result, span: spans[0] };
}

describe('a response-streaming function under the Lambda runtime interface client', () => {
  it('ends the process as a bare streamifyResponse handler does when its stream breaks: within a second, with no next event', async () => {
    const bare = await startPackagedFunction({
      name: 'streaming-bare',
      taskRoot: work,
      handler: 'functions/bare-streaming.handler',
      nodePath: join(work, 'runtime'),
      environment: {},
    });
    started.push(bare);
    const traced = await startStreaming(true);

    for (const fn of [bare, traced]) {
      const invokedAt = performance.now();
      const result = await fn.invoke(apiGatewayV2Event({ method: 'GET', path: '/broken' }), { timeoutMs: 1_000 });

      expect(result).toMatchObject({ ok: false, errorType: 'Runtime.ExitError', error: { errorMessage: expect.stringContaining('exit status 1') } });
      expect(performance.now() - invokedAt).toBeLessThan(1_000);
      expect(fn.exitStatus()).toEqual({ code: 1, signal: null });
      expect(fn.logs()).toContain('Error: the upstream source broke');
    }
  });

  for (const afterResponse of [true, false]) {
    const mode = afterResponse ? 'after the response' : 'in the invocation';

    it(`streams the handler's bytes unchanged and exports a span that lasted until the stream ended, exporting ${mode}`, async () => {
      const fn = await startStreaming(afterResponse);

      const { result, span } = await invoke(fn, '/report');

      expect(result).toMatchObject({ ok: true });
      expect(result.ok && result.streamed).toEqual({
        contentType: 'application/vnd.awslambda.http-integration-response',
        body: Buffer.from(`${PRELUDE}${DELIMITER}first\nlast\n`, 'latin1'),
      });
      expect(span).toMatchObject({ name: 'GET /report', kind: 'SERVER', status: 'UNSET' });
      expect(span.attributes['http.response.status_code']).toBe(201);
      // The handler returned at once; the stream ended 100 ms later, and so did the span.
      expect(Number(span.endNs - span.startNs) / 1e6).toBeGreaterThanOrEqual(95);
    });

    it(`ends the span in error when the stream breaks after the handler returned, exporting ${mode}`, async () => {
      const fn = await startStreaming(afterResponse);

      // The runtime client itself crashes on a response stream destroyed with an error (its promise for the
      // response's headers is left rejected with no handler: a bare streamifyResponse handler exits at once with
      // Runtime.ExitError). The kit's crash export sends the spans first, and the process ends as it would have:
      // no next event is queued, and once the runtime client waits on one, no exit ends before it comes.
      const { result, span } = await invoke(fn, '/broken', 1_000);

      expect(result).toMatchObject({ ok: false, errorType: 'Runtime.ExitError', error: { errorMessage: expect.stringContaining('exit status 1') } });
      expect(fn.exitStatus()).toEqual({ code: 1, signal: null });
      expect(span).toMatchObject({ status: 'ERROR', statusMessage: 'the upstream source broke' });
      expect(span.attributes['http.response.status_code']).toBe(201);
      expect(fn.logs()).toContain('Error: the upstream source broke');
    });

    it(`reports the handler's error as the runtime does, the span in error with it, exporting ${mode}`, async () => {
      const fn = await startStreaming(afterResponse);

      const { result, span } = await invoke(fn, '/reject');

      expect(result).toMatchObject({ ok: false, errorType: 'RangeError', error: { errorMessage: 'no such report' } });
      expect(span).toMatchObject({ status: 'ERROR', statusMessage: 'no such report' });
      expect(span.attributes['error.type']).toBe('RangeError');
    });
  }
});
