import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { serializeSpans } from './otlp-json-body';
import { fitOversizeSpans, type OversizeSpan } from './oversize-span';

/**
 * What one request to CloudWatch's OTLP traces endpoint may carry, the deployed default destination (AWS's
 * "OTLP Endpoints" page, https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-OTLPEndpoint.html):
 * at most 10,000 spans and 5 MB uncompressed per request, each span at most 200 KB; past them the whole request is
 * refused. Bytes are counted in thousands, the stricter reading of MB and KB.
 */
export const OTLP_EXPORT_LIMITS = {
  maxSpansPerRequest: 10_000,
  maxRequestBytes: 5_000_000,
  maxSpanBytes: 200_000,
} as const;

/** A part of a split export requests are cut to, so that a part re-serialized is under the limit despite uneven spans. */
const SPLIT_FILL = 0.9;

export interface ExportRequest {
  /** The uncompressed OTLP/JSON body: what the byte limit is measured on. */
  body: Uint8Array;
  spanCount: number;
}

/**
 * The spans of one export as request bodies within the endpoint's limits. The usual export (one invocation's few
 * spans) is serialized once and nothing more: a body under the span limit holds no span over it. A larger one is
 * checked span by span (a cheap bound, a span serialized alone only when the bound is over), and split by span
 * count in proportion to its bytes, each part serialized again.
 */
export function serializeWithinLimits(spans: ReadableSpan[]): { requests: ExportRequest[]; oversize: OversizeSpan[] } {
  const { maxSpansPerRequest, maxSpanBytes } = OTLP_EXPORT_LIMITS;
  let body: Uint8Array | undefined;
  if (spans.length <= maxSpansPerRequest) {
    body = serializeSpans(spans);
    if (body.byteLength <= maxSpanBytes) return { requests: [{ body, spanCount: spans.length }], oversize: [] };
  }
  const fitted = fitOversizeSpans(spans, maxSpanBytes);
  const requests: ExportRequest[] = [];
  // A trimmed copy changes the bytes: the body serialized before it no longer holds.
  if (fitted.spans.length > 0) split(fitted.spans, fitted.spans === spans ? body : undefined, requests);
  return { requests, oversize: fitted.oversize };
}

function split(spans: ReadableSpan[], body: Uint8Array | undefined, requests: ExportRequest[]): void {
  const { maxSpansPerRequest, maxRequestBytes } = OTLP_EXPORT_LIMITS;
  if (spans.length > maxSpansPerRequest) {
    // Not serialized whole: it would be split anyway.
    for (const part of evenParts(spans, Math.ceil(spans.length / maxSpansPerRequest))) split(part, undefined, requests);
    return;
  }
  body ??= serializeSpans(spans);
  // One span's own request cannot be split further; it is under the span limit, so within the request's.
  if (body.byteLength <= maxRequestBytes || spans.length === 1) {
    requests.push({ body, spanCount: spans.length });
    return;
  }
  const parts = Math.min(spans.length, Math.max(2, Math.ceil(body.byteLength / (maxRequestBytes * SPLIT_FILL))));
  for (const part of evenParts(spans, parts)) split(part, undefined, requests);
}

/** `spans` in `count` consecutive parts whose sizes differ by one at most. */
function evenParts(spans: ReadableSpan[], count: number): ReadableSpan[][] {
  const parts: ReadableSpan[][] = [];
  for (let index = 0; index < count; index++) {
    parts.push(spans.slice(Math.floor((index * spans.length) / count), Math.floor(((index + 1) * spans.length) / count)));
  }
  return parts;
}
