/**
 * `npm run bench`: builds the bare handler, ours and the official contrib set-up side by side and measures,
 * in the same run, cold start, bundle size, per-invocation cost, the OTLP flush and memory. Prints one table
 * and writes it to the file `--out <file>` names (bench/.build/results.md by default: the committed
 * bench/results.md is replaced only when asked, `--out bench/results.md`). `--quick` runs a few iterations only
 * (the test suite's smoke run). `--runtime-cpu` measures only the CPU per invocation under the runtime client (bare,
 * ours with and without export, Powertools) in alternating rounds, and prints it.
 */
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { copyFile, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { build, type BuildOptions, type Plugin } from 'esbuild';
import { EXPORT_FILE } from '../lib/export/exporter-loader';
import { MANAGED_PER_WORKER, MANAGED_SLOW_MS, MANAGED_WORKERS, type ManagedMeasurements, type ManagedStrategy } from './managed-instances';
import { startOtlpReceiver } from '../scripts/offline/otlp-receiver';
import { runtimeClientProblem, startPackagedFunction } from '../test/runtime/lambda-runtime';
import { apiEvent } from './events';
import {
  DENSE_INTERVAL_MS,
  measureColdFirstResponse,
  measureRuntimeCpu,
  measureUnderRuntime,
  type RuntimeMeasurements,
  type RuntimeVariant,
  type RuntimeVariantName,
} from './under-runtime';

const ROOT = resolve(__dirname, '..');
const OUT = join(__dirname, '.build');
const quick = process.argv.includes('--quick');
const resultsFile = process.argv.includes('--out') ? resolve(process.argv[process.argv.indexOf('--out') + 1]) : join(__dirname, '.build', 'results.md');
const plan = quick
  ? {
      coldRounds: 2,
      apiBatches: 2,
      apiSize: 200,
      sqsBatches: 2,
      sqsSize: 50,
      memoryCount: 2_000,
      flushCount: 50,
      remoteCount: 10,
      runtimeCpuCount: 100,
      lossCount: 200,
      managedCount: 64,
    }
  : {
      coldRounds: 15,
      apiBatches: 15,
      apiSize: 4_000,
      sqsBatches: 15,
      sqsSize: 800,
      memoryCount: 100_000,
      flushCount: 1_000,
      remoteCount: 200,
      runtimeCpuCount: 3_000,
      lossCount: 10_000,
      managedCount: 1_000,
    };
/** The OTLP receiver "20 ms away": it answers each export after this long. */
const REMOTE_DELAY_MS = 20;

// eslint-disable-next-line @typescript-eslint/no-require-imports
const kitFilePlugins = require('../scripts/serverless/kit-file-plugin.cjs') as Plugin[] & { kitFileOf(entry: string): string };

/** The options `serverless package` bundles the functions with (serverless.yml, custom.esbuild). */
const BUNDLE: BuildOptions = {
  bundle: true,
  minify: true,
  platform: 'node',
  target: 'node24',
  format: 'cjs',
  mainFields: ['module', 'main'],
  external: ['@aws-sdk/*'],
  logLevel: 'error',
  metafile: true,
  // The kit in a file of its own beside each handler that uses it (<handler>.tracing.js, no source map), the
  // exporter's code in another (traced-lambda-export.js).
  plugins: kitFilePlugins,
};

/** The columns, in the order the table shows them. */
const COLUMNS = ['bare', 'ours', 'floor', 'stock', 'contrib', 'layer', 'powertools'] as const;
type HotVariantName = (typeof COLUMNS)[number];
/** Every column but the floor, which is the kit's own set-up (its cold start and memory are ours). */
type VariantName = Exclude<HotVariantName, 'floor'>;
type ColdVariantName = VariantName | 'oursMaps';
const NAMES: VariantName[] = ['bare', 'ours', 'stock', 'contrib', 'layer', 'powertools'];
const LABELS: Record<HotVariantName, string> = {
  bare: 'bare',
  ours: 'ours',
  floor: 'SDK floor (kit set-up)',
  stock: 'stock wrapper',
  contrib: 'contrib, minimal',
  layer: 'OTel layer, as it runs',
  powertools: 'Powertools Tracer',
};
/** The peers ours is compared with, what each adds over bare against what ours adds. */
const PEERS = ['stock', 'contrib', 'layer', 'powertools'] as const;

interface Variant {
  name: HotVariantName | ColdVariantName;
  dir: string;
  modules: { api: string; sqs: string };
  /** Loaded before the runtime loads the handler file: `--require` a CommonJS file, `--import` an ES module. */
  preload?: string;
  nodeFlags?: string[];
  environment?: Record<string, string>;
}

/** The trace header Lambda gives each invocation with active tracing on (what Powertools' X-Ray SDK reads). */
const LAMBDA_TRACE_ID = 'Root=1-6926b000-4bf92f3577b34da6a3ce929d;Parent=00f067aa0ba902b7;Sampled=1';
/** What the OpenTelemetry layer's otel-handler script sets when the function sets nothing. */
const LAYER_ENVIRONMENT = { OTEL_PROPAGATORS: 'tracecontext,baggage,xray' };

const variants: Record<HotVariantName | ColdVariantName, Variant> = {
  bare: { name: 'bare', dir: join(OUT, 'bare'), modules: { api: 'bare-http', sqs: 'bare-sqs' } },
  // The same spans with the fewest official SDK calls, on the kit's tracer set-up: what the kit adds on top.
  floor: { name: 'floor', dir: join(OUT, 'floor'), modules: { api: 'floor-http', sqs: 'floor-sqs' } },
  ours: { name: 'ours', dir: join(OUT, 'ours'), modules: { api: 'ours-http', sqs: 'ours-sqs' } },
  // The same spans from stock parts only: BatchSpanProcessor, the stock OTLP exporter, forceFlush per invocation.
  stock: { name: 'stock', dir: join(OUT, 'stock'), modules: { api: 'stock-http', sqs: 'stock-sqs' } },
  contrib: {
    name: 'contrib',
    dir: join(OUT, 'contrib'),
    modules: { api: 'bare-http', sqs: 'bare-sqs' },
    preload: join(OUT, 'contrib', 'contrib-init.js'),
  },
  layer: {
    name: 'layer',
    dir: join(OUT, 'layer'),
    modules: { api: 'bare-http', sqs: 'bare-sqs' },
    preload: join(OUT, 'layer', 'init.mjs'),
    environment: LAYER_ENVIRONMENT,
  },
  powertools: { name: 'powertools', dir: join(OUT, 'powertools'), modules: { api: 'powertools-http', sqs: 'powertools-sqs' } },
  // Ours as deployed: the bundle with its source map beside it, and Node.js applying it (serverless.yml).
  oursMaps: { name: 'oursMaps', dir: join(OUT, 'ours-maps'), modules: { api: 'ours-http', sqs: 'ours-sqs' }, nodeFlags: ['--enable-source-maps'] },
};
const preloadFlags = (variant: Variant) => (variant.preload ? [variant.preload.endsWith('.mjs') ? '--import' : '--require', variant.preload] : []);
/** serverless.yml's NODE_OPTIONS for every function. */
const DEPLOYED_NODE_OPTIONS = '--enable-source-maps --import ./extension/after-response.mjs';
/** The same handler files under the runtime interface client, with what serverless.yml gives the functions. */
const runtimeVariants: Record<RuntimeVariantName, RuntimeVariant> = {
  bare: { dir: variants.bare.dir, handler: 'bare-http.handler', environment: {} },
  // The same tracing work with nothing exported: what exporting adds is measured against it.
  // Ours as serverless.yml deploys it: the bundle with its source map, NODE_OPTIONS with --enable-source-maps.
  oursNoExport: {
    dir: variants.oursMaps.dir,
    handler: 'ours-http.handler',
    environment: { NODE_OPTIONS: '--enable-source-maps', OTEL_TRACES_EXPORTER: 'none' },
  },
  ours: { dir: variants.oursMaps.dir, handler: 'ours-http.handler', environment: { NODE_OPTIONS: DEPLOYED_NODE_OPTIONS } },
  oursInline: {
    dir: variants.oursMaps.dir,
    handler: 'ours-http.handler',
    environment: { NODE_OPTIONS: DEPLOYED_NODE_OPTIONS, TRACED_LAMBDA_EXPORT_AFTER_RESPONSE: 'false' },
  },
  stock: { dir: variants.stock.dir, handler: 'stock-http.handler', environment: {} },
  contrib: { dir: variants.contrib.dir, handler: 'bare-http.handler', environment: { NODE_OPTIONS: `--require ${variants.contrib.preload}` } },
  layer: { dir: variants.layer.dir, handler: 'bare-http.handler', environment: { NODE_OPTIONS: `--import ${variants.layer.preload}`, ...LAYER_ENVIRONMENT } },
  powertools: { dir: variants.powertools.dir, handler: 'powertools-http.handler', environment: {}, activeTracing: true },
};
/** What serverless.yml adds for the deployed functions: a source map per bundle, positions only. */
const SOURCE_MAPS: BuildOptions = { sourcemap: true, sourcesContent: false };

/**
 * Bytes a cold start reads of the bundle written to outfile: the handler's file and, beside it, its kit file when it
 * has one (source maps are not counted; the exporter's file is read at the first export).
 */
async function bundle(entry: string, outfile: string, options: BuildOptions = {}): Promise<number> {
  const result = await build({ ...BUNDLE, ...options, entryPoints: [entry], outfile });
  const own = Object.entries(result.metafile!.outputs).reduce((sum, [file, output]) => (file.endsWith('.map') ? sum : sum + output.bytes), 0);
  const kit = await stat(join(dirname(outfile), kitFilePlugins.kitFileOf(entry))).then(
    (file) => file.size,
    () => 0,
  );
  return own + kit;
}

async function buildAll() {
  await rm(OUT, { recursive: true, force: true });
  for (const variant of Object.values(variants)) await mkdir(variant.dir, { recursive: true });
  const fixtures = join(__dirname, 'fixtures');
  const sizes: Record<string, number> = {};
  sizes.bare = await bundle(join(fixtures, 'bare-http.ts'), join(variants.bare.dir, 'bare-http.js'));
  await bundle(join(fixtures, 'bare-sqs.ts'), join(variants.bare.dir, 'bare-sqs.js'));
  sizes.ours = await bundle(join(fixtures, 'ours-http.ts'), join(variants.ours.dir, 'ours-http.js'));
  sizes.oursSqs = await bundle(join(fixtures, 'ours-sqs.ts'), join(variants.ours.dir, 'ours-sqs.js'));
  // The after-response extension, where the package puts it (serverless.yml's package patterns).
  await mkdir(join(variants.ours.dir, 'extension'), { recursive: true });
  await copyFile(join(ROOT, 'extension', 'after-response.mjs'), join(variants.ours.dir, 'extension', 'after-response.mjs'));
  await bundle(join(fixtures, 'ours-http.ts'), join(variants.oursMaps.dir, 'ours-http.js'), SOURCE_MAPS);
  await bundle(join(fixtures, 'ours-sqs.ts'), join(variants.oursMaps.dir, 'ours-sqs.js'), SOURCE_MAPS);
  await bundle(join(fixtures, 'ours-slow.ts'), join(variants.oursMaps.dir, 'ours-slow.js'), SOURCE_MAPS);
  await mkdir(join(variants.oursMaps.dir, 'extension'), { recursive: true });
  await copyFile(join(ROOT, 'extension', 'after-response.mjs'), join(variants.oursMaps.dir, 'extension', 'after-response.mjs'));
  sizes.oursMap = (await stat(join(variants.oursMaps.dir, 'ours-http.js.map'))).size;
  await bundle(join(fixtures, 'floor-http.ts'), join(variants.floor.dir, 'floor-http.js'));
  await bundle(join(fixtures, 'floor-sqs.ts'), join(variants.floor.dir, 'floor-sqs.js'));
  sizes.stock = await bundle(join(fixtures, 'stock-http.ts'), join(variants.stock.dir, 'stock-http.js'));
  await bundle(join(fixtures, 'stock-sqs.ts'), join(variants.stock.dir, 'stock-sqs.js'));
  sizes.powertools = await bundle(join(fixtures, 'powertools-http.ts'), join(variants.powertools.dir, 'powertools-http.js'));
  await bundle(join(fixtures, 'powertools-sqs.ts'), join(variants.powertools.dir, 'powertools-sqs.js'));
  // Contrib and the layer: the same bare bundles, plus their init loaded before them. The instrumentation patches
  // the handler file's `handler` export, which an esbuild bundle defines as a getter it cannot redefine (bundled
  // handlers get no span at all), so the file the runtime loads re-exports the bundle as a plain property.
  for (const dir of [variants.contrib.dir, variants.layer.dir]) {
    for (const name of ['bare-http', 'bare-sqs']) {
      await copyFile(join(variants.bare.dir, `${name}.js`), join(dir, `${name}.bundle.js`));
      await writeFile(join(dir, `${name}.js`), `'use strict';\nexports.handler = require('./${name}.bundle.js').handler;\n`);
    }
  }
  sizes.contribInit = await bundle(join(fixtures, 'contrib-init.ts'), variants.contrib.preload!);
  sizes.contrib = sizes.contribInit + sizes.bare;
  // The layer ships its wrapper as one bundle, with the module hooks beside it (they cannot be bundled).
  sizes.layerInit = await bundle(join(fixtures, 'layer-wrapper.ts'), join(variants.layer.dir, 'wrapper.js'), {
    external: [...BUNDLE.external!, 'import-in-the-middle', 'require-in-the-middle'],
  });
  await copyFile(join(fixtures, 'layer-init.mjs'), variants.layer.preload!);
  sizes.layer = sizes.layerInit + sizes.bare;
  for (const fn of ['create-order', 'process-order', 'notify-customer']) {
    sizes[fn] = await bundle(join(ROOT, 'functions', `${fn}.ts`), join(OUT, 'functions', `${fn}.js`));
  }
  // The exporter's code, one file beside the functions, read at the first export (not counted in a function's bundle).
  sizes.exportFile = (await stat(join(OUT, 'functions', EXPORT_FILE))).size;
  await build({ ...BUNDLE, metafile: false, entryPoints: [join(__dirname, 'probe.ts')], outfile: join(OUT, 'probe.js') });
  return sizes;
}

async function startReceiver(delayMs = 0): Promise<Server> {
  const server = createServer((request, response) => {
    request.on('data', () => undefined);
    const answer = () => response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    // No timer at all for the loopback receiver: even setTimeout(0) would add a millisecond to every export.
    request.on('end', () => (delayMs > 0 ? setTimeout(answer, delayMs) : answer()));
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return server;
}

/** A stand-in for the X-Ray daemon Powertools sends its segments to: a UDP socket on loopback that counts them. */
async function startXrayDaemon(): Promise<{ address: string; segments(): number; close(): Promise<void> }> {
  const socket = createSocket('udp4');
  let segments = 0;
  socket.on('message', () => segments++);
  await new Promise<void>((done) => socket.bind(0, '127.0.0.1', done));
  return {
    address: `127.0.0.1:${socket.address().port}`,
    segments: () => segments,
    close: () => new Promise<void>((done) => socket.close(() => done())),
  };
}
let xrayDaemon = { address: '127.0.0.1:2000' };

async function probe(variant: Variant, args: string[], exporter: 'instant' | 'otlp', endpoint: string, nodeFlags: string[] = []) {
  const [mode, kind] = args;
  const module = mode === 'memory' || mode === 'flush' ? variant.modules.api : variant.modules[kind as 'api' | 'sqs'];
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    AWS_REGION: 'eu-west-1',
    AWS_LAMBDA_FUNCTION_NAME: 'bench',
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '256',
    LAMBDA_TASK_ROOT: variant.dir,
    _HANDLER: `${module}.handler`,
    OTEL_SERVICE_NAME: 'bench',
    OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
    BENCH_EXPORTER: exporter,
    // What Lambda sets for a nodejs24.x function with active tracing (Powertools' X-Ray SDK needs all three).
    AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs24.x',
    _X_AMZN_TRACE_ID: LAMBDA_TRACE_ID,
    AWS_XRAY_DAEMON_ADDRESS: xrayDaemon.address,
    ...variant.environment,
  };
  const flags = [...nodeFlags, ...(variant.nodeFlags ?? []), ...preloadFlags(variant)];
  const { stdout } = await promisify(execFile)(process.execPath, [...flags, join(OUT, 'probe.js'), mode, variant.dir, module, ...args.slice(1)], {
    env,
    timeout: 300_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  return JSON.parse(stdout.trim().split('\n').pop()!);
}

const median = (values: number[]) => percentile(values, 50);
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
const spread = (values: number[], digits: number) =>
  `${median(values).toFixed(digits)} (${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)})`;

async function main() {
  console.log(`Building the bundles (esbuild, as serverless package does)…`);
  const sizes = await buildAll();
  if (process.argv.includes('--runtime-cpu')) return runtimeCpuOnly();
  if (process.argv.includes('--cold')) return coldOnly(sizes);
  const receiver = await startReceiver();
  const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  const remoteReceiver = await startReceiver(REMOTE_DELAY_MS);
  const remoteEndpoint = `http://127.0.0.1:${(remoteReceiver.address() as AddressInfo).port}`;
  const daemon = await startXrayDaemon();
  xrayDaemon = daemon;
  try {
    console.log(`Cold starts: ${plan.coldRounds} rounds, variants in rotating order…`);
    const coldNames: ColdVariantName[] = [...NAMES, 'oursMaps'];
    const cold = Object.fromEntries(coldNames.map((name) => [name, { init: [] as number[], first: [] as number[] }])) as Measurements['cold'];
    for (let round = 0; round < plan.coldRounds; round++) {
      const order = [...coldNames.slice(round % coldNames.length), ...coldNames.slice(0, round % coldNames.length)];
      for (const name of order) {
        const { init, first } = await probe(variants[name], ['cold', 'api'], 'otlp', endpoint);
        cold[name].init.push(init);
        cold[name].first.push(first);
      }
    }

    console.log('Per-invocation cost (exporters that complete at once)…');
    const hot: Measurements['hot'] = { api: {} as never, sqs: {} as never };
    for (const name of COLUMNS) {
      hot.api[name] = (await probe(variants[name], ['hot', 'api', String(plan.apiBatches), String(plan.apiSize)], 'instant', endpoint)).perCallUs;
      hot.sqs[name] = (await probe(variants[name], ['hot', 'sqs', String(plan.sqsBatches), String(plan.sqsSize)], 'instant', endpoint)).perCallUs;
    }

    console.log("The timeout guard's cost: ours with it and with TRACED_LAMBDA_TIMEOUT_GUARD_MS=0, in alternating rounds…");
    const guardOff: Variant = { ...variants.ours, environment: { ...variants.ours.environment, TRACED_LAMBDA_TIMEOUT_GUARD_MS: '0' } };
    const guard: Measurements['guard'] = { on: { api: [], sqs: [] }, off: { api: [], sqs: [] } };
    for (let round = 0; round < 4; round++) {
      for (const [state, variant] of [
        ['off', guardOff],
        ['on', variants.ours],
      ] as const) {
        for (const kind of ['api', 'sqs'] as const) {
          const size = kind === 'api' ? plan.apiSize : plan.sqsSize;
          const batches = kind === 'api' ? plan.apiBatches : plan.sqsBatches;
          guard[state][kind].push(median((await probe(variant, ['hot', kind, String(batches), String(size)], 'instant', endpoint)).perCallUs));
        }
      }
    }

    console.log('Export to the loopback receiver…');
    const flush = Object.fromEntries(NAMES.map((name) => [name, [] as number[]])) as Measurements['flush'];
    const flushCpu = Object.fromEntries(NAMES.map((name) => [name, [] as number[]])) as Measurements['flushCpu'];
    for (let round = 0; round < 3; round++) {
      for (const name of NAMES) {
        const measured = await probe(variants[name], ['flush', String(plan.flushCount)], 'otlp', endpoint);
        flush[name].push(...measured.latenciesMs);
        flushCpu[name].push(measured.cpuUsPerCall);
      }
    }

    console.log(`Response time with a receiver ${REMOTE_DELAY_MS} ms away…`);
    const remote = {} as Measurements['remote'];
    for (const name of NAMES) {
      remote[name] = (await probe(variants[name], ['flush', String(plan.remoteCount)], 'otlp', remoteEndpoint)).latenciesMs;
    }

    console.log(`Memory over ${plan.memoryCount} invocations…`);
    const memory = {} as Measurements['memory'];
    for (const name of NAMES) {
      memory[name] = await probe(variants[name], ['memory', String(plan.memoryCount)], 'instant', endpoint, ['--expose-gc']);
    }

    console.log(
      `Under the runtime interface client: response and busy time (receiver ${REMOTE_DELAY_MS} ms away), CPU per invocation, ${plan.lossCount.toLocaleString('en')} invocations then a shutdown…`,
    );
    const runtime = await measureUnderRuntime(
      runtimeVariants,
      {
        responseCount: plan.remoteCount,
        cpuCount: plan.runtimeCpuCount,
        lossCount: plan.lossCount,
        coldRounds: plan.coldRounds,
        managedCount: plan.managedCount,
      },
      REMOTE_DELAY_MS,
      async (delayMs) => {
        const server = await startReceiver(delayMs);
        return {
          endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
          close: () => {
            server.closeAllConnections();
            return new Promise<void>((done) => server.close(() => done()));
          },
        };
      },
      daemon,
    );

    const report = renderReport({ sizes, cold, hot, guard, flush, flushCpu, remote, memory, runtime });
    console.log(`\n${report}`);
    await writeFile(resultsFile, report);
    console.log(`\nWritten to ${resultsFile}`);
  } finally {
    await new Promise((done) => receiver.close(done));
    remoteReceiver.closeAllConnections();
    await new Promise((done) => remoteReceiver.close(done));
    await daemon.close();
  }
}

const kb = (bytes: number) => (bytes / 1024).toFixed(1);
/** The value after `flag` on the command line, if given. */
const argument = (flag: string) => (process.argv.includes(flag) ? process.argv[process.argv.indexOf(flag) + 1] : undefined);

/**
 * `--cold [--rounds n] [--against dir]`: the cold-start rows alone, in rotating rounds: module init and first
 * invocation in a fresh process (bare, ours as deployed, ours without source maps), and process start to first
 * response under the runtime client. `--against` adds ours as deployed from another build folder (bench/.build of
 * another checkout), measured in the same rounds.
 */
async function coldOnly(sizes: Record<string, number>) {
  const rounds = Number(argument('--rounds') ?? (quick ? 2 : 20));
  const against = argument('--against');
  const receiver = await startReceiver();
  const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  const daemon = await startXrayDaemon();
  xrayDaemon = daemon;
  try {
    const inProcess: Record<string, Variant> = { bare: variants.bare, ours: variants.oursMaps, 'ours, no maps': variants.ours };
    if (against) inProcess['before'] = { ...variants.oursMaps, dir: join(resolve(against), 'ours-maps') };
    const names = Object.keys(inProcess);
    const cold = Object.fromEntries(names.map((name) => [name, { init: [] as number[], first: [] as number[] }]));
    console.log(`In a fresh process: ${rounds} rounds, rotating order…`);
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < names.length; k++) {
        const name = names[(round + k) % names.length];
        const { init, first } = await probe(inProcess[name], ['cold', 'api'], 'otlp', endpoint);
        cold[name].init.push(init);
        cold[name].first.push(first);
      }
    }
    for (const name of names) {
      const added = (key: 'init' | 'first') => (median(cold[name][key]) - median(cold.bare[key])).toFixed(1);
      console.log(
        `${name.padEnd(14)} module init ${spread(cold[name].init, 1)} (+${added('init')}) · first invocation ${spread(cold[name].first, 1)} (+${added('first')}) ms`,
      );
    }
    console.log(
      `bundle: ours ${kb(sizes.ours)} KiB (the handler's file and its kit), largest function ${kb(Math.max(sizes['create-order'], sizes['process-order'], sizes['notify-customer']))} KiB`,
    );

    const problem = runtimeClientProblem();
    if (problem) return console.log(`Under the runtime client: not measured (${problem}).`);
    const underRuntime: Record<string, RuntimeVariant> = {
      bare: runtimeVariants.bare,
      ours: runtimeVariants.ours,
      'ours, nothing exported': runtimeVariants.oursNoExport,
    };
    if (against) underRuntime['before'] = { ...runtimeVariants.ours, dir: join(resolve(against), 'ours-maps') };
    console.log(`Under the runtime client, process start to first response: ${rounds} rounds, rotating order…`);
    const otlp = await startOtlpReceiver(0);
    try {
      const times = await measureColdFirstResponse(
        Object.keys(underRuntime),
        rounds,
        (name) =>
          startPackagedFunction({
            name: `bench-${name.replace(/\W+/g, '-')}`,
            taskRoot: underRuntime[name].dir,
            handler: underRuntime[name].handler,
            nodePath: '',
            environment: { OTEL_SERVICE_NAME: 'bench', OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint, BENCH_EXPORTER: 'otlp', ...underRuntime[name].environment },
          }),
        async (fn) => {
          const answer = await fn.invoke(apiEvent());
          if (!answer.ok) throw new Error(`${fn.name} failed: ${JSON.stringify(answer)}\n${fn.logs()}`);
          return { answeredAt: performance.now() };
        },
      );
      for (const [name, values] of Object.entries(times)) {
        console.log(`${name.padEnd(24)} ${spread(values, 1)} ms (+${(median(values) - median(times.bare)).toFixed(1)})`);
      }
    } finally {
      await otlp.close();
    }
  } finally {
    await new Promise((done) => receiver.close(done));
    await daemon.close();
  }
}

/** `--runtime-cpu`: the CPU row under the runtime client alone, in alternating rounds, with each round's figures. */
async function runtimeCpuOnly() {
  const daemon = await startXrayDaemon();
  try {
    const names = ['bare', 'oursNoExport', 'ours', 'powertools'] as const;
    const rounds = quick ? 2 : 8;
    console.log(`CPU per invocation under the runtime client: ${rounds} alternating rounds of ${Math.round(plan.runtimeCpuCount / 3)} invocations…`);
    const cpuUs = await measureRuntimeCpu(
      Object.fromEntries(names.map((name) => [name, runtimeVariants[name]])),
      { rounds, count: Math.round(plan.runtimeCpuCount / 3) },
      daemon,
    );
    for (const name of names) {
      const added = cpuUs[name].map((us, round) => us - cpuUs.bare[round]);
      console.log(
        `${name.padEnd(13)} ${cpuUs[name].map((us) => us.toFixed(0).padStart(5)).join(' ')} · added over bare, median ${median(added).toFixed(0)} µs`,
      );
    }
    const ratios = cpuUs.ours.map((us, round) => (us - cpuUs.bare[round]) / (cpuUs.powertools[round] - cpuUs.bare[round]));
    console.log(`ours / Powertools (added over bare, per round): ${ratios.map((r) => r.toFixed(2)).join(' ')} · median ${median(ratios).toFixed(2)}×`);
  } finally {
    await daemon.close();
  }
}

interface Measurements {
  sizes: Record<string, number>;
  cold: Record<ColdVariantName, { init: number[]; first: number[] }>;
  hot: Record<'api' | 'sqs', Record<HotVariantName, number[]>>;
  /** Ours per invocation with the timeout guard on and off, one median per alternating round, µs. */
  guard: Record<'on' | 'off', Record<'api' | 'sqs', number[]>>;
  /** Invocation times with the export to the loopback receiver, ms. */
  flush: Record<VariantName, number[]>;
  /** CPU per invocation with the export to loopback included, µs, one figure per run. */
  flushCpu: Record<VariantName, number[]>;
  /** Invocation times with the receiver REMOTE_DELAY_MS away (what an export inside the invocation adds). */
  remote: Record<VariantName, number[]>;
  memory: Record<VariantName, { peakRssMb: number; heapGrowthMb: number }>;
  /** Under the runtime interface client, or why that could not run. */
  runtime: RuntimeMeasurements | string;
}

/** One figure: each column's cell, what each adds over bare (the number compared), its target and verdict. */
interface Row {
  label: string;
  cells: Partial<Record<HotVariantName, string>>;
  added: Partial<Record<HotVariantName, number>>;
  digits: number;
  target: string;
  verdict: string;
}

/** Enough digits that a miss never prints as "missed by 0.0". */
const verdict = (value: number, target: number) => (value <= target ? 'met' : `missed by ${(value - target).toFixed(value - target < 10 ? 2 : 1)}`);
const relativeVerdict = (ours: number, peer: number, share: number) =>
  peer > 0 && ours <= share * peer ? `met (${(ours / peer).toFixed(2)}×)` : `missed (${peer > 0 ? (ours / peer).toFixed(2) : '∞'}×)`;

function renderReport({ sizes, cold, hot, guard, flush, flushCpu, remote, memory, runtime }: Measurements): string {
  const rows: Row[] = [];
  const p50p99 = (values: number[], digits: number) => `${percentile(values, 50).toFixed(digits)} / ${percentile(values, 99).toFixed(digits)}`;
  const signed = (value: number, digits: number) => `${value >= 0 ? '+' : ''}${value.toFixed(digits)}`;

  /** A row of timed samples: median (min–max) per column, and what each adds over bare at the statistic given. */
  const measured = (
    label: string,
    samples: Partial<Record<HotVariantName, number[]>>,
    digits: number,
    target: (added: Partial<Record<HotVariantName, number>>) => [string, string],
    statistic: 'median' | 'p50p99' = 'median',
  ) => {
    const at = (values: number[]) => (statistic === 'median' ? median(values) : percentile(values, 50));
    const base = at(samples.bare!);
    const cells: Row['cells'] = {};
    const added: Row['added'] = {};
    for (const name of COLUMNS) {
      const values = samples[name];
      if (!values) continue;
      const shown = statistic === 'median' ? spread(values, digits) : p50p99(values, digits);
      added[name] = at(values) - base;
      cells[name] = name === 'bare' ? shown : `${shown} ${signed(added[name]!, digits)}`;
    }
    const [targetText, verdictText] = target(added);
    rows.push({ label, cells, added, digits, target: targetText, verdict: verdictText });
  };
  const tenthOfLayer = (added: Row['added']): [string, string] => ["added ≤ 0.1× the layer's", relativeVerdict(added.ours!, added.layer!, 0.1)];
  // Ours as deployed: every function ships its source map and runs with --enable-source-maps (serverless.yml), which
  // costs Node.js a scan of the bundle and a read of the map at load. The flag costs a bundle with no map nothing
  // (measured within ±1 ms), so the other columns run without it.
  const coldSamples = (key: 'init' | 'first') => ({ ...Object.fromEntries(NAMES.map((name) => [name, cold[name][key]])), ours: cold.oursMaps[key] });
  measured('cold: module init, ms since process start (ours as deployed, source maps on)', coldSamples('init'), 1, tenthOfLayer);
  measured('cold: first invocation incl. its export, ms since process start (ours as deployed)', coldSamples('first'), 1, tenthOfLayer);
  // The same bundle without its map, and what the map costs.
  for (const [label, key] of [
    ['module init', 'init'],
    ['first invocation', 'first'],
  ] as const) {
    const [withMaps, without, bare] = [median(cold.oursMaps[key]), median(cold.ours[key]), median(cold.bare[key])];
    rows.push({
      label: `cold: ${label} without source maps (in brackets what the ${kb(sizes.oursMap)} KiB map adds), ms`,
      cells: { ours: `${spread(cold.ours[key], 1)} ${signed(without - bare, 1)} (maps: ${signed(withMaps - without, 1)})` },
      added: { ours: without - bare },
      digits: 1,
      target: '',
      verdict: '',
    });
  }

  const largest = Math.max(sizes['create-order'], sizes['process-order'], sizes['notify-customer']);
  const bundles: Partial<Record<HotVariantName, number>> = {
    bare: sizes.bare,
    ours: largest,
    stock: sizes.stock,
    contrib: sizes.contrib,
    layer: sizes.layer,
    powertools: sizes.powertools,
  };
  rows.push({
    label: 'bundle, minified KiB (AWS SDK external; ours: the largest function, its own file and its kit file)',
    cells: {
      bare: kb(sizes.bare),
      ours: `${kb(largest)} (functions: ${kb(sizes['create-order'])} / ${kb(sizes['process-order'])} / ${kb(sizes['notify-customer'])}; bench handler ${kb(sizes.ours)}; beside them ${EXPORT_FILE} ${kb(sizes.exportFile)}, read at the first export)`,
      stock: kb(sizes.stock),
      contrib: `${kb(sizes.contrib)} (init ${kb(sizes.contribInit)})`,
      layer: `${kb(sizes.layer)} (wrapper ${kb(sizes.layerInit)}, module hooks not counted)`,
      powertools: kb(sizes.powertools),
    },
    added: Object.fromEntries(Object.entries(bundles).map(([name, bytes]) => [name, (bytes - sizes.bare) / 1024])),
    digits: 1,
    target: `≤ 60 (largest function: ${largest.toLocaleString('en')} bytes)`,
    verdict: verdict(largest / 1024, 60),
  });

  measured('per invocation, API Gateway, µs', hot.api, 2, () => ['', '']);
  measured('per invocation, SQS ×10 records, µs', hot.sqs, 2, (added) => ['added ≤ 24', verdict(added.ours!, 24)]);
  measured(
    'invocation with its export to a loopback receiver, ms p50 / p99',
    flush,
    3,
    (added) => ['p50 ≤ 1', verdict(percentile(flush.ours, 50), 1) + ` (added ${added.ours!.toFixed(3)})`],
    'p50p99',
  );
  measured('CPU per invocation, export to loopback included, µs', flushCpu, 0, (added) => [
    "added ≤ 0.6× the layer's",
    relativeVerdict(added.ours!, added.layer!, 0.6),
  ]);
  measured(
    `response time, receiver ${REMOTE_DELAY_MS} ms away, export in the invocation, ms p50 / p99`,
    remote,
    2,
    () => ['(after the response: next table)', ''],
    'p50p99',
  );
  rows.push({
    label: `memory over ${plan.memoryCount.toLocaleString('en')} invocations: peak RSS, heap growth after GC (10% → end), MB`,
    cells: Object.fromEntries(NAMES.map((name) => [name, `${memory[name].peakRssMb.toFixed(1)}, heap ${signed(memory[name].heapGrowthMb, 2)}`])),
    added: Object.fromEntries(NAMES.map((name) => [name, memory[name].peakRssMb - memory.bare.peakRssMb])),
    digits: 1,
    target: 'heap growth ≤ 0.5',
    verdict: memory.ours.heapGrowthMb <= 0.5 ? 'met' : 'missed',
  });

  {
    // Paired: each round's "on" against the "off" run just before it; the spread of "off" across rounds is the noise.
    const added = (kind: 'api' | 'sqs') => median(guard.on[kind].map((on, round) => on - guard.off[kind][round]));
    const noise = (kind: 'api' | 'sqs') => Math.max(...guard.off[kind]) - Math.min(...guard.off[kind]);
    rows.push({
      label: 'timeout guard, added per invocation (on − off, paired rounds), µs',
      cells: {
        ours: `API ${signed(added('api'), 2)} (off's own spread ${noise('api').toFixed(2)}), SQS ×10 ${signed(added('sqs'), 2)} (spread ${noise('sqs').toFixed(2)})`,
      },
      added: { ours: added('api') },
      digits: 2,
      target: "within the off runs' own spread",
      verdict: Math.abs(added('api')) <= noise('api') && Math.abs(added('sqs')) <= noise('sqs') ? 'met' : 'missed',
    });
  }
  const header = ['figure', ...COLUMNS.map((name) => LABELS[name]), 'target', 'ours'];
  const table = [header, header.map(() => '---'), ...rows.map((row) => [row.label, ...COLUMNS.map((name) => row.cells[name] ?? '—'), row.target, row.verdict])];
  // What each peer adds over bare, divided by what ours adds: above 1, ours costs less.
  const ratioHeader = ['figure', 'ours added', ...PEERS.map((name) => `${LABELS[name]}: added (÷ ours)`), 'SDK floor added'];
  const ratioRows = rows
    .filter((row) => row.added.ours !== undefined && PEERS.some((name) => row.added[name] !== undefined))
    .map((row) => [
      row.label,
      row.added.ours!.toFixed(row.digits),
      ...PEERS.map((name) => {
        const added = row.added[name];
        if (added === undefined) return '—';
        return `${added.toFixed(row.digits)} (${row.added.ours! > 0 ? `${(added / row.added.ours!).toFixed(1)}×` : '∞'})`;
      }),
      row.added.floor === undefined ? '—' : row.added.floor.toFixed(row.digits),
    ]);
  const markdown = (lines: string[][]) => lines.map((line) => `| ${line.join(' | ')} |`).join('\n');
  return [
    `# Benchmark: the cost of tracing on Lambda`,
    '',
    `Run ${new Date().toISOString()} · Node.js ${process.version} · ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}${quick ? ' · QUICK RUN (smoke only, not figures)' : ''}`,
    '',
    'Medians with min–max over repeated runs, then (+x) what the column adds over the bare handler in the same run.',
    "- **bare**: the same handler with no tracing. **ours**: the project's wrappers as the functions use them.",
    "- **SDK floor (kit set-up)**: the same spans as ours with the fewest official API calls, on the kit's own tracer set-up",
    "  (same provider, processor and propagators): what the kit's wrappers add on top of it. Not a stock set-up.",
    "- **stock wrapper**: the same spans from stock parts only: the SDK's TracerProvider, BatchSpanProcessor and the stock",
    '  OTLP/HTTP exporter, the W3C propagator, and forceFlush before each handler returns.',
    "- **contrib, minimal**: the SDK's tracer provider + `instrumentation-aws-lambda` + `instrumentation-aws-sdk` + W3C",
    '  propagator, loaded with `--require` before the runtime loads the handler file.',
    "- **OTel layer, as it runs**: the OpenTelemetry Lambda layer's own initialisation, loaded with `--import` as its",
    '  otel-handler does: its default instrumentations (aws-lambda, aws-sdk, dns, http, net), the Lambda, env and process',
    '  resource detectors, tracer, meter and logger providers with OTLP/HTTP exporters (all flushed per invocation),',
    "  the W3C, baggage and X-Ray propagators, and import-in-the-middle's loader hook (bench/fixtures/layer-wrapper.ts).",
    "- **Powertools Tracer**: AWS Lambda Powertools' Tracer as its documentation wraps a handler: one X-Ray subsegment",
    '  per invocation, sent over UDP to the X-Ray daemon (a socket on loopback here) without waiting for it.',
    `- Cold start: a fresh \`node\` process per run (${plan.coldRounds} rounds, rotating order), times since process start;`,
    '  the first invocation includes its export to an OTLP/HTTP receiver on loopback (Powertools: its UDP send). Each',
    '  process first does what the Lambda Node.js runtime does before it loads a handler file (its runtime API client',
    '  requires `node:http` and makes a keep-alive Agent), and invokes after one event-loop turn.',
    '- Bundles: esbuild, minified, `@aws-sdk/*` external (the Lambda Node.js runtime provides it), ES module builds',
    '  preferred: the options `serverless package` uses. The package step ships one file per function, no `node_modules`.',
    '- Per invocation: events carry `traceparent`; OTLP exporters are swapped for one that completes at once (Powertools',
    '  still sends its UDP datagram), so the figure is the tracing work itself, end-of-invocation flush included; one',
    '  event-loop turn after each call, as the runtime takes before its next event. For SQS, ours, the floor and the stock',
    "  wrapper make one CONSUMER span per record, each continuing its own producer's trace (10 spans); contrib and the",
    '  layer make one span for the invocation, linked at best, Powertools one subsegment: a tenth of the spans.',
    '- Export rows: the real exporters, in-process (no extension): every variant exports inside the invocation here,',
    `  ours too (its fallback mode). Response time: the OTLP receiver answers each export after ${REMOTE_DELAY_MS} ms.`,
    '- "with source maps on": ours as deployed, its bundle built with a source map beside it (positions only) and run',
    '  with `--enable-source-maps`; "maps" is what that adds over ours without them, in the same run.',
    '',
    markdown(table),
    '',
    '### What each adds over bare, against ours',
    '',
    "Each peer's added cost, and in brackets that divided by what ours adds: above 1×, ours costs less.",
    '',
    markdown([ratioHeader, ratioHeader.map(() => '---'), ...ratioRows]),
    '',
    ...renderRuntimeReport(runtime),
  ].join('\n');
}

function renderRuntimeReport(runtime: RuntimeMeasurements | string): string[] {
  const title = "## Under AWS's runtime interface client (export after the response)";
  if (typeof runtime === 'string') return [title, '', `Not measured: ${runtime}.`, ''];
  const names: RuntimeVariantName[] = ['bare', 'oursNoExport', 'ours', 'oursInline', 'stock', 'contrib', 'layer', 'powertools'];
  const labels: Record<RuntimeVariantName, string> = {
    bare: 'bare',
    oursNoExport: 'ours, nothing exported',
    ours: 'ours (after response)',
    oursInline: 'ours (in invocation)',
    stock: LABELS.stock,
    contrib: LABELS.contrib,
    layer: LABELS.layer,
    powertools: LABELS.powertools,
  };
  const p = (values: number[], q: number) => percentile(values, q);
  const pair = (values: number[]) => `${p(values, 50).toFixed(2)} / ${p(values, 99).toFixed(2)}`;
  const lost = (mode: { expected: number; received: number }) => `${mode.expected - mode.received} of ${mode.expected.toLocaleString('en')}`;
  const over = (values: Record<RuntimeVariantName, number[]>, name: RuntimeVariantName, base: RuntimeVariantName = 'bare') =>
    p(values[name], 50) - p(values[base], 50);
  const list = (values: Record<RuntimeVariantName, number[]>, digits: number, skip: RuntimeVariantName[] = ['bare', 'oursNoExport']) =>
    names
      .filter((name) => !skip.includes(name))
      .map((name) => `${name === 'ours' ? 'ours' : labels[name]} ${over(values, name).toFixed(digits)}`)
      .join(' · ');
  // What the export adds to the response: ours as deployed against the same tracing with nothing exported.
  const exportAdded = over(runtime.response, 'ours', 'oursNoExport');
  const cpuAdded = (name: RuntimeVariantName) => runtime.cpuUs[name] - runtime.cpuUs.bare;
  const coldMedians = Object.fromEntries(names.map((name) => [name, [median(runtime.coldFirstResponse[name])]])) as Record<RuntimeVariantName, number[]>;
  const rows: string[][] = [
    [
      'cold: process start to first response (runtime init, preload, handler load, first invocation), ms',
      ...names.map((name) => spread(runtime.coldFirstResponse[name], 1)),
      `${list(coldMedians, 1)} (ours over the same tracing exporting nothing, i.e. the extension's registration and the exporter's set-up: ${(median(runtime.coldFirstResponse.ours) - median(runtime.coldFirstResponse.oursNoExport)).toFixed(1)})`,
      "ours added ≤ 0.1× the layer's",
      relativeVerdict(over(coldMedians, 'ours'), over(coldMedians, 'layer'), 0.1),
    ],
    [
      `response time, receiver ${REMOTE_DELAY_MS} ms away, ms p50 / p99`,
      ...names.map((name) => pair(runtime.response[name])),
      `the export: ours ${exportAdded.toFixed(2)} (in invocation ${over(runtime.response, 'oursInline', 'oursNoExport').toFixed(2)}) · all tracing: ${list(runtime.response, 2, ['bare', 'oursNoExport', 'oursInline'])}`,
      'the export adds p50 ≤ 0.1',
      verdict(exportAdded, 0.1),
    ],
    ['sandbox busy until runtime and extensions wait on /next, ms p50 / p99', ...names.map((name) => pair(runtime.busy[name])), list(runtime.busy, 2), '', ''],
    [
      `dense traffic (an invocation every ${DENSE_INTERVAL_MS} ms, receiver ${REMOTE_DELAY_MS} ms away): sandbox busy past the response, ms p50 / p99`,
      ...names.map((name) => (name === 'ours' ? pair(runtime.dense.adaptive.heldMs) : '—')),
      `one export per invocation (TRACED_LAMBDA_EXPORT_STRATEGY=invocation): ${pair(runtime.dense.invocation.heldMs)} · exports per invocation ${runtime.dense.adaptive.exportsPerInvocation.toFixed(3)} (per invocation ${runtime.dense.invocation.exportsPerInvocation.toFixed(2)}) · CPU per invocation ${runtime.dense.adaptive.cpuUs.toFixed(0)} µs (per invocation ${runtime.dense.invocation.cpuUs.toFixed(0)})`,
      'p50 ≤ 2',
      verdict(p(runtime.dense.adaptive.heldMs, 50), 2),
    ],
    [
      'CPU per invocation, export to loopback included, µs',
      ...names.map((name) => runtime.cpuUs[name].toFixed(0)),
      names
        .filter((name) => name !== 'bare')
        .map((name) => `${name === 'ours' ? 'ours' : labels[name]} ${cpuAdded(name).toFixed(0)}`)
        .join(' · '),
      "ours added below Powertools' (UDP to the X-Ray daemon)",
      cpuAdded('ours') < cpuAdded('powertools') ? 'met' : 'missed',
    ],
    ['spans received per invocation (Powertools: segments at the daemon)', ...names.map((name) => runtime.spansPerInvocation[name].toFixed(2)), '', '', ''],
    [
      `spans lost over ${runtime.loss.adaptive.invocations.toLocaleString('en')} invocations and a shutdown (SIGTERM)`,
      ...names.map((name) => (name === 'ours' ? lost(runtime.loss.adaptive) : '—')),
      `batched ${lost(runtime.loss.batched)} · one export per invocation ${lost(runtime.loss.invocation)} · in invocation ${lost(runtime.loss.inline)}`,
      'none lost, in every mode',
      Object.values(runtime.loss).every((mode) => mode.received === mode.expected && mode.expected > 0) ? 'met' : 'missed',
    ],
    managedInstancesRow(runtime.managed, names),
    [
      `timed out (${runtime.timeoutGuard.timeoutMs} ms timeout, killed at the deadline): guard firing → its export answered, receiver ${REMOTE_DELAY_MS} ms away, ms p50 / max`,
      ...names.map((name) =>
        name === 'ours'
          ? `cold ${percentile(runtime.timeoutGuard.coldMs, 50).toFixed(1)} / ${Math.max(...runtime.timeoutGuard.coldMs).toFixed(1)}, warm ${percentile(runtime.timeoutGuard.warmMs, 50).toFixed(1)} / ${Math.max(...runtime.timeoutGuard.warmMs).toFixed(1)}`
          : '—',
      ),
      `${runtime.timeoutGuard.lost} of ${runtime.timeoutGuard.coldMs.length + runtime.timeoutGuard.warmMs.length + runtime.timeoutGuard.lost} timed-out invocations' spans not answered before the deadline`,
      `within the ${runtime.timeoutGuard.marginMs} ms margin, none lost`,
      runtime.timeoutGuard.lost === 0 && Math.max(...runtime.timeoutGuard.coldMs, ...runtime.timeoutGuard.warmMs) < runtime.timeoutGuard.marginMs
        ? 'met'
        : 'missed',
    ],
  ];
  const header = ['figure', ...names.map((name) => labels[name]), 'added (p50)', 'target', 'ours'];
  return [
    title,
    '',
    "Each variant's handler file loaded by aws-lambda-ric (the runtime's own client) against a local Runtime API and",
    'Extensions API that hands out the next invocation only when the runtime and every registered extension ask for it',
    '(test/runtime/lambda-runtime.ts). Every variant runs at once and is invoked in turn, each invocation followed by',
    '25 ms of idle time (sparse traffic: no variant is warmer than another). Response time: from handing out the event',
    'to the response at the Runtime API; "the export" compares ours as deployed with the same tracing exporting nothing.',
    "Busy: until everyone waits on /next (Lambda may freeze the sandbox then). CPU: the function process's user + system",
    'time (/proc) over the invocations, exports included. **ours (after response)**: as deployed (the bundle with its',
    'source map, NODE_OPTIONS `--enable-source-maps --import ./extension/after-response.mjs`); **ours (in invocation)**:',
    'the same with TRACED_LAMBDA_EXPORT_AFTER_RESPONSE=false; **ours, nothing exported**: the same bundle and map.',
    '**contrib, minimal** makes no span here: the runtime client imports the handler file with `import()`, and the',
    'aws-lambda instrumentation set up with `--require` patches `require` only; the layer registers import-in-the-middle',
    "for that. Powertools runs with active tracing (Lambda's trace header sampled), as it needs.",
    '',
    [header, header.map(() => '---'), ...rows].map((row) => `| ${row.join(' | ')} |`).join('\n'),
    '',
  ];
}

/** Managed Instances: the response p50 at a receiver answering at once and at a slow one, spans mismatched and lost. */
function managedInstancesRow(managed: ManagedMeasurements, names: RuntimeVariantName[]): string[] {
  const runs = (strategy: ManagedStrategy) => [managed[strategy].fast, managed[strategy].slow];
  const p50s = (strategy: ManagedStrategy) =>
    runs(strategy)
      .map((run) => percentile(run.responseMs, 50).toFixed(1))
      .join(' / ');
  const wrong = (strategy: ManagedStrategy) => {
    const [mismatched, lost, expected] = runs(strategy).reduce((sum, run) => [sum[0] + run.mismatched, sum[1] + run.lost, sum[2] + run.expected], [0, 0, 0]);
    return { mismatched, lost, expected, text: `${mismatched} mismatched, ${lost} of ${expected.toLocaleString('en')} lost` };
  };
  const ours = wrong('background');
  const invocations = managed.background.fast.responseMs.length;
  const independent = percentile(managed.background.slow.responseMs, 50) - percentile(managed.background.fast.responseMs, 50) <= MANAGED_SLOW_MS / 20;
  return [
    `Lambda Managed Instances (${MANAGED_WORKERS} workers × ${MANAGED_PER_WORKER} in flight, ${invocations.toLocaleString('en')} interleaved invocations, each on its own trace, then SIGTERM): response ms p50, receiver answering at once / ${MANAGED_SLOW_MS} ms away`,
    ...names.map((name) => (name === 'ours' ? p50s('background') : '—')),
    `ours (in the background): ${ours.text} · exporting inside each invocation (TRACED_LAMBDA_EXPORT_STRATEGY=invocation): p50 ${p50s('invocation')}, ${wrong('invocation').text}`,
    `p50 at ${MANAGED_SLOW_MS} ms within ${MANAGED_SLOW_MS / 20} ms of p50 at once; 0 mismatched; 0 lost`,
    independent && ours.mismatched === 0 && ours.lost === 0 && ours.expected > 0 ? 'met' : 'missed',
  ];
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
