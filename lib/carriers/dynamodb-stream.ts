// The DynamoDB Streams hop, both sides: the trace context written with an item (PutItem, UpdateItem,
// TransactWriteItems) and read back from the stream record's image, and the names and attributes of its spans.
//
// An item has no metadata that reaches its stream record, so the context is one attribute of the item, reserved by
// the kit: `traced_lambda_trace`, a map `{ traceparent: S, tracestate: S }`. It is a valid attribute name anywhere
// (letters and underscores only: no `.` to be read as a path in an expression, not a reserved word), and it is cut out
// of the images again before a consumer's handler sees them.
//
// Which image holds it: INSERT and MODIFY read the NewImage (the write that made the record); REMOVE reads the
// OldImage, which holds the context of the write that created or last updated the deleted item (a delete carries no
// item to write a context into), recorded as its own parent source so that a trace says so.
import { diag, propagation, type Attributes, type Context, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import type { AttributeValue as ItemValue, Put, Update } from '@aws-sdk/client-dynamodb';
import type { AttributeValue as ImageValue, DynamoDBRecord } from 'aws-lambda';
import { extractWith, NOT_FOUND, PARENT_SOURCE, type ParentLookup } from '../propagation/parent-lookup';
import {
  ATTR_AWS_DYNAMODB_TABLE_NAMES,
  ATTR_DB_OPERATION_BATCH_SIZE,
  ATTR_DB_OPERATION_NAME,
  ATTR_DB_SYSTEM_NAME,
  ATTR_FAAS_DOCUMENT_COLLECTION,
  ATTR_FAAS_DOCUMENT_OPERATION,
  ATTR_FAAS_DOCUMENT_TIME,
  ATTR_RPC_METHOD,
  ATTR_RPC_SERVICE,
  ATTR_RPC_SYSTEM,
  DB_SYSTEM_NAME_AWS_DYNAMODB,
} from '../semconv';

/** The item attribute that carries the trace context. */
export const DYNAMODB_TRACE_ATTRIBUTE = 'traced_lambda_trace';
/** The kit's own attribute for a stream record's sequence number (what `batchItemFailures` reports). */
const ATTR_DYNAMODB_SEQUENCE_NUMBER = 'traced_lambda.dynamodb.sequence_number';
/** DynamoDB's maximum item size, 400 KB: an item the context would take past it is written without it. */
const DYNAMODB_MAX_ITEM_BYTES = 400 * 1024;

const carrierSetter: TextMapSetter<Record<string, ItemValue>> = {
  set(carrier, key, value) {
    carrier[key] = { S: value };
  },
};

const imageGetter: TextMapGetter<Record<string, unknown>> = {
  keys: (carrier) => Object.keys(carrier),
  get(carrier, key) {
    return stringOf(carrier[key]);
  },
};

function stringOf(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const text: unknown = (value as { S?: unknown }).S;
  return typeof text === 'string' ? text : undefined;
}

/** The reserved attribute's value for the context of `ctx`, or undefined when the propagator writes nothing. */
function traceAttributeValue(ctx: Context): ItemValue | undefined {
  const carrier: Record<string, ItemValue> = {};
  propagation.inject(ctx, carrier, carrierSetter);
  return Object.keys(carrier).length > 0 ? { M: carrier } : undefined;
}

let reportedSizeLimit = false;

function reportItemTooLargeForContext(): void {
  if (reportedSizeLimit) return;
  reportedSizeLimit = true;
  diag.info(`traced-lambda: a DynamoDB item would pass ${DYNAMODB_MAX_ITEM_BYTES} bytes with the trace context; it is written without it.`);
}

/**
 * Returns a copy of a PutItem input (or a transaction's Put) whose item carries the context of `ctx` in the reserved
 * attribute (replacing one the item had: the context is this write's); the input itself when the item is missing or
 * the attribute would take it past 400 KB. Never throws.
 */
export function injectIntoPutItem<T extends Pick<Put, 'Item'>>(input: T, ctx: Context): T {
  try {
    const item = input.Item;
    if (item === null || typeof item !== 'object') return input;
    const value = traceAttributeValue(ctx);
    if (!value) return input;
    if (!fitsWith(item, attributeBytes(DYNAMODB_TRACE_ATTRIBUTE, value, utf8Bytes))) {
      reportItemTooLargeForContext();
      return input;
    }
    return { ...input, Item: { ...item, [DYNAMODB_TRACE_ATTRIBUTE]: value } };
  } catch {
    return input;
  }
}

/** The parts of an UpdateItem input (or a transaction's Update) the context goes into. */
interface UpdateInput {
  UpdateExpression?: string | undefined;
  ExpressionAttributeNames?: Update['ExpressionAttributeNames'];
  ExpressionAttributeValues?: Update['ExpressionAttributeValues'];
  AttributeUpdates?: Record<string, { Value?: ItemValue; Action?: string }> | undefined;
}

/**
 * Returns a copy of an UpdateItem input (or a transaction's Update) that also sets the reserved attribute: its
 * assignment is added to the expression's SET clause (or a SET clause is added), under placeholder names and values
 * of its own, the caller's names and values kept. An input with the legacy `AttributeUpdates` gets a PUT there
 * instead. The input itself when the caller already writes or removes the attribute. Never throws.
 */
export function injectIntoUpdateItem<T extends UpdateInput>(input: T, ctx: Context): T {
  try {
    const value = traceAttributeValue(ctx);
    if (!value) return input;
    const legacy = input.AttributeUpdates;
    if (legacy !== undefined && legacy !== null && typeof legacy === 'object') {
      if (DYNAMODB_TRACE_ATTRIBUTE in legacy) return input;
      return { ...input, AttributeUpdates: { ...legacy, [DYNAMODB_TRACE_ATTRIBUTE]: { Action: 'PUT', Value: value } } };
    }
    const expression = typeof input.UpdateExpression === 'string' ? input.UpdateExpression : '';
    const names = input.ExpressionAttributeNames ?? {};
    const values = input.ExpressionAttributeValues ?? {};
    // The caller's own write (or removal) of the attribute wins: DynamoDB refuses two paths to one attribute.
    if (Object.values(names).includes(DYNAMODB_TRACE_ATTRIBUTE) || BARE_TRACE_ATTRIBUTE.test(expression)) return input;
    const nameKey = unusedKey(`#${DYNAMODB_TRACE_ATTRIBUTE}`, names);
    const valueKey = unusedKey(`:${DYNAMODB_TRACE_ATTRIBUTE}`, values);
    return {
      ...input,
      UpdateExpression: withTraceAssignment(expression, `${nameKey} = ${valueKey}`),
      ExpressionAttributeNames: { ...names, [nameKey]: DYNAMODB_TRACE_ATTRIBUTE },
      ExpressionAttributeValues: { ...values, [valueKey]: value },
    };
  } catch {
    return input;
  }
}

/** The reserved attribute named in an expression as it is, not as a placeholder. */
const BARE_TRACE_ATTRIBUTE = new RegExp(`(?<![\\w#:])${DYNAMODB_TRACE_ATTRIBUTE}(?!\\w)`);

/**
 * The SET keyword of an update expression: not part of a placeholder (`#set`, `:set`), a longer word or a path.
 * Reserved words cannot name attributes in an expression, so a bare `SET` is always the clause's keyword.
 */
const SET_KEYWORD = /(?<![\w#:.])SET(?!\w)/i;

/** `expression` with `assignment` first in its SET clause, or with a SET clause of its own added at the end. */
function withTraceAssignment(expression: string, assignment: string): string {
  const match = SET_KEYWORD.exec(expression);
  if (!match) return expression.trim() === '' ? `SET ${assignment}` : `${expression} SET ${assignment}`;
  const afterKeyword = match.index + match[0].length;
  return `${expression.slice(0, afterKeyword)} ${assignment},${expression.slice(afterKeyword)}`;
}

function unusedKey(base: string, taken: Record<string, unknown>): string {
  let key = base;
  for (let suffix = 1; key in taken; suffix++) key = `${base}_${suffix}`;
  return key;
}

/** How a string's bytes are counted: exactly, or at most 3 per UTF-16 unit (cheap, and never less than exact). */
type StringBytes = (text: string) => number;
const utf8Bytes: StringBytes = (text) => Buffer.byteLength(text, 'utf8');
const utf8BytesAtMost: StringBytes = (text) => text.length * 3;

/**
 * Whether the item, less any reserved attribute it had, stays within 400 KB with `added` bytes more. Most items are
 * far below: their upper bound settles it without encoding a string; near the limit the exact count decides.
 */
function fitsWith(item: Record<string, unknown>, added: number): boolean {
  const limit = DYNAMODB_MAX_ITEM_BYTES - added;
  return itemBytesWithout(item, utf8BytesAtMost) <= limit || itemBytesWithout(item, utf8Bytes) <= limit;
}

/**
 * An item's size as DynamoDB counts it (attribute names plus values; a number counted at its upper bound) less the
 * reserved attribute. Values of an unknown shape count nothing.
 */
function itemBytesWithout(item: Record<string, unknown>, stringBytes: StringBytes): number {
  let total = 0;
  for (const name in item) {
    if (name !== DYNAMODB_TRACE_ATTRIBUTE && Object.hasOwn(item, name)) total += attributeBytes(name, item[name], stringBytes);
  }
  return total;
}

function attributeBytes(name: string, value: unknown, stringBytes: StringBytes): number {
  return stringBytes(name) + valueBytes(value, stringBytes);
}

function valueBytes(value: unknown, stringBytes: StringBytes): number {
  if (value === null || typeof value !== 'object') return 0;
  const v = value as Record<string, unknown>;
  if (typeof v.S === 'string') return stringBytes(v.S);
  if (typeof v.N === 'string') return numberBytes(v.N);
  if (v.B instanceof Uint8Array) return v.B.length;
  if (typeof v.B === 'string') return Buffer.byteLength(v.B, 'base64');
  if (typeof v.BOOL === 'boolean' || v.NULL !== undefined) return 1;
  if (Array.isArray(v.SS)) return v.SS.reduce((sum: number, s: unknown) => sum + (typeof s === 'string' ? stringBytes(s) : 0), 0);
  if (Array.isArray(v.NS)) return v.NS.reduce((sum: number, n: unknown) => sum + (typeof n === 'string' ? numberBytes(n) : 0), 0);
  if (Array.isArray(v.BS)) return v.BS.reduce((sum: number, b: unknown) => sum + (b instanceof Uint8Array ? b.length : 0), 0);
  if (Array.isArray(v.L)) return v.L.reduce((sum: number, element: unknown) => sum + 1 + valueBytes(element, stringBytes), 3);
  if (v.M !== null && typeof v.M === 'object') {
    return Object.entries(v.M as Record<string, unknown>).reduce((sum, [key, element]) => sum + 1 + attributeBytes(key, element, stringBytes), 3);
  }
  return 0;
}

/** A number's size: one byte per two significant digits plus one, at most 21; taken here at its upper bound. */
function numberBytes(number: string): number {
  return Math.min(21, Math.ceil(number.length / 2) + 1);
}

/** The image a record's context is read from: NewImage for INSERT and MODIFY, OldImage for REMOVE. */
function imageOf(record: DynamoDBRecord): { image: unknown; source: typeof PARENT_SOURCE.dynamoDbNewImage | typeof PARENT_SOURCE.dynamoDbOldImage } {
  return record?.eventName === 'REMOVE'
    ? { image: record?.dynamodb?.OldImage, source: PARENT_SOURCE.dynamoDbOldImage }
    : { image: record?.dynamodb?.NewImage, source: PARENT_SOURCE.dynamoDbNewImage };
}

function traceMapOf(image: unknown): Record<string, unknown> | undefined {
  if (image === null || typeof image !== 'object') return undefined;
  const attribute: unknown = (image as Record<string, unknown>)[DYNAMODB_TRACE_ATTRIBUTE];
  if (attribute === null || typeof attribute !== 'object') return undefined;
  const map: unknown = (attribute as { M?: unknown }).M;
  return map !== null && typeof map === 'object' && !Array.isArray(map) ? (map as Record<string, unknown>) : undefined;
}

/**
 * The context the write behind a stream record left in the item (see the top of this file). A MODIFY whose NewImage
 * holds the same `traceparent` as its OldImage gives none: that write did not go through a forwarder, and the context
 * is an earlier write's.
 */
export function extractParentFromDynamoDbRecord(record: DynamoDBRecord): ParentLookup {
  try {
    const { image, source } = imageOf(record);
    const carrier = traceMapOf(image);
    if (!carrier) return NOT_FOUND;
    if (record.eventName === 'MODIFY') {
      const before = traceMapOf(record.dynamodb?.OldImage);
      const traceparent = stringOf(carrier.traceparent);
      if (before && traceparent !== undefined && stringOf(before.traceparent) === traceparent) return NOT_FOUND;
    }
    return extractWith(carrier, imageGetter, source);
  } catch {
    return NOT_FOUND;
  }
}

/**
 * The record as its writer wrote the item: the reserved attribute taken out of NewImage and OldImage (a copy of the
 * record), or the record itself when neither image holds it. Never throws.
 */
export function dynamoDbRecordAsWritten(record: DynamoDBRecord): DynamoDBRecord {
  try {
    const stream = record?.dynamodb;
    if (stream === null || typeof stream !== 'object') return record;
    const newImage = withoutTraceAttribute(stream.NewImage);
    const oldImage = withoutTraceAttribute(stream.OldImage);
    if (newImage === stream.NewImage && oldImage === stream.OldImage) return record;
    const copy = { ...stream };
    if (newImage !== undefined) copy.NewImage = newImage;
    if (oldImage !== undefined) copy.OldImage = oldImage;
    return { ...record, dynamodb: copy };
  } catch {
    return record;
  }
}

function withoutTraceAttribute(image: Record<string, ImageValue> | undefined): Record<string, ImageValue> | undefined {
  if (image === null || typeof image !== 'object' || !Object.hasOwn(image, DYNAMODB_TRACE_ATTRIBUTE)) return image;
  const { [DYNAMODB_TRACE_ATTRIBUTE]: _trace, ...rest } = image;
  return rest;
}

/** The CLIENT span of a write: the database conventions' `{operation} {table}` name and attributes, and the AWS SDK's. */
export function dynamoDbClientSpan(operation: string, tables: string[], batchSize?: number): { name: string; attributes: Attributes } {
  const attributes: Attributes = {
    [ATTR_DB_SYSTEM_NAME]: DB_SYSTEM_NAME_AWS_DYNAMODB,
    [ATTR_DB_OPERATION_NAME]: operation,
    [ATTR_RPC_SYSTEM]: 'aws-api',
    [ATTR_RPC_SERVICE]: 'DynamoDB',
    [ATTR_RPC_METHOD]: operation,
  };
  if (tables.length > 0) attributes[ATTR_AWS_DYNAMODB_TABLE_NAMES] = tables;
  if (batchSize !== undefined) attributes[ATTR_DB_OPERATION_BATCH_SIZE] = batchSize;
  return { name: tables.length === 1 ? `${operation} ${tables[0]}` : operation, attributes };
}

/** Adds the attributes every stream record's span carries to `attributes`. */
export function addDynamoDbStreamSpanAttributes(attributes: Attributes, table: string | undefined): Attributes {
  attributes[ATTR_DB_SYSTEM_NAME] = DB_SYSTEM_NAME_AWS_DYNAMODB;
  setTable(attributes, table);
  return attributes;
}

const DOCUMENT_OPERATION = { INSERT: 'insert', MODIFY: 'edit', REMOVE: 'delete' } as const;

/** Sets a stream record's own attributes: its table, what happened to the item, when, and its sequence number. */
export function setDynamoDbRecordAttributes(attributes: Attributes, record: DynamoDBRecord, table: string | undefined): void {
  setTable(attributes, table);
  const eventName: unknown = record?.eventName;
  const operation =
    typeof eventName === 'string' && Object.hasOwn(DOCUMENT_OPERATION, eventName)
      ? DOCUMENT_OPERATION[eventName as keyof typeof DOCUMENT_OPERATION]
      : undefined;
  if (operation) attributes[ATTR_FAAS_DOCUMENT_OPERATION] = operation;
  else delete attributes[ATTR_FAAS_DOCUMENT_OPERATION];
  const created: unknown = record?.dynamodb?.ApproximateCreationDateTime;
  const time = typeof created === 'number' && Number.isFinite(created) ? new Date(created * 1000) : undefined;
  if (time && !Number.isNaN(time.getTime())) attributes[ATTR_FAAS_DOCUMENT_TIME] = time.toISOString();
  else delete attributes[ATTR_FAAS_DOCUMENT_TIME];
  const sequenceNumber = dynamoDbSequenceNumberOf(record);
  if (sequenceNumber) attributes[ATTR_DYNAMODB_SEQUENCE_NUMBER] = sequenceNumber;
  else delete attributes[ATTR_DYNAMODB_SEQUENCE_NUMBER];
}

function setTable(attributes: Attributes, table: string | undefined): void {
  if (table) {
    attributes[ATTR_FAAS_DOCUMENT_COLLECTION] = table;
    attributes[ATTR_AWS_DYNAMODB_TABLE_NAMES] = [table];
  } else {
    delete attributes[ATTR_FAAS_DOCUMENT_COLLECTION];
    delete attributes[ATTR_AWS_DYNAMODB_TABLE_NAMES];
  }
}

/** The consumer's span name: `process {table}`, as the kit's other batch triggers. */
export function dynamoDbStreamSpanName(table: string | undefined): string {
  return table ? `process ${table}` : 'process';
}

/** A table's name, or the name in a table ARN (`arn:aws:dynamodb:region:account:table/name[/stream/…]`). */
export function dynamoDbTableOf(nameOrArn: unknown): string | undefined {
  if (typeof nameOrArn !== 'string' || nameOrArn === '') return undefined;
  if (!nameOrArn.startsWith('arn:')) return nameOrArn;
  const resource = nameOrArn.split(':')[5];
  return resource?.startsWith('table/') ? resource.split('/')[1] || undefined : undefined;
}

/** A stream record's table, from its event source ARN. */
export function dynamoDbTableOfRecord(record: DynamoDBRecord): string | undefined {
  return dynamoDbTableOf(record?.eventSourceARN);
}

/** A stream record's sequence number; '' when it has none. */
export function dynamoDbSequenceNumberOf(record: DynamoDBRecord | null | undefined): string {
  const sequenceNumber: unknown = record?.dynamodb?.SequenceNumber;
  return typeof sequenceNumber === 'string' ? sequenceNumber : '';
}
