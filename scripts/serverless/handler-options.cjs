// The esbuild options a handler is bundled with (serverless.yml, custom.esbuild), for the files the esbuild plugins
// here bundle beside it (the kit's, the exporter's): the same minify, target, platform and externals, without what
// names the handler's own inputs, outputs, plugins and source map. Those files carry no source map: Node.js under
// --enable-source-maps scans every character of a file that names one when it loads it.
/** @param {import('esbuild').BuildOptions} options */
function handlerOptions(options) {
  const {
    entryPoints: _entry,
    stdin: _stdin,
    outdir: _outdir,
    outfile: _outfile,
    plugins: _plugins,
    metafile: _metafile,
    sourcemap: _map,
    sourcesContent: _content,
    sourceRoot: _root,
    ...shared
  } = options;
  return shared;
}

module.exports = { handlerOptions };
