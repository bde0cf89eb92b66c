/**
 * The benchmark's figures measured as Lambda runs a function: each variant's handler file loaded by AWS's runtime
 * interface client (aws-lambda-ric, the code of the nodejs images' /var/runtime) against a local Runtime API and
 * Extensions API (test/runtime/lambda-runtime.ts), so that what happens after the response, and the CPU the export
 * takes, are counted where they really happen.
 */
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startOtlpReceiver } from '../scripts/offline/otlp-receiver';
import { runtimeClientProblem, startPackagedFunction, type PackagedFunction } from '../test/runtime/lambda-runtime';
import { apiEvent } from './events';
import { measureManagedInstances, type ManagedMeasurements } from './managed-instances';

export type RuntimeVariantName = 'bare' | 'oursNoExport' | 'ours' | 'oursInline' | 'stock' | 'contrib' | 'layer' | 'powertools';

export type LossMode = 'adaptive' | 'batched' | 'invocation' | 'inline';

/** What each export mode sets on ours as deployed. */
const LOSS_MODES: Record<LossMode, Record<string, string>> = {
  adaptive: {},
  batched: { TRACED_LAMBDA_EXPORT_STRATEGY: 'batched' },
  invocation: { TRACED_LAMBDA_EXPORT_STRATEGY: 'invocation' },
  inline: { TRACED_LAMBDA_EXPORT_AFTER_RESPONSE: 'false' },
};

export interface RuntimeVariant {
  dir: string;
  handler: string;
  environment: Record<string, string>;
  /** X-Ray active tracing on (Lambda's trace header sampled): what Powertools' Tracer needs to send anything. */
  activeTracing?: boolean;
}

export interface RuntimeMeasurements {
  /** From spawning the runtime to the first invocation's response (process start, init, preload, first invoke), ms. */
  coldFirstResponse: Record<RuntimeVariantName, number[]>;
  /** Response times (dispatch → response at the Runtime API), ms, receiver `remoteDelayMs` away. */
  response: Record<RuntimeVariantName, number[]>;
  /** From dispatch until the runtime and every extension wait on /next again (when Lambda may freeze), ms. */
  busy: Record<RuntimeVariantName, number[]>;
  /** CPU time of the function's process per invocation, export included, µs (loopback receiver). */
  cpuUs: Record<RuntimeVariantName, number>;
  /** Spans received per invocation (loopback receiver; Powertools: segments at the X-Ray daemon's socket). */
  spansPerInvocation: Record<RuntimeVariantName, number>;
  /**
   * Ours, in each export mode: invocations run in a row, then a graceful shutdown; spans expected and received.
   * `adaptive` is as deployed (the default strategy), `batched` and `invocation` the other strategies, `inline`
   * the export inside each invocation (TRACED_LAMBDA_EXPORT_AFTER_RESPONSE=false).
   */
  loss: Record<LossMode, { invocations: number; expected: number; received: number }>;
  /**
   * Ours, an invocation running past its timeout in an environment killed at the deadline: from the timeout guard
   * firing to its export answered by a receiver `remoteDelayMs` away, ms, as the process's first export (cold) and
   * after one normal invocation (warm); and the invocations whose spans were not answered before the deadline.
   */
  timeoutGuard: { marginMs: number; timeoutMs: number; coldMs: number[]; warmMs: number[]; lost: number };
  /**
   * Ours as deployed, dense traffic (an invocation every DENSE_INTERVAL_MS, receiver `remoteDelayMs` away), with the
   * default strategy (adaptive: shared exports) and with TRACED_LAMBDA_EXPORT_STRATEGY=invocation: how long the
   * sandbox stayed busy past each response (ms), the CPU per invocation (µs), and the exports per invocation.
   */
  dense: Record<'adaptive' | 'invocation', { heldMs: number[]; cpuUs: number; exportsPerInvocation: number }>;
  /** Ours on Lambda Managed Instances (./managed-instances.ts). */
  managed: ManagedMeasurements;
}

/** Dense traffic: an invocation handed out every 20 ms (50 a second), as the target says. */
export const DENSE_INTERVAL_MS = 20;

/** The guard's margin the bench measures against: the kit's default (lib/config.ts). */
const GUARD_MARGIN_MS = 150;
/** The slow invocation's timeout. */
const SLOW_TIMEOUT_MS = 1_000;

/** An OTLP receiver answering each export `delayMs` after it arrives, noting when (epoch ms) it answered. */
async function startTimedReceiver(delayMs: number): Promise<{ endpoint: string; answeredAt: number[]; close(): Promise<void> }> {
  const answeredAt: number[] = [];
  const server = createServer((request, response) => {
    request.on('data', () => undefined);
    request.on('end', () => {
      setTimeout(() => {
        answeredAt.push(Date.now());
        response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      }, delayMs);
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    answeredAt,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((done) => server.close(() => done()));
    },
  };
}

/** Idle time after each invocation, the same for every variant: a function serving sparse traffic. */
const GAP_MS = 25;

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces, inside parentheses): utime is the 14th field, stime the 15th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
}

/**
 * Cold starts, in rotating order: a fresh runtime per variant and round, its first response timed from the spawn
 * (to the response, not to the end of the work after it: the export, with the extension). Milliseconds per round.
 */
export async function measureColdFirstResponse<Name extends string>(
  names: readonly Name[],
  rounds: number,
  start: (name: Name) => Promise<PackagedFunction>,
  invoke: (fn: PackagedFunction) => Promise<{ answeredAt: number }>,
): Promise<Record<Name, number[]>> {
  const times = Object.fromEntries(names.map((name) => [name, [] as number[]])) as Record<Name, number[]>;
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(round + k) % names.length];
      const started = performance.now();
      const fn = await start(name);
      try {
        const { answeredAt } = await invoke(fn);
        times[name].push(answeredAt - started);
      } finally {
        await fn.stop();
      }
    }
  }
  return times;
}

export async function measureUnderRuntime(
  variants: Record<RuntimeVariantName, RuntimeVariant>,
  plan: { responseCount: number; cpuCount: number; lossCount: number; coldRounds: number; managedCount: number },
  remoteDelayMs: number,
  startRemote: (delayMs: number) => Promise<{ endpoint: string; close(): Promise<void> }>,
  xrayDaemon: { address: string; segments(): number },
): Promise<RuntimeMeasurements | string> {
  const problem = runtimeClientProblem();
  if (problem) return problem;
  const names = Object.keys(variants) as RuntimeVariantName[];
  const result: RuntimeMeasurements = {
    coldFirstResponse: {} as never,
    response: {} as never,
    busy: {} as never,
    cpuUs: {} as never,
    spansPerInvocation: {} as never,
    loss: {} as never,
    timeoutGuard: { marginMs: GUARD_MARGIN_MS, timeoutMs: SLOW_TIMEOUT_MS, coldMs: [], warmMs: [], lost: 0 },
    dense: {} as never,
    managed: {} as never,
  };
  const start = (name: RuntimeVariantName, endpoint: string, extra: Record<string, string> = {}): Promise<PackagedFunction> =>
    startPackagedFunction({
      name: `bench-${name}`,
      taskRoot: variants[name].dir,
      handler: variants[name].handler,
      nodePath: '',
      activeTracing: variants[name].activeTracing,
      environment: {
        OTEL_SERVICE_NAME: 'bench',
        OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
        BENCH_EXPORTER: 'otlp',
        AWS_XRAY_DAEMON_ADDRESS: xrayDaemon.address,
        ...variants[name].environment,
        ...extra,
      },
    });
  /** One invocation: its response time, the moment the response arrived, and how long the sandbox stayed busy. */
  const invoke = async (fn: PackagedFunction) => {
    const answer = await fn.invoke(apiEvent());
    const answeredAt = performance.now();
    if (!answer.ok) throw new Error(`${fn.name} failed: ${JSON.stringify(answer)}\n${fn.logs()}`);
    return { responseMs: answer.responseMs!, answeredAt, busyMs: await fn.whenIdle() };
  };

  const coldReceiver = await startOtlpReceiver(0);
  try {
    result.coldFirstResponse = await measureColdFirstResponse(names, plan.coldRounds, (name) => start(name, coldReceiver.endpoint), invoke);
  } finally {
    await coldReceiver.close();
  }

  // Every variant runs at once, invoked in turn (rotating order) with the same idle time after each invocation:
  // no variant is measured warmer, or on a quieter machine, than another.
  const remote = await startRemote(remoteDelayMs);
  const running = new Map<RuntimeVariantName, PackagedFunction>();
  try {
    for (const name of names) {
      running.set(name, await start(name, remote.endpoint));
      result.response[name] = [];
      result.busy[name] = [];
    }
    for (let round = -10; round < plan.responseCount; round++) {
      for (let k = 0; k < names.length; k++) {
        const name = names[(round + 10 + k) % names.length];
        const { responseMs, busyMs } = await invoke(running.get(name)!);
        // The first rounds warm up: cold start, JIT, the exporter's connection.
        if (round >= 0) {
          result.response[name].push(responseMs);
          result.busy[name].push(busyMs);
        }
        await new Promise((resolve) => setTimeout(resolve, GAP_MS));
      }
    }
  } finally {
    for (const fn of running.values()) await fn.stop();
    await remote.close();
  }

  // Dense traffic, ours only: the default strategy against one export per invocation, on the same receiver.
  const dense = await startTimedReceiver(remoteDelayMs);
  try {
    for (const strategy of ['adaptive', 'invocation'] as const) {
      const fn = await start('ours', dense.endpoint, { TRACED_LAMBDA_EXPORT_STRATEGY: strategy });
      try {
        const heldMs: number[] = [];
        let cpuBefore = 0;
        let exportsBefore = 0;
        for (let i = -20; i < plan.responseCount; i++) {
          if (i === 0) {
            cpuBefore = await cpuSeconds(fn.pid!);
            exportsBefore = dense.answeredAt.length;
          }
          const began = performance.now();
          const { responseMs, busyMs } = await invoke(fn);
          if (i >= 0) heldMs.push(Math.max(0, busyMs - responseMs));
          const restMs = DENSE_INTERVAL_MS - (performance.now() - began);
          if (restMs > 0) await new Promise((resolve) => setTimeout(resolve, restMs));
        }
        const cpuUs = (((await cpuSeconds(fn.pid!)) - cpuBefore) * 1e6) / plan.responseCount;
        result.dense[strategy] = { heldMs, cpuUs, exportsPerInvocation: (dense.answeredAt.length - exportsBefore) / plan.responseCount };
      } finally {
        await fn.stop();
      }
    }
  } finally {
    await dense.close();
  }

  const receiver = await startOtlpReceiver(0);
  try {
    for (const name of names) {
      const received = () => receiver.spans().length + xrayDaemon.segments();
      const spansBefore = received();
      const fn = await start(name, receiver.endpoint);
      const warmUp = 50;
      try {
        for (let i = 0; i < warmUp; i++) await invoke(fn);
        const cpuBefore = await cpuSeconds(fn.pid!);
        for (let i = 0; i < plan.cpuCount; i++) await invoke(fn);
        result.cpuUs[name] = (((await cpuSeconds(fn.pid!)) - cpuBefore) * 1e6) / plan.cpuCount;
      } finally {
        // Ended as Lambda ends a sandbox (SIGTERM): spans held for a shared export leave then, and are counted.
        await fn.stop({ graceful: true });
      }
      // A datagram sent after the last response may still be on its way.
      await new Promise((resolve) => setTimeout(resolve, 50));
      result.spansPerInvocation[name] = (received() - spansBefore) / (warmUp + plan.cpuCount);
    }

    // Ours in every export mode: many invocations in a row (each answered, the next one handed out only once the
    // runtime and the extension ask for it), then the sandbox ended as Lambda ends it; every span must have arrived.
    for (const [mode, environment] of Object.entries(LOSS_MODES) as [LossMode, Record<string, string>][]) {
      const before = receiver.spans().length;
      const fn = await start('ours', receiver.endpoint, environment);
      for (let i = 0; i < plan.lossCount; i++) await fn.invoke(apiEvent());
      await fn.stop({ graceful: true });
      result.loss[mode] = {
        invocations: plan.lossCount,
        expected: Math.round(plan.lossCount * result.spansPerInvocation.ours),
        received: receiver.spans().length - before,
      };
    }
  } finally {
    await receiver.close();
  }

  // The timeout guard: a fresh runtime per round, killed at the deadline as Lambda ends a timed-out invocation.
  const timed = await startTimedReceiver(remoteDelayMs);
  try {
    for (let round = 0; round < plan.coldRounds; round++) {
      for (const warm of [false, true]) {
        const fn = await startPackagedFunction({
          name: 'bench-ours-slow',
          taskRoot: variants.ours.dir,
          handler: 'ours-slow.handler',
          nodePath: '',
          killAtDeadline: true,
          environment: {
            OTEL_SERVICE_NAME: 'bench',
            OTEL_EXPORTER_OTLP_ENDPOINT: timed.endpoint,
            BENCH_EXPORTER: 'otlp',
            TRACED_LAMBDA_TIMEOUT_GUARD_MS: String(GUARD_MARGIN_MS),
            ...variants.ours.environment,
          },
        });
        try {
          if (warm) await invoke(fn);
          const answeredBefore = timed.answeredAt.length;
          const deadline = Date.now() + SLOW_TIMEOUT_MS;
          const answer = await fn.invoke({ ...apiEvent(), rawPath: '/slow' }, { timeoutMs: SLOW_TIMEOUT_MS });
          if (answer.ok) throw new Error(`the slow invocation answered: ${JSON.stringify(answer)}`);
          const answered = timed.answeredAt.slice(answeredBefore).find((at) => at <= deadline);
          if (answered === undefined) result.timeoutGuard.lost++;
          else (warm ? result.timeoutGuard.warmMs : result.timeoutGuard.coldMs).push(answered - (deadline - GUARD_MARGIN_MS));
        } finally {
          await fn.stop();
        }
      }
    }
  } finally {
    await timed.close();
  }

  result.managed = await measureManagedInstances(variants.ours, plan.managedCount, Math.round(result.spansPerInvocation.ours));
  return result;
}

/**
 * CPU per invocation of a few variants under the runtime client, in alternating rounds (`npm run bench --
 * --runtime-cpu`): every variant runs at once, and each round measures each of them in turn (rotating order), so that
 * a busy moment on a shared machine falls on all of them alike. One figure (µs per invocation) per variant and round.
 */
export async function measureRuntimeCpu(
  variants: Partial<Record<RuntimeVariantName, RuntimeVariant>>,
  plan: { rounds: number; count: number },
  xrayDaemon: { address: string },
): Promise<Record<string, number[]>> {
  const problem = runtimeClientProblem();
  if (problem) throw new Error(problem);
  const names = Object.keys(variants) as RuntimeVariantName[];
  const receiver = await startOtlpReceiver(0);
  const running = new Map<RuntimeVariantName, PackagedFunction>();
  const cpuUs: Record<string, number[]> = Object.fromEntries(names.map((name) => [name, []]));
  const invoke = async (fn: PackagedFunction) => {
    const answer = await fn.invoke(apiEvent());
    if (!answer.ok) throw new Error(`${fn.name} failed: ${JSON.stringify(answer)}\n${fn.logs()}`);
    await fn.whenIdle();
  };
  try {
    for (const name of names) {
      const variant = variants[name]!;
      const fn = await startPackagedFunction({
        name: `bench-${name}`,
        taskRoot: variant.dir,
        handler: variant.handler,
        nodePath: '',
        activeTracing: variant.activeTracing,
        environment: {
          OTEL_SERVICE_NAME: 'bench',
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
          BENCH_EXPORTER: 'otlp',
          AWS_XRAY_DAEMON_ADDRESS: xrayDaemon.address,
          ...variant.environment,
        },
      });
      running.set(name, fn);
      for (let i = 0; i < 50; i++) await invoke(fn);
    }
    for (let round = 0; round < plan.rounds; round++) {
      for (let k = 0; k < names.length; k++) {
        const name = names[(round + k) % names.length];
        const fn = running.get(name)!;
        const before = await cpuSeconds(fn.pid!);
        for (let i = 0; i < plan.count; i++) await invoke(fn);
        cpuUs[name].push((((await cpuSeconds(fn.pid!)) - before) * 1e6) / plan.count);
      }
    }
  } finally {
    for (const fn of running.values()) await fn.stop({ graceful: true });
    await receiver.close();
  }
  return cpuUs;
}
