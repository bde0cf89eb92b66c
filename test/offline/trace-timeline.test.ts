import { describe, expect, it } from 'vitest';
import type { Attributes } from '@opentelemetry/api';
import type { SQSRecord } from 'aws-lambda';
import { addSqsReceiveCount } from '../../lib/carriers/sqs';
import type { ReceivedSpan } from '../../scripts/offline/otlp-receiver';
import { attemptsOf, compressedAxis, idleGaps, idleLabel, RECEIVE_COUNT_ATTRIBUTES } from '../../scripts/offline/trace-timeline';
import { fixtureSpans, okTrace, retriedTrace } from './trace-page-fixture';

const MS = 1_000_000n;

function spanAt(id: string, startMs: number, durationMs: number, fields: Partial<ReceivedSpan> = {}): ReceivedSpan {
  return {
    traceId: 'e'.repeat(32),
    spanId: id,
    name: id,
    kind: 'INTERNAL',
    startNs: BigInt(startMs) * MS,
    endNs: BigInt(startMs + durationMs) * MS,
    status: 'UNSET',
    attributes: {},
    resource: {},
    ...fields,
  };
}

function receive(id: string, startMs: number, attributes: Record<string, unknown> = {}): ReceivedSpan {
  return spanAt(id, startMs, 10, { kind: 'CONSUMER', attributes: { 'messaging.system': 'aws_sqs', 'messaging.message.id': 'm-1', ...attributes } });
}

describe("a trace's time line", () => {
  it('finds the long gaps no span covers: above 100 ms and a third of the time the spans cover', () => {
    const ok = okTrace.spans.map(({ span }) => span);

    expect(idleGaps(fixtureSpans([okTrace]))).toEqual([{ startNs: ok[0].endNs, endNs: ok[4].startNs }]);
    expect(idleLabel(idleGaps(ok)[0])).toBe('⋯ 10.0 s idle ⋯');
    // Overlapping and nested spans cover one stretch; a gap shorter than the floor is not long.
    expect(idleGaps([spanAt('a', 0, 100), spanAt('b', 50, 100), spanAt('c', 60, 10), spanAt('d', 240, 10)])).toEqual([]);
    expect(idleGaps([spanAt('a', 0, 100), spanAt('b', 50, 100), spanAt('d', 300, 10)])).toEqual([{ startNs: 150n * MS, endNs: 300n * MS }]);
    // 400 ms between 2 s of work is part of the work's rhythm, not a wait to compress.
    expect(idleGaps([spanAt('a', 0, 1000), spanAt('b', 1400, 1000)])).toEqual([]);
    expect(idleLabel({ startNs: 0n, endNs: 250n * MS })).toBe('⋯ 250.0 ms idle ⋯');
  });

  it('draws each gap as a narrow band and keeps one linear scale for the time outside the gaps', () => {
    const spans = [spanAt('a', 0, 100), spanAt('b', 30_100, 50), spanAt('c', 60_150, 50)];
    const gaps = idleGaps(spans);

    const axis = compressedAxis(0n, 60_200n * MS, gaps);

    expect(gaps.map(idleLabel)).toEqual(['⋯ 30.0 s idle ⋯', '⋯ 30.0 s idle ⋯']);
    expect(axis.gaps.map((gap) => [gap.from, gap.to].map((at) => Number(at.toFixed(4))))).toEqual([
      [0.44, 0.5],
      [0.72, 0.78],
    ]);
    // 200 ms shown over 88% of the axis: each span as wide as its share of the busy time.
    expect(axis.position(0n)).toBe(0);
    expect(axis.position(100n * MS)).toBeCloseTo(0.44);
    expect(axis.position(30_100n * MS)).toBeCloseTo(0.5);
    expect(axis.position(30_125n * MS)).toBeCloseTo(0.61);
    expect(axis.position(60_200n * MS)).toBeCloseTo(1);
    expect(axis.position(45_125n * MS), 'a time inside a gap falls inside its band').toBeCloseTo(0.75);
    // Without gaps the axis is linear.
    expect(compressedAxis(0n, 200n * MS, []).position(50n * MS)).toBeCloseTo(0.25);
  });

  it("numbers an SQS message's receives in start order, each marked with the number of receives", () => {
    const attempts = attemptsOf([
      receive('third', 300),
      receive('first', 100),
      receive('other', 150, { 'messaging.message.id': 'm-2' }),
      receive('second', 200),
    ]);

    expect([...attempts].map(([span, attempt]) => [span.spanId, attempt])).toEqual([
      ['first', { attempt: 1, of: 3 }],
      ['second', { attempt: 2, of: 3 }],
      ['third', { attempt: 3, of: 3 }],
    ]);
    const retried = attemptsOf(retriedTrace.spans.map(({ span }) => span));
    expect([...retried].map(([span, attempt]) => [span.spanId, attempt.attempt, attempt.of])).toEqual([
      ['d000000000000003', 1, 3],
      ['d000000000000005', 2, 3],
      ['d000000000000006', 3, 3],
    ]);
  });

  it("numbers receives by the count the kit's own SQS record spans carry", () => {
    // Arrange: the attributes the kit's SQS wrapper sets from each record's ApproximateReceiveCount
    const recorded = (count: string) => {
      const attributes: Attributes = {};
      addSqsReceiveCount(attributes, { attributes: { ApproximateReceiveCount: count } } as unknown as SQSRecord);
      return attributes;
    };

    // Act: the third receive first in start order (a clock skew between sandboxes), then the second
    const attempts = attemptsOf([receive('third', 10, recorded('3')), receive('second', 20, recorded('2'))]);

    // Assert
    expect([...attempts].map(([span, attempt]) => [span.spanId, attempt.attempt, attempt.of])).toEqual([
      ['third', 3, 3],
      ['second', 2, 3],
    ]);
  });

  it.each(RECEIVE_COUNT_ATTRIBUTES)('prefers the receive count a span records in %s', (name) => {
    const attempts = attemptsOf([receive('later', 100, { [name]: '3' }), receive('first of those seen', 50, { [name]: 2 })]);

    expect([...attempts].map(([span, attempt]) => [span.spanId, attempt])).toEqual([
      ['first of those seen', { attempt: 2, of: 3 }],
      ['later', { attempt: 3, of: 3 }],
    ]);
    // A lone receive is marked only when it says it is a retry.
    expect([...attemptsOf([receive('only', 0, { [name]: 4 })]).values()]).toEqual([{ attempt: 4, of: 4 }]);
    expect(attemptsOf([receive('only', 0, { [name]: 1 })]).size).toBe(0);
  });

  it('leaves alone what is not a receive of an SQS message: other kinds, other systems, no message id, a bad count', () => {
    const attempts = attemptsOf([
      receive('a', 0, { 'messaging.system': 'kafka' }),
      receive('b', 10, { 'messaging.system': 'kafka' }),
      { ...receive('c', 20), kind: 'PRODUCER' },
      { ...receive('d', 30), kind: 'PRODUCER' },
      receive('e', 40, { 'messaging.message.id': undefined }),
      receive('f', 50, { 'messaging.message.id': undefined }),
      receive('g', 60, { 'messaging.message.id': 'm-7', [RECEIVE_COUNT_ATTRIBUTES[0]]: 'soon' }),
    ]);

    expect(attempts.size).toBe(0);
  });
});
