import { ROOT_CONTEXT, type Context, type TextMapGetter } from '@opentelemetry/api';
import { AWSXRAY_TRACE_ID_HEADER, AWSXRayPropagator } from '@opentelemetry/propagator-aws-xray';

const xray = new AWSXRayPropagator();

const singleValueGetter: TextMapGetter<string> = {
  keys: () => [AWSXRAY_TRACE_ID_HEADER],
  get: (carrier, key) => (key === AWSXRAY_TRACE_ID_HEADER ? carrier : undefined),
};

/**
 * Reads an X-Ray trace header (`Root=1-…;Parent=…;Sampled=…`) into a context, with the official propagator.
 * Only fields named exactly Root, Parent and Sampled are given to it (it matches names by prefix, so `RootX=`
 * would pass), and the ids come out in lower case: an upper-case X-Ray id would otherwise become the span's
 * trace id and be forwarded in a traceparent that the next hop rejects.
 */
export function extractXRayTraceHeader(header: string): Context {
  const fields = header.split(';').flatMap((field) => {
    const at = field.indexOf('=');
    const name = field.slice(0, at).trim();
    return at > 0 && XRAY_FIELDS.has(name)
      ? [
          `${name}=${field
            .slice(at + 1)
            .trim()
            .toLowerCase()}`,
        ]
      : [];
  });
  return xray.extract(ROOT_CONTEXT, fields.join(';'), singleValueGetter);
}

const XRAY_FIELDS = new Set(['Root', 'Parent', 'Sampled']);

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
