/**
 * Runs inside one benchmark child process: loads a handler file the way the Lambda runtime does and measures.
 *   probe cold   <dir> <module> <api|sqs>           → {"init": ms, "first": ms} since process start
 *   probe hot    <dir> <module> <api|sqs> <batches> <size>  → {"perCallUs": [..]}
 *   probe memory <dir> <module> <count>             → {"peakRssMb", "heapGrowthMb"}
 *   probe flush  <dir> <module> <count>             → {"latenciesMs": [..], "cpuUsPerCall"} with the OTLP exporter
 */
import { Agent } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import 'node:async_hooks';
import 'node:net';
import 'node:os';
import 'node:util';
import 'node:worker_threads';
import { apiEvent, benchContext, sqsEvent10 } from './events';

// What the Lambda Node.js runtime has done before it loads the handler file: its runtime interface client (4.x, the
// one that runs Managed Instances too) loads node:http, node:net, node:os, node:util, node:worker_threads and
// node:async_hooks at its start and makes a keep-alive Agent, so every variant finds them loaded, as it does on
// Lambda: a handler that loads one of them again pays nothing for it there, and is not charged for it here.
const runtimeAgent = new Agent({ keepAlive: true, maxSockets: 1 });

type Handler = (event: unknown, context: unknown) => Promise<unknown>;
const [mode, dir, moduleName, ...args] = process.argv.slice(2);

function loadHandler(): Handler {
  // As the Node.js runtime does: LAMBDA_TASK_ROOT + the module part of _HANDLER, required by path.
  const loaded = createRequire(join(dir, 'noop.js'))(join(dir, moduleName)) as { handler: Handler };
  return loaded.handler;
}

async function main(): Promise<unknown> {
  if (mode === 'cold') {
    const handler = loadHandler();
    const init = performance.now();
    // The runtime then awaits its next event (a call into its native client) before it invokes the handler.
    await new Promise((next) => setImmediate(next));
    await handler(args[0] === 'sqs' ? sqsEvent10() : apiEvent(), benchContext());
    return { init, first: performance.now() };
  }
  const handler = loadHandler();
  if (mode === 'hot') {
    const event = args[0] === 'sqs' ? sqsEvent10() : apiEvent();
    const [batches, size] = [Number(args[1]), Number(args[2])];
    const context = benchContext();
    // One event-loop turn after each call, as the runtime's native client takes one before the next event:
    // work a tracer defers to a timer or to I/O is counted, as it is on Lambda (every variant pays the turn).
    const turn = () => new Promise((next) => setImmediate(next));
    for (let i = 0; i < size * 2; i++) {
      await handler(event, context); // warm-up: JIT, caches, connections
      await turn();
    }
    const perCallUs: number[] = [];
    for (let b = 0; b < batches; b++) {
      const start = process.hrtime.bigint();
      for (let i = 0; i < size; i++) {
        await handler(event, context);
        await turn();
      }
      perCallUs.push(Number(process.hrtime.bigint() - start) / 1000 / size);
    }
    return { perCallUs };
  }
  if (mode === 'memory') {
    const count = Number(args[0]);
    const event = apiEvent();
    const context = benchContext();
    const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
    let peakRss = 0;
    let heapAtTenth = 0;
    for (let i = 1; i <= count; i++) {
      await handler(event, context);
      // The runtime's event-loop turn: work a tracer leaves to I/O (a UDP send, an export) gets done, as on Lambda.
      await new Promise((next) => setImmediate(next));
      if (i % 1000 === 0) peakRss = Math.max(peakRss, process.memoryUsage().rss);
      if (i === Math.floor(count / 10)) {
        gc();
        heapAtTenth = process.memoryUsage().heapUsed;
      }
    }
    gc();
    return { peakRssMb: peakRss / 2 ** 20, heapGrowthMb: (process.memoryUsage().heapUsed - heapAtTenth) / 2 ** 20 };
  }
  if (mode === 'flush') {
    const count = Number(args[0]);
    const event = apiEvent();
    const context = benchContext();
    const latenciesMs: number[] = [];
    let cpu: NodeJS.CpuUsage | undefined;
    for (let i = 0; i < count + 50; i++) {
      if (i === 50) cpu = process.cpuUsage();
      const start = process.hrtime.bigint();
      await handler(event, context);
      if (i >= 50) latenciesMs.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    // A batching exporter may still hold spans: let it finish before the CPU is read (its work is counted).
    await new Promise((resolve) => setTimeout(resolve, 50));
    const used = process.cpuUsage(cpu);
    return { latenciesMs, cpuUsPerCall: (used.user + used.system) / count };
  }
  throw new Error(`unknown mode ${mode}`);
}

main().then(
  (result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    runtimeAgent.destroy();
    process.exit(0); // keep-alive sockets must not hold the measurement open
  },
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
