import { diag, SpanKind, SpanStatusCode, type Attributes, type Span } from '@opentelemetry/api';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { headerValue, type HttpEvent } from '../carriers/http-headers';
import { traceInvocation, type EntrySpanDescription, type LambdaFn } from '../invocation/invocation';
import type { InboundPolicy } from '../propagation/inbound-policy';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_SERVER_ADDRESS,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
  FAAS_TRIGGER,
} from '../semconv';
import { extractParentFromHttpEvent } from '../carriers/http-headers';

/**
 * Wraps an API Gateway (REST or HTTP API) or ALB handler: one SERVER span per request, the child of the
 * caller's `traceparent` header (any case) or a new root, named `METHOD /route`, with the response status.
 * The handler's result and errors pass through unchanged; spans are exported after the response (Lambda extension)
 * or before the function returns.
 */
export interface HttpHandlerOptions {
  /** What to do with a caller's `traceparent` (default `continue`); see `InboundPolicy`. */
  inbound?: InboundPolicy;
  /**
   * The route template this function serves (`/orders/{orderId}`), for events that carry none: an ALB's (its
   * listener rule is not in the event). API Gateway events carry their own, which comes first.
   */
  route?: string;
}

export function traceHttpHandler<E extends HttpEvent, R>(handler: LambdaFn<E, R>, options: HttpHandlerOptions = {}): LambdaFn<E, R> {
  return traceInvocation(httpEntrySpan(options), handler, { onResult: recordHttpResponse });
}

/** The SERVER span of one request: `METHOD /route`, its parent from the headers. Shared with the middy middleware. */
export function httpEntrySpan(options: HttpHandlerOptions): EntrySpanDescription<HttpEvent> {
  return {
    trigger: FAAS_TRIGGER.http,
    describe(event, _lambdaContext, attributes) {
      const { method, route } = addRequestAttributes(attributes, event, options.route);
      return {
        name: route ? `${method} ${route}` : method,
        kind: SpanKind.SERVER,
        attributes,
        lookup: extractParentFromHttpEvent(event),
        inbound: options.inbound,
      };
    },
  };
}

/** Adds the request's HTTP attributes to `attributes` (one object, no copies: this runs on every request). */
function addRequestAttributes(attributes: Attributes, event: HttpEvent, fallbackRoute: string | undefined): { method: string; route?: string } {
  try {
    const v2 = isHttpApiV2(event) ? event : undefined;
    const method = (v2 ? v2.requestContext?.http?.method : (event as { httpMethod?: string }).httpMethod) || 'HTTP';
    const route = (v2 ? routeFromRouteKey(v2.routeKey) : (event as { resource?: string }).resource || undefined) ?? fallbackRoute;
    const path = v2 ? v2.rawPath : (event as { path?: string }).path;
    const clientAddress = v2
      ? v2.requestContext?.http?.sourceIp
      : (event as { requestContext?: { identity?: { sourceIp?: string } } }).requestContext?.identity?.sourceIp;
    attributes[ATTR_HTTP_REQUEST_METHOD] = method;
    attributes[ATTR_URL_SCHEME] = headerValue(event, 'x-forwarded-proto') ?? 'https';
    if (route) attributes[ATTR_HTTP_ROUTE] = route;
    if (path) attributes[ATTR_URL_PATH] = path;
    const host = headerValue(event, 'host') ?? (event.requestContext as { domainName?: string } | undefined)?.domainName;
    if (host) attributes[ATTR_SERVER_ADDRESS] = host.replace(/:\d+$/, '');
    if (clientAddress) attributes[ATTR_CLIENT_ADDRESS] = clientAddress;
    const userAgent = headerValue(event, 'user-agent');
    if (userAgent) attributes[ATTR_USER_AGENT_ORIGINAL] = userAgent;
    return { method, route };
  } catch (error) {
    diag.debug('traced-lambda: could not read the HTTP request attributes', error);
    return { method: 'HTTP' };
  }
}

function isHttpApiV2(event: HttpEvent): event is APIGatewayProxyEventV2 {
  return (event as APIGatewayProxyEventV2).version === '2.0';
}

/** `POST /orders` → `/orders`; `$default` has no route. */
function routeFromRouteKey(routeKey: string | undefined): string | undefined {
  const path = routeKey?.split(' ')[1];
  return path && path.startsWith('/') ? path : undefined;
}

/** Reads the handler's answer into the span: its status code (a bare body is a 200), 5xx → ERROR. */
export function recordHttpResponse(span: Span, result: unknown): void {
  // HTTP API accepts a bare body as the result, which API Gateway answers with 200.
  const status =
    result !== null && typeof result === 'object' && typeof (result as { statusCode?: unknown }).statusCode === 'number'
      ? (result as { statusCode: number }).statusCode
      : 200;
  span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
  if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
}
