import {
  DynamoDBClient,
  PutItemCommand,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  type AttributeValue,
  type PutItemCommandInput,
  type UpdateItemCommandInput,
} from '@aws-sdk/client-dynamodb';
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { DynamoDBRecord } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { putItem, readTelemetryConfig, startTelemetry, traceDynamoDbStreamRecords, transactWriteItems, updateItem, withSpan } from '../../lib';
import { captureSpans, dynamoDbStreamEvent, dynamoDbStreamRecord, lambdaContext, type SpanCapture } from '../../lib/testing';

const TABLE = 'orders';
const dynamoDbMock = mockClient(DynamoDBClient);
const dynamoDb = new DynamoDBClient({ region: 'eu-west-1' });
const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

let capture: SpanCapture;
beforeEach(() => {
  dynamoDbMock.reset();
  dynamoDbMock.on(PutItemCommand).resolves({});
  dynamoDbMock.on(UpdateItemCommand).resolves({});
  dynamoDbMock.on(TransactWriteItemsCommand).resolves({});
  capture = captureSpans();
  vi.spyOn(console, 'error').mockImplementation(() => undefined);
  return () => vi.restoreAllMocks();
});

function sentPutItem(call = 0): PutItemCommandInput {
  return dynamoDbMock.commandCalls(PutItemCommand)[call].args[0].input;
}

function sentUpdateItem(call = 0): UpdateItemCommandInput {
  return dynamoDbMock.commandCalls(UpdateItemCommand)[call].args[0].input;
}

/** A handler that keeps each record it is given and the span it ran in. */
function recordingConsumer() {
  const seen: DynamoDBRecord[] = [];
  const spanIds: string[] = [];
  const handler = traceDynamoDbStreamRecords(async (record) => {
    seen.push(record);
    spanIds.push(trace.getSpanContext(context.active())?.spanId ?? '');
  });
  return { handler, seen, spanIds };
}

const item: Record<string, AttributeValue> = { pk: { S: 'order-1' }, total: { N: '1.50' }, lines: { L: [{ M: { sku: { S: 'a' } } }] } };

describe('putItem → traceDynamoDbStreamRecords', () => {
  it("continues the writer's trace in the consumer, whose handler sees the item exactly as written", async () => {
    // Arrange
    const { handler, seen, spanIds } = recordingConsumer();

    // Act
    await withSpan('place order', () => putItem(dynamoDb, { TableName: TABLE, Item: item }));
    const result = await handler(dynamoDbStreamEvent([dynamoDbStreamRecord({ eventName: 'INSERT', newImage: sentPutItem().Item })]), lambdaContext());

    // Assert
    const writer = capture.span(`PutItem ${TABLE}`);
    const processed = capture.span(`process ${TABLE}`);
    expect(result).toEqual({ batchItemFailures: [] });
    expect(seen.map((record) => record.dynamodb?.NewImage)).toEqual([item]);
    expect(writer.kind).toBe(SpanKind.CLIENT);
    expect(processed.kind).toBe(SpanKind.CONSUMER);
    expect(processed.spanContext().traceId).toBe(writer.spanContext().traceId);
    expect(processed.parentSpanContext?.spanId).toBe(writer.spanContext().spanId);
    expect(spanIds).toEqual([processed.spanContext().spanId]);
    expect(processed.attributes).toMatchObject({
      'traced_lambda.parent.source': 'dynamodb-new-image',
      'faas.trigger': 'datasource',
      'faas.document.collection': TABLE,
      'faas.document.operation': 'insert',
      'db.system.name': 'aws.dynamodb',
      'aws.dynamodb.table_names': [TABLE],
    });
  });

  it('writes the context as the reserved map attribute, with the database spans of the call', async () => {
    // Act
    await putItem(dynamoDb, { TableName: `arn:aws:dynamodb:eu-west-1:123456789012:table/${TABLE}`, Item: item });

    // Assert
    const writer = capture.span(`PutItem ${TABLE}`);
    const { traceId, spanId } = writer.spanContext();
    expect(sentPutItem().Item).toEqual({ ...item, traced_lambda_trace: { M: { traceparent: { S: `00-${traceId}-${spanId}-01` } } } });
    expect(item).not.toHaveProperty('traced_lambda_trace');
    expect(writer.attributes).toEqual({
      'db.system.name': 'aws.dynamodb',
      'db.operation.name': 'PutItem',
      'aws.dynamodb.table_names': [TABLE],
      'rpc.system': 'aws-api',
      'rpc.service': 'DynamoDB',
      'rpc.method': 'PutItem',
    });
  });

  it("replaces a context the item already carried (the write's own is the one that counts)", async () => {
    // Act
    await putItem(dynamoDb, { TableName: TABLE, Item: { ...item, traced_lambda_trace: { M: { traceparent: { S: TRACEPARENT } } } } });

    // Assert
    const { spanId } = capture.span(`PutItem ${TABLE}`).spanContext();
    expect(sentPutItem().Item?.traced_lambda_trace?.M?.traceparent?.S).toContain(spanId);
  });

  it('writes an item the context would take past 400 KB without it, and says so once', async () => {
    // Arrange: an item 40 bytes under 400 KB; the context adds 89
    const big = { pk: { S: 'o-1' }, pad: { S: 'x'.repeat(400 * 1024 - 40 - 'pk'.length - 'o-1'.length - 'pad'.length) } };
    const messages: string[] = [];
    const record = (message: string) => void messages.push(message);
    startTelemetry(readTelemetryConfig({ OTEL_LOG_LEVEL: 'info', OTEL_TRACES_EXPORTER: 'none' }), {
      logger: { info: record, error: record, warn: record, debug: () => undefined, verbose: () => undefined },
    });

    // Act
    await putItem(dynamoDb, { TableName: TABLE, Item: big });
    await putItem(dynamoDb, { TableName: TABLE, Item: big });
    await putItem(dynamoDb, { TableName: TABLE, Item: { pk: { S: 'small' } } });

    // Assert
    expect(sentPutItem(0).Item).toBe(big);
    expect(sentPutItem(1).Item).toBe(big);
    expect(sentPutItem(2).Item).toHaveProperty('traced_lambda_trace');
    expect(messages.filter((message) => message.includes('DynamoDB item'))).toHaveLength(1);
  });

  it.each([
    ['300 KB of ASCII', 'x'.repeat(300 * 1024), true],
    // 3 bytes each: 409,538 bytes with the key, 409,627 with the context, past the 409,600 limit
    ['multi-byte characters counted as UTF-8 bytes', '€'.repeat(136_510), false],
  ])('counts an item of %s as DynamoDB does before writing the context', async (_name, pad, carries) => {
    // Act
    await putItem(dynamoDb, { TableName: TABLE, Item: { pk: { S: 'o-1' }, pad: { S: pad } } });

    // Assert
    expect(Object.hasOwn(sentPutItem().Item ?? {}, 'traced_lambda_trace')).toBe(carries);
  });

  it("keeps the caller's SDK result and error unchanged, and marks the span failed on an error", async () => {
    // Arrange
    const failure = Object.assign(new Error('The conditional request failed'), { name: 'ConditionalCheckFailedException' });
    dynamoDbMock
      .on(PutItemCommand)
      .rejectsOnce(failure)
      .resolves({ ConsumedCapacity: { TableName: TABLE, CapacityUnits: 1 } });

    // Act / Assert
    await expect(putItem(dynamoDb, { TableName: TABLE, Item: item })).rejects.toBe(failure);
    await expect(putItem(dynamoDb, { TableName: TABLE, Item: item })).resolves.toEqual({ ConsumedCapacity: { TableName: TABLE, CapacityUnits: 1 } });
    const [failed] = capture.spans();
    expect(failed.status.code).toBe(SpanStatusCode.ERROR);
    expect(failed.attributes['error.type']).toBe('ConditionalCheckFailedException');
  });
});

describe('updateItem', () => {
  it("adds the context to the caller's SET clause, keeping their names and values, and the consumer continues it", async () => {
    // Arrange
    const input: UpdateItemCommandInput = {
      TableName: TABLE,
      Key: { pk: { S: 'order-1' } },
      UpdateExpression: 'REMOVE draft SET #s = :s, total = if_not_exists(total, :zero) ADD version :one',
      ConditionExpression: 'attribute_exists(pk)',
      ExpressionAttributeNames: { '#s': 'status' },
      ExpressionAttributeValues: { ':s': { S: 'paid' }, ':zero': { N: '0' }, ':one': { N: '1' } },
    };
    const before = structuredClone(input);
    const { handler, seen } = recordingConsumer();

    // Act
    await withSpan('pay order', () => updateItem(dynamoDb, input));
    const sent = sentUpdateItem();
    const written = sent.ExpressionAttributeValues?.[':traced_lambda_trace'];
    const oldImage = { pk: { S: 'order-1' }, status: { S: 'new' }, traced_lambda_trace: { M: { traceparent: { S: TRACEPARENT } } } };
    const newImage = { pk: { S: 'order-1' }, status: { S: 'paid' }, traced_lambda_trace: written as AttributeValue };
    await handler(dynamoDbStreamEvent([dynamoDbStreamRecord({ eventName: 'MODIFY', oldImage, newImage })]), lambdaContext());

    // Assert
    const writer = capture.span(`UpdateItem ${TABLE}`);
    expect(sent.UpdateExpression).toBe(
      'REMOVE draft SET #traced_lambda_trace = :traced_lambda_trace, #s = :s, total = if_not_exists(total, :zero) ADD version :one',
    );
    expect(sent.ExpressionAttributeNames).toEqual({ '#s': 'status', '#traced_lambda_trace': 'traced_lambda_trace' });
    expect(sent.ExpressionAttributeValues).toEqual({ ...before.ExpressionAttributeValues, ':traced_lambda_trace': written });
    expect(sent.ConditionExpression).toBe('attribute_exists(pk)');
    expect(input).toEqual(before);
    expect(capture.span(`process ${TABLE}`).parentSpanContext?.spanId).toBe(writer.spanContext().spanId);
    expect(seen.map((record) => [record.dynamodb?.OldImage, record.dynamodb?.NewImage])).toEqual([
      [
        { pk: { S: 'order-1' }, status: { S: 'new' } },
        { pk: { S: 'order-1' }, status: { S: 'paid' } },
      ],
    ]);
  });

  it.each([
    ['an expression without SET', 'REMOVE draft', { '#n': 'n' }, 'REMOVE draft SET #traced_lambda_trace = :traced_lambda_trace'],
    ['no expression', undefined, undefined, 'SET #traced_lambda_trace = :traced_lambda_trace'],
    [
      'a lower-case set next to placeholders named like keywords',
      'set #set = :set',
      { '#set': 'set' },
      'set #traced_lambda_trace = :traced_lambda_trace, #set = :set',
    ],
    [
      'placeholders the caller already named like ours',
      'SET #traced_lambda_trace = :traced_lambda_trace',
      { '#traced_lambda_trace': 'other' },
      'SET #traced_lambda_trace_1 = :traced_lambda_trace_1, #traced_lambda_trace = :traced_lambda_trace',
    ],
  ])('merges into %s', async (_name, expression, names, expected) => {
    // Arrange
    const values = expression?.includes(':') ? { [expression.slice(expression.indexOf(':')).split(/[\s,]/)[0]]: { S: 'v' } } : undefined;

    // Act
    await updateItem(dynamoDb, {
      TableName: TABLE,
      Key: { pk: { S: 'o' } },
      UpdateExpression: expression,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    });

    // Assert
    const sent = sentUpdateItem();
    expect(sent.UpdateExpression).toBe(expected);
    const [nameKey, valueKey] = expected.match(/#traced_lambda_trace(_1)? = :traced_lambda_trace(_1)?/)?.[0].split(' = ') ?? [];
    expect(sent.ExpressionAttributeNames?.[nameKey]).toBe('traced_lambda_trace');
    expect(sent.ExpressionAttributeValues?.[valueKey]?.M?.traceparent?.S).toMatch(/^00-/);
    for (const [key, value] of Object.entries(names ?? {})) expect(sent.ExpressionAttributeNames?.[key]).toBe(value);
  });

  it('leaves an update that writes or removes the reserved attribute itself as it is', async () => {
    // Arrange
    const removes = { TableName: TABLE, Key: { pk: { S: 'o' } }, UpdateExpression: 'REMOVE traced_lambda_trace' };
    const writes = {
      ...removes,
      UpdateExpression: 'SET #t = :t',
      ExpressionAttributeNames: { '#t': 'traced_lambda_trace' },
      ExpressionAttributeValues: { ':t': { S: 'x' } },
    };

    // Act
    await updateItem(dynamoDb, removes);
    await updateItem(dynamoDb, writes);

    // Assert
    expect(sentUpdateItem(0)).toEqual(removes);
    expect(sentUpdateItem(1)).toEqual(writes);
  });

  it('puts the context in the legacy AttributeUpdates when the caller uses them', async () => {
    // Act
    await updateItem(dynamoDb, { TableName: TABLE, Key: { pk: { S: 'o' } }, AttributeUpdates: { status: { Action: 'PUT', Value: { S: 'paid' } } } });

    // Assert
    const sent = sentUpdateItem();
    expect(sent.UpdateExpression).toBeUndefined();
    expect(sent.AttributeUpdates?.status).toEqual({ Action: 'PUT', Value: { S: 'paid' } });
    expect(sent.AttributeUpdates?.traced_lambda_trace?.Action).toBe('PUT');
    expect(sent.AttributeUpdates?.traced_lambda_trace?.Value?.M?.traceparent?.S).toMatch(/^00-/);
  });
});

describe('transactWriteItems', () => {
  it('writes the context into each Put and Update entry, leaving Delete and ConditionCheck entries as they are', async () => {
    // Arrange
    const condition = {
      ConditionCheck: { TableName: 'stock', Key: { sku: { S: 'a' } }, ConditionExpression: 'qty > :zero', ExpressionAttributeValues: { ':zero': { N: '0' } } },
    };
    const removal = { Delete: { TableName: 'carts', Key: { pk: { S: 'cart-1' } } } };
    const { handler } = recordingConsumer();

    // Act
    await withSpan('checkout', () =>
      transactWriteItems(dynamoDb, {
        TransactItems: [
          { Put: { TableName: TABLE, Item: item } },
          {
            Update: { TableName: 'stock', Key: { sku: { S: 'a' } }, UpdateExpression: 'ADD qty :minus', ExpressionAttributeValues: { ':minus': { N: '-1' } } },
          },
          condition,
          removal,
        ],
      }),
    );
    const sent = dynamoDbMock.commandCalls(TransactWriteItemsCommand)[0].args[0].input.TransactItems ?? [];
    await handler(dynamoDbStreamEvent([dynamoDbStreamRecord({ newImage: sent[0].Put?.Item })]), lambdaContext());

    // Assert
    const writer = capture.span('TransactWriteItems');
    const { traceId, spanId } = writer.spanContext();
    const context = { M: { traceparent: { S: `00-${traceId}-${spanId}-01` } } };
    expect(sent[0].Put?.Item?.traced_lambda_trace).toEqual(context);
    expect(sent[1].Update?.UpdateExpression).toBe('ADD qty :minus SET #traced_lambda_trace = :traced_lambda_trace');
    expect(sent[1].Update?.ExpressionAttributeValues?.[':traced_lambda_trace']).toEqual(context);
    expect(sent[2]).toEqual(condition);
    expect(sent[3]).toEqual(removal);
    expect(writer.attributes['aws.dynamodb.table_names']).toEqual([TABLE, 'stock', 'carts']);
    expect(writer.attributes['db.operation.batch.size']).toBe(4);
    expect(capture.span(`process ${TABLE}`).parentSpanContext?.spanId).toBe(spanId);
  });
});

describe('traceDynamoDbStreamRecords', () => {
  it("continues a REMOVE from the OldImage, the context of the item's last write, and says so", async () => {
    // Arrange
    const oldImage = { pk: { S: 'order-1' }, traced_lambda_trace: { M: { traceparent: { S: TRACEPARENT } } } };
    const { handler, seen } = recordingConsumer();

    // Act
    await handler(dynamoDbStreamEvent([dynamoDbStreamRecord({ eventName: 'REMOVE', oldImage })]), lambdaContext());

    // Assert
    const [span] = capture.spans();
    expect(span.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
    expect(span.attributes['traced_lambda.parent.source']).toBe('dynamodb-old-image');
    expect(span.attributes['faas.document.operation']).toBe('delete');
    expect(seen[0].dynamodb?.OldImage).toEqual({ pk: { S: 'order-1' } });
  });

  it('starts a new trace for a MODIFY whose write left the earlier context in place (a write not through a forwarder)', async () => {
    // Arrange
    const context = { M: { traceparent: { S: TRACEPARENT } } };
    const record = dynamoDbStreamRecord({
      eventName: 'MODIFY',
      oldImage: { pk: { S: 'o' }, n: { N: '1' }, traced_lambda_trace: context },
      newImage: { pk: { S: 'o' }, n: { N: '2' }, traced_lambda_trace: context },
    });
    const { handler, seen } = recordingConsumer();

    // Act
    await handler(dynamoDbStreamEvent([record]), lambdaContext());

    // Assert
    const [span] = capture.spans();
    expect(span.parentSpanContext).toBeUndefined();
    expect(span.attributes['traced_lambda.parent.source']).toBe('none');
    expect(seen[0].dynamodb?.NewImage).toEqual({ pk: { S: 'o' }, n: { N: '2' } });
  });

  it("reports the first failed record's sequence number, runs none after it, and marks its span failed", async () => {
    // Arrange
    const records = ['101', '102', '103', '104'].map((sequenceNumber) => dynamoDbStreamRecord({ sequenceNumber, newImage: { pk: { S: sequenceNumber } } }));
    const processed: string[] = [];
    const handler = traceDynamoDbStreamRecords(async (record) => {
      processed.push(record.dynamodb?.SequenceNumber ?? '');
      if (record.dynamodb?.SequenceNumber === '102') throw new Error('cannot process');
    });

    // Act
    const result = await handler(dynamoDbStreamEvent(records), lambdaContext());

    // Assert: Lambda retries from "102" on, so "103" and "104" were not run
    expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: '102' }] });
    expect(processed).toEqual(['101', '102']);
    expect(capture.spans().map((span) => [span.attributes['traced_lambda.dynamodb.sequence_number'], span.status.code])).toEqual([
      ['101', SpanStatusCode.UNSET],
      ['102', SpanStatusCode.ERROR],
    ]);
  });

  it('keeps the order of the batch under the concurrency option', async () => {
    // Arrange
    const records = ['1', '2', '3'].map((sequenceNumber) => dynamoDbStreamRecord({ sequenceNumber }));
    const order: string[] = [];
    const handler = traceDynamoDbStreamRecords(
      async (record) => {
        order.push(`start ${record.dynamodb?.SequenceNumber}`);
        await new Promise((resolve) => setTimeout(resolve, 2));
        order.push(`end ${record.dynamodb?.SequenceNumber}`);
      },
      { concurrency: 3 },
    );

    // Act
    await handler(dynamoDbStreamEvent(records), lambdaContext());

    // Assert
    expect(order).toEqual(['start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3']);
  });

  it.each([
    ['a context attribute that is a string', { pk: { S: 'o' }, traced_lambda_trace: { S: TRACEPARENT } }],
    ['a context map of numbers', { pk: { S: 'o' }, traced_lambda_trace: { M: { traceparent: { N: '1' } } } }],
    ['a malformed traceparent', { pk: { S: 'o' }, traced_lambda_trace: { M: { traceparent: { S: '00-xyz' } } } }],
    ['a context attribute that is null', { pk: { S: 'o' }, traced_lambda_trace: null }],
    ['an image that is an array', [1, 2, 3]],
    ['an image that is a string', 'garbage'],
  ])('runs the handler for a record with %s, without a parent and without crashing', async (_name, newImage) => {
    // Arrange
    const record = dynamoDbStreamRecord({ eventName: 'INSERT' });
    (record.dynamodb as Record<string, unknown>).NewImage = newImage;
    const { handler, seen } = recordingConsumer();

    // Act
    const result = await handler(dynamoDbStreamEvent([record]), lambdaContext());

    // Assert
    expect(result).toEqual({ batchItemFailures: [] });
    expect(seen).toHaveLength(1);
    expect(capture.spans()[0].parentSpanContext).toBeUndefined();
  });

  it.each([
    ['no dynamodb payload', { eventName: 'INSERT', eventSourceARN: 17 }],
    ['a dynamodb payload that is a number', { eventName: 'REMOVE', dynamodb: 5 }],
    ['null', null],
  ])('runs the handler for %s without crashing', async (_name, record) => {
    // Arrange
    const { handler, seen } = recordingConsumer();

    // Act
    const result = await handler(dynamoDbStreamEvent([record as unknown as DynamoDBRecord]), lambdaContext());

    // Assert
    expect(result).toEqual({ batchItemFailures: [] });
    expect(seen).toEqual([record]);
    expect(capture.spans()[0].name).toBe('process');
  });

  it('links each record to its writer under the links strategy, each a new trace', async () => {
    // Arrange
    const handler = traceDynamoDbStreamRecords(async () => undefined, { strategy: 'links' });
    const newImage = { pk: { S: 'o' }, traced_lambda_trace: { M: { traceparent: { S: TRACEPARENT } } } };

    // Act
    await handler(dynamoDbStreamEvent([dynamoDbStreamRecord({ newImage })]), lambdaContext());

    // Assert
    const [span] = capture.spans();
    expect(span.parentSpanContext).toBeUndefined();
    expect(span.links.map((link) => link.context.spanId)).toEqual(['00f067aa0ba902b7']);
  });

  it('hands the handler the images as written with tracing turned off too (OTEL_SDK_DISABLED)', async () => {
    // Arrange
    const off = captureSpans({ OTEL_SDK_DISABLED: 'true' });
    const { handler, seen } = recordingConsumer();
    const newImage = { pk: { S: 'o' }, traced_lambda_trace: { M: { traceparent: { S: TRACEPARENT } } } };

    // Act
    const result = await handler(dynamoDbStreamEvent([dynamoDbStreamRecord({ newImage })]), lambdaContext());

    // Assert
    expect(result).toEqual({ batchItemFailures: [] });
    expect(seen[0].dynamodb?.NewImage).toEqual({ pk: { S: 'o' } });
    expect(off.spans()).toEqual([]);
  });
});
