/**
 * `npm run bench`: builds the bare handler, ours and the official contrib set-up side by side and measures,
 * in the same run, cold start, bundle size, per-invocation cost, the OTLP flush and memory. Prints one table
 * and writes it to the file `--out <file>` names (bench/.build/results.md by default: the committed
 * bench/results.md is replaced only when asked, `--out bench/results.md`). `--quick` runs a few iterations only
 * (the test suite's smoke run).
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { build, type BuildOptions } from 'esbuild';
import { measureUnderRuntime, type RuntimeMeasurements, type RuntimeVariant, type RuntimeVariantName } from './under-runtime';

const ROOT = resolve(__dirname, '..');
const OUT = join(__dirname, '.build');
const quick = process.argv.includes('--quick');
const resultsFile = process.argv.includes('--out') ? resolve(process.argv[process.argv.indexOf('--out') + 1]) : join(__dirname, '.build', 'results.md');
const plan = quick
  ? { coldRounds: 2, apiBatches: 2, apiSize: 200, sqsBatches: 2, sqsSize: 50, memoryCount: 2_000, flushCount: 50, remoteCount: 10, runtimeCpuCount: 100, lossCount: 200 }
  : { coldRounds: 15, apiBatches: 15, apiSize: 4_000, sqsBatches: 15, sqsSize: 800, memoryCount: 100_000, flushCount: 1_000, remoteCount: 200, runtimeCpuCount: 3_000, lossCount: 10_000 };
/** The OTLP receiver "20 ms away": it answers each export after this long. */
const REMOTE_DELAY_MS = 20;

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
};

type VariantName = 'bare' | 'ours' | 'contrib';
type HotVariantName = VariantName | 'floor';
type ColdVariantName = VariantName | 'oursMaps';
interface Variant {
  name: HotVariantName | ColdVariantName;
  dir: string;
  modules: { api: string; sqs: string };
  preload?: string;
  nodeFlags?: string[];
}

const variants: Record<HotVariantName | ColdVariantName, Variant> = {
  bare: { name: 'bare', dir: join(OUT, 'bare'), modules: { api: 'bare-http', sqs: 'bare-sqs' } },
  // The same spans with the fewest official SDK calls: the floor per-invocation figures are measured against.
  floor: { name: 'floor', dir: join(OUT, 'floor'), modules: { api: 'floor-http', sqs: 'floor-sqs' } },
  ours: { name: 'ours', dir: join(OUT, 'ours'), modules: { api: 'ours-http', sqs: 'ours-sqs' } },
  contrib: {
    name: 'contrib',
    dir: join(OUT, 'contrib'),
    modules: { api: 'bare-http', sqs: 'bare-sqs' },
    preload: join(OUT, 'contrib', 'contrib-init.js'),
  },
  // Ours as deployed: the bundle with its source map beside it, and Node.js applying it (serverless.yml).
  oursMaps: { name: 'oursMaps', dir: join(OUT, 'ours-maps'), modules: { api: 'ours-http', sqs: 'ours-sqs' }, nodeFlags: ['--enable-source-maps'] },
};
/** The same handler files under the runtime interface client, with what serverless.yml gives the functions. */
const runtimeVariants: Record<RuntimeVariantName, RuntimeVariant> = {
  bare: { dir: variants.bare.dir, handler: 'bare-http.handler', environment: {} },
  // The same tracing work with nothing exported: what exporting adds is measured against it.
  oursNoExport: { dir: variants.ours.dir, handler: 'ours-http.handler', environment: { OTEL_TRACES_EXPORTER: 'none' } },
  ours: { dir: variants.ours.dir, handler: 'ours-http.handler', environment: { NODE_OPTIONS: '--import ./extension/after-response.mjs' } },
  oursInline: {
    dir: variants.ours.dir,
    handler: 'ours-http.handler',
    environment: { NODE_OPTIONS: '--import ./extension/after-response.mjs', TRACED_LAMBDA_EXPORT_AFTER_RESPONSE: 'false' },
  },
  contrib: { dir: variants.contrib.dir, handler: 'bare-http.handler', environment: { NODE_OPTIONS: `--require ${variants.contrib.preload}` } },
};
/** What serverless.yml adds for the deployed functions: a source map per bundle, positions only. */
const SOURCE_MAPS: BuildOptions = { sourcemap: true, sourcesContent: false };

/** Bytes of the bundle written to outfile (its source map, when there is one, is not counted). */
async function bundle(entry: string, outfile: string, options: BuildOptions = {}): Promise<number> {
  const result = await build({ ...BUNDLE, ...options, entryPoints: [entry], outfile });
  return Object.entries(result.metafile!.outputs).reduce((sum, [file, output]) => (file.endsWith('.map') ? sum : sum + output.bytes), 0);
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
  sizes.oursMap = (await stat(join(variants.oursMaps.dir, 'ours-http.js.map'))).size;
  await bundle(join(fixtures, 'floor-http.ts'), join(variants.floor.dir, 'floor-http.js'));
  await bundle(join(fixtures, 'floor-sqs.ts'), join(variants.floor.dir, 'floor-sqs.js'));
  // Contrib: the same bare bundles, plus the layer's init loaded before them. The instrumentation patches the
  // handler file's `handler` export, which an esbuild bundle defines as a getter it cannot redefine (bundled
  // handlers get no span at all), so the file the runtime loads re-exports the bundle as a plain property.
  for (const name of ['bare-http', 'bare-sqs']) {
    await copyFile(join(variants.bare.dir, `${name}.js`), join(variants.contrib.dir, `${name}.bundle.js`));
    await writeFile(join(variants.contrib.dir, `${name}.js`), `'use strict';\nexports.handler = require('./${name}.bundle.js').handler;\n`);
  }
  sizes.contribInit = await bundle(join(fixtures, 'contrib-init.ts'), variants.contrib.preload!);
  sizes.contrib = sizes.contribInit + sizes.bare;
  for (const fn of ['create-order', 'process-order', 'notify-customer']) {
    sizes[fn] = await bundle(join(ROOT, 'functions', `${fn}.ts`), join(OUT, 'functions', `${fn}.js`));
  }
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
  };
  const flags = [...nodeFlags, ...(variant.nodeFlags ?? []), ...(variant.preload ? ['--require', variant.preload] : [])];
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
  const receiver = await startReceiver();
  const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  const remoteReceiver = await startReceiver(REMOTE_DELAY_MS);
  const remoteEndpoint = `http://127.0.0.1:${(remoteReceiver.address() as AddressInfo).port}`;
  const names: VariantName[] = ['bare', 'ours', 'contrib'];
  try {
    console.log(`Cold starts: ${plan.coldRounds} rounds, variants in rotating order…`);
    const coldNames: ColdVariantName[] = [...names, 'oursMaps'];
    const cold = Object.fromEntries(coldNames.map((name) => [name, { init: [] as number[], first: [] as number[] }])) as Measurements['cold'];
    for (let round = 0; round < plan.coldRounds; round++) {
      const order = [...coldNames.slice(round % coldNames.length), ...coldNames.slice(0, round % coldNames.length)];
      for (const name of order) {
        const { init, first } = await probe(variants[name], ['cold', 'api'], 'otlp', endpoint);
        cold[name].init.push(init);
        cold[name].first.push(first);
      }
    }

    console.log('Per-invocation cost (instant exporter)…');
    const hot: Record<string, Record<HotVariantName, number[]>> = { api: {} as never, sqs: {} as never };
    for (const name of [...names, 'floor'] as const) {
      hot.api[name] = (await probe(variants[name], ['hot', 'api', String(plan.apiBatches), String(plan.apiSize)], 'instant', endpoint)).perCallUs;
      hot.sqs[name] = (await probe(variants[name], ['hot', 'sqs', String(plan.sqsBatches), String(plan.sqsSize)], 'instant', endpoint)).perCallUs;
    }

    console.log('OTLP flush to the loopback receiver…');
    const flush: Partial<Record<VariantName, number[]>> = {};
    const flushCpu: Partial<Record<VariantName, number[]>> = { bare: [], ours: [], contrib: [] };
    for (let round = 0; round < 3; round++) {
      for (const name of names) {
        const measured = await probe(variants[name], ['flush', String(plan.flushCount)], 'otlp', endpoint);
        if (name !== 'bare') flush[name] = [...(flush[name] ?? []), ...measured.latenciesMs];
        flushCpu[name]!.push(measured.cpuUsPerCall);
      }
    }

    console.log(`Response time with a receiver ${REMOTE_DELAY_MS} ms away…`);
    const remote: Partial<Record<VariantName, number[]>> = {};
    for (const name of names) {
      remote[name] = (await probe(variants[name], ['flush', String(plan.remoteCount)], 'otlp', remoteEndpoint)).latenciesMs;
    }

    console.log(`Memory over ${plan.memoryCount} invocations…`);
    const memory: Partial<Record<VariantName, { peakRssMb: number; heapGrowthMb: number }>> = {};
    for (const name of names) {
      memory[name] = await probe(variants[name], ['memory', String(plan.memoryCount)], 'instant', endpoint, ['--expose-gc']);
    }

    console.log(`Under the runtime interface client: response and busy time (receiver ${REMOTE_DELAY_MS} ms away), CPU per invocation, ${plan.lossCount.toLocaleString('en')} invocations then a shutdown…`);
    const runtime = await measureUnderRuntime(
      runtimeVariants,
      { responseCount: plan.remoteCount, cpuCount: plan.runtimeCpuCount, lossCount: plan.lossCount, coldRounds: plan.coldRounds },
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
    );

    const report = renderReport({ sizes, cold, hot, flush, flushCpu, remote, memory, runtime });
    console.log(`\n${report}`);
    await writeFile(resultsFile, report);
    console.log(`\nWritten to ${resultsFile}`);
  } finally {
    await new Promise((done) => receiver.close(done));
    remoteReceiver.closeAllConnections();
    await new Promise((done) => remoteReceiver.close(done));
  }
}

interface Measurements {
  sizes: Record<string, number>;
  cold: Record<ColdVariantName, { init: number[]; first: number[] }>;
  hot: Record<string, Record<HotVariantName, number[]>>;
  flush: Partial<Record<VariantName, number[]>>;
  /** CPU per invocation with the OTLP export to loopback included, µs, one figure per run. */
  flushCpu: Partial<Record<VariantName, number[]>>;
  /** Invocation times with the receiver REMOTE_DELAY_MS away (what an export inside the invocation adds). */
  remote: Partial<Record<VariantName, number[]>>;
  memory: Partial<Record<VariantName, { peakRssMb: number; heapGrowthMb: number }>>;
  /** Under the runtime interface client, or why that could not run. */
  runtime: RuntimeMeasurements | string;
}

function renderReport({ sizes, cold, hot, flush, flushCpu, remote, memory, runtime }: Measurements): string {
  const rows: string[][] = [];
  // Enough digits that a miss never prints as "missed by 0.0".
  const verdict = (value: number, target: number) => (value <= target ? 'met' : `missed by ${(value - target).toFixed(value - target < 10 ? 2 : 1)}`);
  const share = (value: number, of: number) => (of > 0 ? `${(value / of).toFixed(2)}` : '—');
  const ratio = (contribAdded: number, oursAdded: number) => (oursAdded > 0 ? `${(contribAdded / oursAdded).toFixed(1)}×` : '∞');
  const kb = (bytes: number) => (bytes / 1024).toFixed(1);

  /** A row of timed figures: each variant's spread, what each adds over bare, the ratios and the verdict. */
  const measuredRow = (label: string, samples: { bare: number[]; ours: number[]; contrib: number[]; floor?: number[] }, digits: number, target: number) => {
    const [bare, ours, contrib] = [median(samples.bare), median(samples.ours), median(samples.contrib)];
    rows.push([
      label,
      spread(samples.bare, digits),
      spread(samples.ours, digits),
      spread(samples.contrib, digits),
      (ours - bare).toFixed(digits),
      samples.floor ? (median(samples.floor) - bare).toFixed(digits) : '—',
      (contrib - bare).toFixed(digits),
      share(ours, bare),
      share(ours, contrib),
      ratio(contrib - bare, ours - bare),
      `≤ ${target}`,
      verdict(ours - bare, target),
    ]);
  };
  const coldRow = (label: string, key: 'init' | 'first', target: number) =>
    measuredRow(label, { bare: cold.bare[key], ours: cold.ours[key], contrib: cold.contrib[key] }, 1, target);
  coldRow('cold: module init, ms since process start', 'init', 8);
  coldRow('cold: first invocation incl. OTLP flush, ms', 'first', 15);
  // What the deployed functions add on top: the source map beside the bundle, loaded by --enable-source-maps.
  for (const [label, key] of [['module init', 'init'], ['first invocation', 'first']] as const) {
    const [withMaps, without, bare, contrib] = [median(cold.oursMaps[key]), median(cold.ours[key]), median(cold.bare[key]), median(cold.contrib[key])];
    rows.push([
      `cold: ${label} with source maps on (${kb(sizes.oursMap)} KiB map), ms`,
      '—',
      spread(cold.oursMaps[key], 1),
      '—',
      `${(withMaps - bare).toFixed(1)} (maps: ${withMaps - without >= 0 ? '+' : ''}${(withMaps - without).toFixed(1)})`,
      '—',
      '—',
      share(withMaps, bare),
      share(withMaps, contrib),
      ratio(contrib - bare, withMaps - bare),
      '',
      '',
    ]);
  }

  const largest = Math.max(sizes['create-order'], sizes['process-order'], sizes['notify-customer']);
  rows.push([
    'bundle, minified KiB (AWS SDK external)',
    kb(sizes.bare),
    `${kb(sizes.ours)} (functions: ${kb(sizes['create-order'])} / ${kb(sizes['process-order'])} / ${kb(sizes['notify-customer'])})`,
    `${kb(sizes.contrib)} (init ${kb(sizes.contribInit)})`,
    kb(largest - sizes.bare),
    '—',
    kb(sizes.contrib - sizes.bare),
    share(largest, sizes.bare),
    share(largest, sizes.contrib),
    ratio(sizes.contrib - sizes.bare, largest - sizes.bare),
    `≤ 60 (largest function: ${largest.toLocaleString('en')} bytes)`,
    verdict(largest / 1024, 60),
  ]);

  const hotRow = (label: string, kind: 'api' | 'sqs', target: number) => measuredRow(label, hot[kind], 2, target);
  hotRow('per invocation, API Gateway, µs', 'api', 3);
  hotRow('per invocation, SQS ×10 records, µs', 'sqs', 12);

  const ours = flush.ours!;
  const contrib = flush.contrib!;
  rows.push([
    'invocation with OTLP/HTTP flush to loopback, ms p50 / p99',
    '—',
    `${percentile(ours, 50).toFixed(3)} / ${percentile(ours, 99).toFixed(3)}`,
    `${percentile(contrib, 50).toFixed(3)} / ${percentile(contrib, 99).toFixed(3)}`,
    '',
    '',
    '',
    '—',
    share(percentile(ours, 50), percentile(contrib, 50)),
    `${(percentile(contrib, 50) / percentile(ours, 50)).toFixed(1)}× (p50)`,
    'p50 ≤ 1',
    verdict(percentile(ours, 50), 1),
  ]);
  {
    const [bare, ours, contrib] = [median(flushCpu.bare!), median(flushCpu.ours!), median(flushCpu.contrib!)];
    rows.push([
      'CPU per invocation, OTLP/HTTP export to loopback included, µs',
      spread(flushCpu.bare!, 0),
      spread(flushCpu.ours!, 0),
      spread(flushCpu.contrib!, 0),
      (ours - bare).toFixed(0),
      '—',
      (contrib - bare).toFixed(0),
      share(ours, bare),
      share(ours, contrib),
      ratio(contrib - bare, ours - bare),
      'added ≤ 0.6× contrib added',
      (ours - bare) <= 0.6 * (contrib - bare) ? 'met' : `missed (${((ours - bare) / (contrib - bare)).toFixed(2)}×)`,
    ]);
  }
  const p50p99 = (values: number[]) => `${percentile(values, 50).toFixed(2)} / ${percentile(values, 99).toFixed(2)}`;
  rows.push([
    `response time, receiver ${REMOTE_DELAY_MS} ms away, ms p50 / p99`,
    p50p99(remote.bare!),
    p50p99(remote.ours!),
    p50p99(remote.contrib!),
    (percentile(remote.ours!, 50) - percentile(remote.bare!, 50)).toFixed(2),
    '—',
    (percentile(remote.contrib!, 50) - percentile(remote.bare!, 50)).toFixed(2),
    '—',
    share(percentile(remote.ours!, 50), percentile(remote.contrib!, 50)),
    ratio(percentile(remote.contrib!, 50) - percentile(remote.bare!, 50), percentile(remote.ours!, 50) - percentile(remote.bare!, 50)),
    'added p50 ≤ 0.1',
    verdict(percentile(remote.ours!, 50) - percentile(remote.bare!, 50), 0.1),
  ]);
  const mem = (name: VariantName) => `${memory[name]!.peakRssMb.toFixed(1)} MB peak, heap ${memory[name]!.heapGrowthMb >= 0 ? '+' : ''}${memory[name]!.heapGrowthMb.toFixed(2)} MB`;
  rows.push([`memory over ${plan.memoryCount.toLocaleString('en')} invocations (heap: 10% → end, after GC)`, mem('bare'), mem('ours'), mem('contrib'), '', '', '', '', '', '', 'no growth', '']);

  const header = [
    'figure',
    'bare',
    'ours',
    'contrib',
    'ours added',
    'SDK floor added (kit set-up)',
    'contrib added',
    'ours/bare',
    'ours/contrib',
    'contrib/ours (added)',
    'target',
    'ours',
  ];
  const table = [header, header.map(() => '---'), ...rows].map((row) => `| ${row.join(' | ')} |`).join('\n');
  return [
    `# Benchmark: the cost of tracing on Lambda`,
    '',
    `Run ${new Date().toISOString()} · Node.js ${process.version} · ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}${quick ? ' · QUICK RUN (smoke only, not figures)' : ''}`,
    '',
    'Medians with min–max over repeated runs; "added" is the median over the bare handler in the same run;',
    '"ours/bare" and "ours/contrib" divide the medians; "contrib/ours (added)" divides what each adds over bare.',
    '- **bare**: the same handler with no tracing; **ours**: the project\'s wrappers as the functions use them;',
    "  **contrib**: the SDK's tracer provider + `instrumentation-aws-lambda` + `instrumentation-aws-sdk` + W3C propagator,",
    '  loaded with `--require` before the runtime loads the handler file, as the OpenTelemetry Lambda layer does.',
    '- **SDK floor**: the same spans with the fewest official API calls, on the kit\'s own tracer set-up (same provider,',
    '  processor and propagators): what the kit adds on top of the SDK, not a stock set-up.',
    `- Cold start: a fresh \`node\` process per run (${plan.coldRounds} rounds, rotating order), times since process start;`,
    '  the first invocation includes its span export to an OTLP/HTTP receiver on loopback. Each process first does what',
    "  the Lambda Node.js runtime does before it loads a handler file (its runtime API client requires `node:http` and",
    '  makes a keep-alive Agent), and invokes after one event-loop turn, as the runtime awaits its next event.',
    '- Bundles: esbuild, minified, `@aws-sdk/*` external (the Lambda Node.js runtime provides it), ES module builds',
    '  preferred: the options `serverless package` uses. The package step ships one file per function, no `node_modules`.',
    '- Per invocation: events carry `traceparent`; the exporter completes at once, so the figure is the tracing work',
    '  itself including the end-of-invocation flush. For SQS, ours makes one CONSUMER span per record, each continuing',
    "  its own producer's trace (10 spans); contrib makes one span for the whole invocation, linked at best, so its",
    '  figure is for a tenth of the spans and none of the per-message parents.',
    `- Response time: invocations in a row with the OTLP receiver answering each export after ${REMOTE_DELAY_MS} ms (a remote`,
    '  backend): what exporting inside the invocation adds to every response.',
    '- Per invocation: one event-loop turn after each call, as the runtime takes before its next event.',
    '- "with source maps on": ours as deployed, its bundle built with a source map beside it (positions only) and run',
    '  with `--enable-source-maps`; "maps" is what that adds over ours without them, in the same run.',
    '',
    table,
    '',
    ...renderRuntimeReport(runtime),
  ].join('\n');
}

function renderRuntimeReport(runtime: RuntimeMeasurements | string): string[] {
  const title = '## Under AWS\'s runtime interface client (export after the response)';
  if (typeof runtime === 'string') return [title, '', `Not measured: ${runtime}.`, ''];
  const names: RuntimeVariantName[] = ['bare', 'oursNoExport', 'ours', 'oursInline', 'contrib'];
  const p = (values: number[], q: number) => percentile(values, q);
  const pair = (values: number[]) => `${p(values, 50).toFixed(2)} / ${p(values, 99).toFixed(2)}`;
  const added = (values: number[], over = runtime.response.bare) => (p(values, 50) - p(over, 50)).toFixed(2);
  const verdict = (value: number, target: number) => (value <= target ? 'met' : `missed by ${(value - target).toFixed(2)}`);
  // What the export adds to the response: ours as deployed against the same tracing with nothing exported.
  const exportAdded = p(runtime.response.ours, 50) - p(runtime.response.oursNoExport, 50);
  const busyAdded = (values: number[]) => (p(values, 50) - p(runtime.busy.bare, 50)).toFixed(2);
  const cpuAdded = (name: RuntimeVariantName) => runtime.cpuUs[name] - runtime.cpuUs.bare;
  const cpuShare = cpuAdded('contrib') > 0 ? cpuAdded('ours') / cpuAdded('contrib') : Number.NaN;
  const coldAdded = (name: RuntimeVariantName) => (median(runtime.coldFirstResponse[name]) - median(runtime.coldFirstResponse.bare)).toFixed(1);
  const rows: string[][] = [
    [
      'cold: process start to first response (runtime init, preload, handler load, first invocation), ms',
      ...names.map((name) => spread(runtime.coldFirstResponse[name], 1)),
      `ours ${coldAdded('ours')} (registering the extension: ${(median(runtime.coldFirstResponse.ours) - median(runtime.coldFirstResponse.oursInline)).toFixed(1)}) · contrib ${coldAdded('contrib')}`,
      '',
      '',
    ],
    [
      `response time, receiver ${REMOTE_DELAY_MS} ms away, ms p50 / p99`,
      ...names.map((name) => pair(runtime.response[name])),
      `export: ${exportAdded.toFixed(2)} (in-invocation ${added(runtime.response.oursInline, runtime.response.oursNoExport)}) · all tracing: ours ${added(runtime.response.ours)}, contrib ${added(runtime.response.contrib)}`,
      'export adds p50 ≤ 0.1',
      verdict(exportAdded, 0.1),
    ],
    [
      `sandbox busy until runtime and extensions wait on /next, ms p50 / p99`,
      ...names.map((name) => pair(runtime.busy[name])),
      `ours ${busyAdded(runtime.busy.ours)} · in-invocation ${busyAdded(runtime.busy.oursInline)} · contrib ${busyAdded(runtime.busy.contrib)}`,
      'export done before the freeze',
      p(runtime.busy.ours, 50) >= REMOTE_DELAY_MS ? 'met' : 'missed',
    ],
    [
      'CPU per invocation, export to loopback included, µs',
      ...names.map((name) => runtime.cpuUs[name].toFixed(0)),
      `ours ${cpuAdded('ours').toFixed(0)} · in-invocation ${cpuAdded('oursInline').toFixed(0)} · contrib ${cpuAdded('contrib').toFixed(0)} (ours/contrib ${cpuShare.toFixed(2)})`,
      'ours added ≤ 0.6× contrib added',
      Number.isFinite(cpuShare) && cpuShare <= 0.6 ? 'met' : `missed (${cpuShare.toFixed(2)}×)`,
    ],
    [
      'spans received per invocation',
      ...names.map((name) => runtime.spansPerInvocation[name].toFixed(2)),
      '',
      '',
      '',
    ],
    [
      `spans lost over ${runtime.loss.invocations.toLocaleString('en')} invocations and a shutdown (SIGTERM)`,
      '—',
      '—',
      `${runtime.loss.expected - runtime.loss.received} of ${runtime.loss.expected.toLocaleString('en')}`,
      '—',
      '—',
      '',
      'none lost',
      runtime.loss.received === runtime.loss.expected && runtime.loss.expected > 0 ? 'met' : 'missed',
    ],
  ];
  const header = ['figure', 'bare', 'ours, nothing exported', 'ours (after response)', 'ours (in invocation)', 'contrib', 'added (p50)', 'target', 'ours'];
  return [
    title,
    '',
    "Each variant's handler file loaded by aws-lambda-ric (the runtime's own client) against a local Runtime API and",
    'Extensions API that hands out the next invocation only when the runtime and every registered extension ask for it',
    '(test/runtime/lambda-runtime.ts). Every variant runs at once and is invoked in turn, each invocation followed by',
    '25 ms of idle time (sparse traffic: no variant is warmer than another). Response time: from handing out the event',
    'to the response at the Runtime API; "export" compares ours as deployed with the same tracing exporting nothing.',
    "Busy: until everyone waits on /next (Lambda may freeze the sandbox then). CPU: the function process's user + system",
    'time (/proc) over the invocations, exports included. **ours (after response)**: as deployed (NODE_OPTIONS',
    '`--import ./extension/after-response.mjs`); **ours (in invocation)**: TRACED_LAMBDA_EXPORT_AFTER_RESPONSE=false.',
    '**contrib** makes no span here: the runtime client imports the handler file with `import()`, and the aws-lambda',
    "instrumentation set up with `--require` patches `require` only (the OpenTelemetry layer adds an ESM loader hook",
    'for that). Its figures are those of a set-up that traces nothing; its CPU with an export is in the table above.',
    '',
    [header, header.map(() => '---'), ...rows].map((row) => `| ${row.join(' | ')} |`).join('\n'),
    '',
  ];
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
