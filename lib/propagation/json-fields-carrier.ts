import type { TextMapGetter, TextMapSetter } from '@opentelemetry/api';

/**
 * The propagator's fields as the members of a plain object, the shape the hops that carry the context inside a JSON
 * payload write and read back (a Kinesis record's data, a Step Functions execution's input). A member that is not a
 * string, as a received payload may hold, reads as absent.
 */
export const jsonFieldsSetter: TextMapSetter<Record<string, string>> = {
  set(carrier, key, value) {
    carrier[key] = value;
  },
};

export const jsonFieldsGetter: TextMapGetter<Record<string, unknown>> = {
  keys: (carrier) => Object.keys(carrier),
  get(carrier, key) {
    const value = carrier[key];
    return typeof value === 'string' ? value : undefined;
  },
};
