import { ROOT_CONTEXT, type Context, type TextMapGetter } from '@opentelemetry/api';
import { AWSXRAY_TRACE_ID_HEADER, AWSXRayPropagator } from '@opentelemetry/propagator-aws-xray';

const xray = new AWSXRayPropagator();

const singleValueGetter: TextMapGetter<string> = {
  keys: () => [AWSXRAY_TRACE_ID_HEADER],
  get: (carrier, key) => (key === AWSXRAY_TRACE_ID_HEADER ? carrier : undefined),
};

/** Reads an X-Ray trace header (`Root=1-…;Parent=…;Sampled=…`) into a context, with the official propagator. */
export function extractXRayTraceHeader(header: string): Context {
  return xray.extract(ROOT_CONTEXT, header, singleValueGetter);
}

/**
 * Writes the span in `context` as an X-Ray trace header. A `Lineage` field found in `previous` is kept:
 * Lambda's recursive-loop detection counts on it, and losing it silently disables that protection.
 */
export function formatXRayTraceHeader(context: Context, previous?: string): string | undefined {
  let header: string | undefined;
  xray.inject(context, undefined, {
    set: (_carrier, _key, value) => {
      header = value;
    },
  });
  const lineage = previous?.split(';').find((field) => field.trim().startsWith('Lineage='));
  return header && lineage ? `${header};${lineage.trim()}` : header;
}
