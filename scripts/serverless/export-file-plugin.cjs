// The esbuild plugin (serverless.yml, custom.esbuild.plugins) that keeps the OTLP exporter's code out of each
// handler's bundle: lib/export/otlp-export.ts (the exporter, its size limits, SigV4 signing and @smithy's signer, the
// secret header reader, the OTLP serializer) is bundled once more as traced-lambda-export.js beside the handlers,
// and lib/export/otlp-export-file.ts becomes a require of that file, made at the first export. A cold start then reads,
// compiles and maps only what every invocation runs. serverless-esbuild zips every file of its build folder, so each
// function's zip carries the file.
const { dirname, join } = require('node:path');
const { handlerOptions } = require('./handler-options.cjs');

/** lib/export/exporter-loader.ts's EXPORT_FILE: the name its log line gives when the file is missing. */
const EXPORT_FILE = 'traced-lambda-export.js';
const LIB = join(__dirname, '..', '..', 'lib', 'export');
/** The build under way for each output folder: functions bundled into one folder at once share it. */
const building = new Map();

/** @type {import('esbuild').Plugin} */
const exportFilePlugin = {
  name: 'traced-lambda-export-file',
  setup(build) {
    const escape = (path) => path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    // A bundle that does not use the kit's exporter gets no file.
    let swapped = false;
    build.onLoad({ filter: new RegExp(`^${escape(join(LIB, 'otlp-export-file.ts'))}$`) }, () => {
      swapped = true;
      return { contents: `exports.loadOtlpExport = () => require('./${EXPORT_FILE}');\n`, loader: 'js' };
    });
    // Left as written, so that Node.js resolves it beside the bundle that requires it.
    build.onResolve({ filter: new RegExp(`^\\./${escape(EXPORT_FILE)}$`) }, ({ path }) => ({ path, external: true }));
    build.onEnd(async (result) => {
      if (!swapped || result.errors.length > 0) return;
      const { outdir, outfile } = build.initialOptions;
      const target = join(outdir ?? dirname(outfile), EXPORT_FILE);
      if (!building.has(target)) {
        // The handlers' own options (minify, target, externals), with this entry, no plugins and no source map.
        const options = handlerOptions(build.initialOptions);
        const done = build.esbuild.build({ ...options, entryPoints: [join(LIB, 'otlp-export.ts')], outfile: target });
        building.set(
          target,
          done.finally(() => building.delete(target)),
        );
      }
      await building.get(target);
    });
  },
};

module.exports = [exportFilePlugin];
