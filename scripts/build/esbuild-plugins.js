// esbuild plugins for the function bundles (serverless.yml custom.esbuild.plugins, and the benchmark).
//
// @opentelemetry/context-async-hooks ships CommonJS only, and its `require('@opentelemetry/api')` makes
// esbuild keep the API's whole namespace: ~3 KB of every bundle that tree-shaking would otherwise drop. It
// uses one export, ROOT_CONTEXT, so its require is pointed at a module re-exporting just that. The offline
// end-to-end tests run these bundles, so a future version needing more would fail there, not in production.
const path = require('node:path');

const apiRootContext = {
  name: 'context-async-hooks-api',
  setup(build) {
    build.onResolve({ filter: /^@opentelemetry\/api$/ }, (args) =>
      args.importer.includes(`${path.sep}@opentelemetry${path.sep}context-async-hooks${path.sep}`)
        ? { path: path.join(__dirname, 'api-root-context.ts') }
        : undefined,
    );
  },
};

module.exports = [apiRootContext];
