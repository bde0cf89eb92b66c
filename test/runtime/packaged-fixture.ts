/**
 * A test fixture packaged as `serverless package` packages the project's functions (serverless.yml's
 * custom.esbuild settings and plugins): `functions/<name>.js` with its source map, the kit beside it in
 * `<name>.tracing.js`, the exporter's file, and the after-response extension the template's NODE_OPTIONS loads.
 */
import { cp, mkdir } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { build, type Plugin } from 'esbuild';

const ROOT = resolve(__dirname, '..', '..');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const plugins = require('../../scripts/serverless/kit-file-plugin.cjs') as Plugin[];

/** Packages `entry` into `taskRoot`; the handler is `functions/<entry's name>.handler`. */
export async function packageFixture(entry: string, taskRoot: string): Promise<void> {
  await build({
    entryPoints: [entry],
    outfile: join(taskRoot, 'functions', `${basename(entry, extname(entry))}.js`),
    bundle: true,
    minify: true,
    sourcemap: true,
    sourcesContent: false,
    mainFields: ['module', 'main'],
    target: 'node24',
    platform: 'node',
    format: 'cjs',
    external: ['@aws-sdk/*'],
    logLevel: 'silent',
    plugins,
  });
  await mkdir(join(taskRoot, 'extension'), { recursive: true });
  await cp(join(ROOT, 'extension', 'after-response.mjs'), join(taskRoot, 'extension', 'after-response.mjs'));
}
