// The esbuild plugin (serverless.yml, custom.esbuild.plugins) that bundles the tracing kit beside each handler in a
// file of its own with no source map: `<handler>.tracing.js` holds lib/ and the OpenTelemetry packages, tree-shaken to
// what that handler imports from lib/index.ts, and the handler's own bundle (the function's code, with its source
// map) requires it. Node.js, under --enable-source-maps, scans every character of a bundle that names a map and reads
// the map when it loads it: only the function's code pays that now, and stack frames in it still name its TypeScript
// sources. The kit's own frames are left unmapped, as a library's are.
//
// serverless-esbuild leaves a file named `<handler>.<anything>` out of the other functions' zips (it looks derived from
// that handler), so each zip carries its own handler's kit only. A build with several entry points, or a handler that
// does not import lib/index.ts, is bundled as one file, as before.
const { basename, dirname, extname, join, resolve } = require('node:path');
const exportFilePlugins = require('./export-file-plugin.cjs');
const { handlerOptions } = require('./handler-options.cjs');

const LIB = resolve(__dirname, '..', '..', 'lib');
const LIB_INDEX = [LIB, join(LIB, 'index'), join(LIB, 'index.ts')];
/** What the handler's bundle requires: `create-order.js` → `./create-order.tracing.js`. */
const kitFileOf = (entry) => `${basename(entry, extname(entry))}.tracing.js`;
/** Where esbuild's ESM output names the kit, to read the names the handler imports. */
const PLACEHOLDER = '__traced_lambda_kit__';

/** True for an import, from outside lib/, of lib/index.ts (`../lib`, `../lib/index`). */
function importsTheKit(path, importer, resolveDir) {
  if (!path.startsWith('.') || importer.startsWith(`${LIB}/`)) return false;
  return LIB_INDEX.includes(resolve(resolveDir, path));
}

/** An onResolve hook that makes lib/index.ts external under `name`. */
const kitAsExternal = (name) => ({
  name: 'traced-lambda-kit-external',
  setup(build) {
    build.onResolve({ filter: /lib/ }, ({ path, importer, resolveDir }) =>
      importsTheKit(path, importer, resolveDir) ? { path: name, external: true } : undefined,
    );
  },
});

/**
 * The names the handler imports from lib/index.ts, after tree-shaking: esbuild writes them into an ES module output
 * as `import { a, b as c } from "<placeholder>"`. Undefined when it imports the whole namespace.
 */
async function importedNames(build) {
  const { minify: _minify, ...options } = handlerOptions(build.initialOptions);
  const result = await build.esbuild.build({
    ...options,
    entryPoints: build.initialOptions.entryPoints,
    format: 'esm',
    write: false,
    outdir: '/',
    plugins: [kitAsExternal(PLACEHOLDER)],
  });
  const code = result.outputFiles.map((file) => file.text).join('\n');
  if (new RegExp(`import\\s*\\*\\s*as\\s+\\w+\\s+from\\s*"${PLACEHOLDER}"|export\\s*\\*\\s*from\\s*"${PLACEHOLDER}"`).test(code)) return undefined;
  const names = new Set();
  for (const [, list] of code.matchAll(new RegExp(`(?:import|export)\\s*\\{([^}]*)\\}\\s*from\\s*"${PLACEHOLDER}"`, 'g'))) {
    for (const part of list.split(',')) {
      const name = part.trim().split(/\s+as\s+/)[0];
      if (name) names.add(name);
    }
  }
  return [...names];
}

/**
 * OpenTelemetry's dynamic imports (@opentelemetry/resources' host detectors read the machine id through `import()`)
 * are left out of the bundle: the kit never runs them, and esbuild wraps every module such an import can reach (the
 * whole OpenTelemetry API among them) in a function called at load, instead of laying them out flat.
 */
const noDynamicImports = {
  name: 'traced-lambda-no-dynamic-imports',
  setup(build) {
    build.onResolve({ filter: /.*/ }, ({ kind, path, importer }) =>
      kind === 'dynamic-import' && importer.includes('/node_modules/@opentelemetry/') ? { path, external: true } : undefined,
    );
  },
};

/** @type {import('esbuild').Plugin} */
const kitFilePlugin = {
  name: 'traced-lambda-kit-file',
  setup(build) {
    const entries = build.initialOptions.entryPoints;
    const list = Array.isArray(entries) ? entries : Object.values(entries ?? {});
    if (list.length !== 1) return;
    const entry = typeof list[0] === 'string' ? list[0] : list[0].in;
    const kitFile = kitFileOf(entry);
    let used = false;
    build.onResolve({ filter: /lib/ }, ({ path, importer, resolveDir }) => {
      if (!importsTheKit(path, importer, resolveDir)) return undefined;
      used = true;
      return { path: `./${kitFile}`, external: true };
    });
    build.onEnd(async (result) => {
      if (!used || result.errors.length > 0) return;
      const names = await importedNames(build);
      const exported =
        names === undefined
          ? `export * from ${JSON.stringify(join(LIB, 'index.ts'))};`
          : `export { ${names.join(', ')} } from ${JSON.stringify(join(LIB, 'index.ts'))};`;
      const { outdir, outfile } = build.initialOptions;
      // The handler's options (minify, target, externals), without a source map; the exporter's file beside it.
      const options = handlerOptions(build.initialOptions);
      await build.esbuild.build({
        ...options,
        format: 'cjs',
        sourcemap: false,
        stdin: { contents: exported, resolveDir: LIB, sourcefile: kitFile, loader: 'ts' },
        outfile: join(outdir ?? dirname(outfile), kitFile),
        plugins: [noDynamicImports, ...exportFilePlugins],
      });
    });
  },
};

module.exports = [kitFilePlugin, ...exportFilePlugins];
module.exports.kitFileOf = kitFileOf;
