import { propagation, SpanKind, SpanStatusCode, type Attributes } from '@opentelemetry/api';
import { httpHeadersSetter } from '../carriers/http-headers';
import { ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT, ATTR_URL_FULL } from '../semconv';
import { runOutgoingCall, type ForwardOptions } from './parent';

/**
 * `fetch` with a CLIENT `METHOD` span around the request and the span's context in `traceparent`/`tracestate`
 * headers (the caller's headers kept). The response and errors pass through unchanged; 5xx marks the span failed.
 */
export async function tracedFetch(input: string | URL, init: RequestInit = {}, options?: ForwardOptions): Promise<Response> {
  const method = (init.method ?? 'GET').toUpperCase();
  return runOutgoingCall({
    name: method,
    kind: SpanKind.CLIENT,
    attributes: urlAttributes(input, method),
    options,
    send: (callContext) => {
      const headers = new Headers(init.headers);
      const traceHeaders: Record<string, string> = {};
      propagation.inject(callContext, traceHeaders, httpHeadersSetter);
      for (const [name, value] of Object.entries(traceHeaders)) headers.set(name, value);
      return fetch(input, { ...init, headers });
    },
    onResult: (span, response) => {
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, response.status);
      if (response.status >= 400) span.setStatus({ code: SpanStatusCode.ERROR });
    },
  });
}

function urlAttributes(input: string | URL, method: string): Attributes {
  const attributes: Attributes = { [ATTR_HTTP_REQUEST_METHOD]: method };
  try {
    const url = new URL(input);
    // Credentials never go into telemetry.
    url.username = '';
    url.password = '';
    attributes[ATTR_URL_FULL] = url.href;
    attributes[ATTR_SERVER_ADDRESS] = url.hostname;
    attributes[ATTR_SERVER_PORT] = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
  } catch {
    // A relative or invalid URL: fetch itself will say so.
  }
  return attributes;
}
