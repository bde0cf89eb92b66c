/** The W3C specification's example ids, used as "the caller's" trace across the tests. */
export const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
export const SPAN_ID = '00f067aa0ba902b7';
export const TRACEPARENT = `00-${TRACE_ID}-${SPAN_ID}-01`;
