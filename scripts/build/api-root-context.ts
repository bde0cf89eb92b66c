// What @opentelemetry/context-async-hooks takes from the API (see esbuild-plugins.js).
export { ROOT_CONTEXT } from '@opentelemetry/api';
