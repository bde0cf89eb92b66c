// The Kinesis Data Streams hop, both sides: the trace context written into a record's data and read back (and taken
// out again) from a received record, and the names and attributes of its spans.
//
// A Kinesis record has no attributes, only its data blob, so the context travels inside the data. The format keeps
// every consumer working, ours or not:
// - data that is a JSON object (UTF-8, starting with `{`) gets one reserved member written first,
//   `{"traced_lambda.trace":{"traceparent":"…","tracestate":"…"}, …the producer's members…}`: still the same JSON
//   object to any other reader, one member more;
// - any other data (binary, text, a JSON array or scalar, invalid JSON) is sent untouched and carries no context: its
//   consumer's span is a root (or, by the batch strategy, linked to nothing).
// The member is spliced in bytewise, never re-serialized, so that the consumer can cut it out and hand its handler
// the exact bytes the producer wrote (whitespace, key order, number spelling, escapes, duplicate keys all kept).
import { diag, propagation, type Attributes, type Context, type Span } from '@opentelemetry/api';
import type { KinesisStreamRecord } from 'aws-lambda';
import { jsonFieldsGetter, jsonFieldsSetter } from '../propagation/json-fields-carrier';
import { extractWith, NOT_FOUND, PARENT_SOURCE, type ParentLookup } from '../propagation/parent-lookup';
import {
  ATTR_AWS_KINESIS_STREAM_NAME,
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_DESTINATION_PARTITION_ID,
  ATTR_MESSAGING_MESSAGE_ID,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM,
  MESSAGING_SYSTEM_AWS_KINESIS,
} from '../semconv';

/** What opens a record that carries a context: `{"traced_lambda.trace":{` (24 bytes). */
const TRACE_MEMBER_OPENING = '{"traced_lambda.trace":';
/**
 * The same 24 bytes in base64, as Lambda delivers the data: 24 is a multiple of 3, so every record that carries a
 * context starts with exactly these 32 characters, and a record that does not is recognised without decoding it.
 * (A literal: computing it when the module loads would keep this file in bundles that never use it.)
 */
const TRACE_MEMBER_OPENING_BASE64 = 'eyJ0cmFjZWRfbGFtYmRhLnRyYWNlIjp7';

/**
 * A stream's default maximum record size (`MaxRecordSizeInKiB` 1024): the data plus the partition key's UTF-8 bytes.
 * A stream raised up to 10 MiB takes bigger records; pass its size as `maxRecordBytes`.
 */
export const KINESIS_DEFAULT_MAX_RECORD_BYTES = 1024 * 1024;
/**
 * What one PutRecords request may carry, data and partition keys (the smaller of the limits AWS has documented, 5 MiB;
 * the current API reference says 10): the context is left out of the records that would take a request past it.
 */
export const KINESIS_MAX_REQUEST_BYTES = 5 * 1024 * 1024;

const CHAR = { openBrace: 0x7b, closeBrace: 0x7d, quote: 0x22, backslash: 0x5c, comma: 0x2c } as const;

/** The part of a PutRecord input (or PutRecords entry) the context goes into. */
interface KinesisRecordInput {
  Data: Uint8Array | undefined;
  PartitionKey?: string | undefined;
}

let reportedSizeLimit = false;

/** Says once per process that a record was sent without its context because of the size limit. */
export function reportRecordTooLargeForContext(limit: number): void {
  if (reportedSizeLimit) return;
  reportedSizeLimit = true;
  diag.info(`traced-lambda: a Kinesis record (or its PutRecords request) would pass ${limit} bytes with the trace context; it is sent without it.`);
}

/**
 * Returns a copy of a record input whose data carries the trace context of `ctx`, and the bytes that added; the input
 * itself when its data is not a JSON object, already carries a context, or would pass `maxRecordBytes` with it (data
 * plus partition key, as Kinesis counts). Never throws: a record the kit cannot write into is sent as it was.
 */
export function injectIntoKinesisRecord<T extends KinesisRecordInput>(input: T, ctx: Context, maxRecordBytes: number): { input: T; added: number } {
  const unchanged = { input, added: 0 };
  try {
    const data = input.Data;
    if (!(data instanceof Uint8Array) || data[0] !== CHAR.openBrace) return unchanged;
    const carrier: Record<string, string> = {};
    propagation.inject(ctx, carrier, jsonFieldsSetter);
    if (Object.keys(carrier).length === 0) return unchanged;
    const written = withTraceMember(data, carrier);
    if (!written) return unchanged;
    const partitionKeyBytes = typeof input.PartitionKey === 'string' ? Buffer.byteLength(input.PartitionKey, 'utf8') : 0;
    if (written.length + partitionKeyBytes > maxRecordBytes) {
      reportRecordTooLargeForContext(maxRecordBytes);
      return unchanged;
    }
    return { input: { ...input, Data: written }, added: written.length - data.length };
  } catch {
    return unchanged;
  }
}

/**
 * `data` with the reserved member holding `carrier` written first; undefined when `data` is not a JSON object or
 * already opens with the member (the first writer's context is kept).
 */
export function withTraceMember(data: Uint8Array, carrier: Record<string, string>): Buffer | undefined {
  if (data[0] !== CHAR.openBrace || startsWithTraceMember(data) || !isJsonObject(data)) return undefined;
  const rest = data.subarray(1);
  // `{}` (any whitespace inside) takes the member alone; otherwise a comma separates it from the producer's first.
  const separator = isEmptyObjectTail(rest) ? '' : ',';
  const value = JSON.stringify(carrier);
  // Spaces before the value's closing brace make the bytes a consumer cuts out (all but the opening brace) a multiple
  // of 3: the producer's data after them is then the same base64 text as in the received record, which the consumer
  // keeps as it is instead of decoding and encoding it again.
  const unpadded = Buffer.byteLength(TRACE_MEMBER_OPENING + value + separator, 'utf8');
  const padding = ' '.repeat((3 - ((unpadded - 1) % 3)) % 3);
  const member = TRACE_MEMBER_OPENING + value.slice(0, -1) + padding + '}' + separator;
  return Buffer.concat([Buffer.from(member, 'utf8'), rest]);
}

/** Valid UTF-8 holding one JSON object. */
function isJsonObject(data: Uint8Array): boolean {
  try {
    const value: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data));
    return value !== null && typeof value === 'object' && !Array.isArray(value);
  } catch {
    return false;
  }
}

/** After the opening brace: only JSON whitespace, then the closing brace. */
function isEmptyObjectTail(rest: Uint8Array): boolean {
  for (const byte of rest) {
    if (byte === CHAR.closeBrace) return true;
    if (byte !== 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) return false;
  }
  return false;
}

function startsWithTraceMember(data: Uint8Array): boolean {
  if (data.length <= TRACE_MEMBER_OPENING.length) return false;
  for (let index = 0; index < TRACE_MEMBER_OPENING.length; index++) {
    if (data[index] !== TRACE_MEMBER_OPENING.charCodeAt(index)) return false;
  }
  return data[TRACE_MEMBER_OPENING.length] === CHAR.openBrace;
}

/** The reserved member at the start of a received record's data. */
interface TraceMember {
  carrier: Record<string, unknown>;
  /** The data's first bytes (at least the member and two bytes more when the data has them), or all of it. */
  head: Buffer;
  /** Whether `head` is the whole data. */
  whole: boolean;
  /** Where the producer's own bytes resume, after the member and its comma. */
  restStart: number;
}

/** How much of a record's base64 data is decoded to find the member first: 1,024 characters (768 bytes). */
const HEAD_BASE64_CHARS = 1024;

/**
 * The trace member of a received record's base64 data, or undefined when the data does not open with a well-formed
 * one (then the data is the producer's as it is). Records without it cost a string comparison, not a decode; records
 * with it a decode of their first bytes only, unless a long tracestate runs past them.
 */
function readTraceMember(data: unknown): TraceMember | undefined {
  if (typeof data !== 'string' || !data.startsWith(TRACE_MEMBER_OPENING_BASE64)) return undefined;
  const valueStart = TRACE_MEMBER_OPENING.length;
  let head = Buffer.from(data.slice(0, HEAD_BASE64_CHARS), 'base64');
  let whole = data.length <= HEAD_BASE64_CHARS;
  let valueEnd = endOfJsonObject(head, valueStart);
  // The byte after the value (a comma or not) and two more must be in the head; otherwise decode the whole data.
  if ((valueEnd < 0 || valueEnd + 3 > head.length) && !whole) {
    head = Buffer.from(data, 'base64');
    whole = true;
    valueEnd = endOfJsonObject(head, valueStart);
  }
  if (valueEnd < 0) return undefined;
  let carrier: unknown;
  try {
    carrier = JSON.parse(head.toString('utf8', valueStart, valueEnd));
  } catch {
    return undefined;
  }
  if (carrier === null || typeof carrier !== 'object' || Array.isArray(carrier)) return undefined;
  const restStart = head[valueEnd] === CHAR.comma ? valueEnd + 1 : valueEnd;
  return { carrier: carrier as Record<string, unknown>, head, whole, restStart };
}

/**
 * The producer's data, base64-encoded: `{` and the bytes after the member. When the member took 3n+1 bytes (ours
 * always do: see withTraceMember), everything after the next 3-byte boundary is the received base64 text as it is;
 * only the bytes before it are encoded again. Otherwise the whole data is decoded and encoded.
 */
function producerDataOf(data: string, { head, whole, restStart }: TraceMember): string {
  const boundary = restStart + 2;
  if ((restStart - 1) % 3 === 0 && boundary <= head.length) {
    const opening = Buffer.concat([Buffer.from('{'), head.subarray(restStart, boundary)]).toString('base64');
    return opening + data.slice((boundary / 3) * 4);
  }
  const bytes = whole ? head : Buffer.from(data, 'base64');
  return Buffer.concat([Buffer.from('{'), bytes.subarray(restStart)]).toString('base64');
}

/** The index just past the `}` closing the JSON object that opens at `start` (strings and escapes skipped); -1 if none. */
function endOfJsonObject(bytes: Uint8Array, start: number): number {
  let depth = 0;
  let inString = false;
  for (let index = start; index < bytes.length; index++) {
    const byte = bytes[index];
    if (inString) {
      if (byte === CHAR.backslash) index++;
      else if (byte === CHAR.quote) inString = false;
    } else if (byte === CHAR.quote) inString = true;
    else if (byte === CHAR.openBrace) depth++;
    else if (byte === CHAR.closeBrace && --depth === 0) return index + 1;
  }
  return -1;
}

/** The context a producer wrote into the record's data (`traceparent`/`tracestate` of the reserved member). */
export function extractParentFromKinesisRecord(record: KinesisStreamRecord): ParentLookup {
  const member = readTraceMember(record?.kinesis?.data);
  return member ? extractWith(member.carrier, jsonFieldsGetter, PARENT_SOURCE.kinesisRecordData) : NOT_FOUND;
}

/**
 * The record as its producer wrote it: the reserved member cut out of the data (a copy of the record), or the record
 * itself when its data carries none. Never throws.
 */
export function kinesisRecordAsWritten(record: KinesisStreamRecord): KinesisStreamRecord {
  try {
    const data: unknown = record?.kinesis?.data;
    const member = readTraceMember(data);
    return member ? { ...record, kinesis: { ...record.kinesis, data: producerDataOf(data as string, member) } } : record;
  } catch {
    return record;
  }
}

/** Adds the messaging attributes every Kinesis span carries, producer or consumer side, to `attributes`. */
export function addKinesisSpanAttributes(attributes: Attributes, operation: 'send' | 'create' | 'process', stream: string | undefined): Attributes {
  attributes[ATTR_MESSAGING_SYSTEM] = MESSAGING_SYSTEM_AWS_KINESIS;
  attributes[ATTR_MESSAGING_OPERATION_TYPE] = operation;
  attributes[ATTR_MESSAGING_OPERATION_NAME] = operation;
  if (stream) {
    attributes[ATTR_MESSAGING_DESTINATION_NAME] = stream;
    attributes[ATTR_AWS_KINESIS_STREAM_NAME] = stream;
  }
  return attributes;
}

/** Sets what Kinesis said of a written record on its span: the shard it went to and its sequence number. */
export function setKinesisPutResultAttributes(span: Span, shardId: string | undefined, sequenceNumber: string | undefined): void {
  if (shardId) span.setAttribute(ATTR_MESSAGING_DESTINATION_PARTITION_ID, shardId);
  if (sequenceNumber) span.setAttribute(ATTR_MESSAGING_MESSAGE_ID, sequenceNumber);
}

/** Sets a received record's own attributes on its span's: its stream, shard and sequence number. */
export function setKinesisRecordAttributes(attributes: Attributes, record: KinesisStreamRecord, stream: string | undefined): void {
  if (stream) {
    attributes[ATTR_MESSAGING_DESTINATION_NAME] = stream;
    attributes[ATTR_AWS_KINESIS_STREAM_NAME] = stream;
  } else {
    delete attributes[ATTR_MESSAGING_DESTINATION_NAME];
    delete attributes[ATTR_AWS_KINESIS_STREAM_NAME];
  }
  const shard = kinesisShardOf(record);
  if (shard) attributes[ATTR_MESSAGING_DESTINATION_PARTITION_ID] = shard;
  else delete attributes[ATTR_MESSAGING_DESTINATION_PARTITION_ID];
  const sequenceNumber: unknown = record?.kinesis?.sequenceNumber;
  if (typeof sequenceNumber === 'string') attributes[ATTR_MESSAGING_MESSAGE_ID] = sequenceNumber;
  else delete attributes[ATTR_MESSAGING_MESSAGE_ID];
}

/** The span name the messaging conventions give: `{operation} {stream}`. */
export function kinesisSpanName(operation: 'send' | 'create' | 'process', stream: string | undefined): string {
  return stream ? `${operation} ${stream}` : operation;
}

/** arn:aws:kinesis:region:account:stream/name → name. */
export function kinesisStreamOfArn(arn: unknown): string | undefined {
  if (typeof arn !== 'string') return undefined;
  const resource = arn.split(':')[5];
  return resource?.startsWith('stream/') ? resource.slice('stream/'.length) || undefined : undefined;
}

/** A received record's stream, from its event source ARN. */
export function kinesisStreamOf(record: KinesisStreamRecord): string | undefined {
  return kinesisStreamOfArn(record?.eventSourceARN);
}

/** A received record's shard: the part of its `eventID` before the colon (`shardId-000000000000:<sequence number>`). */
export function kinesisShardOf(record: KinesisStreamRecord): string | undefined {
  const eventId: unknown = record?.eventID;
  if (typeof eventId !== 'string') return undefined;
  const colon = eventId.indexOf(':');
  return colon > 0 ? eventId.slice(0, colon) : undefined;
}
