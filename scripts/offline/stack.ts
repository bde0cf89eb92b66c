import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createSqsServer } from 'local-aws-sqs';
import { startOtlpReceiver, type OtlpReceiver } from './otlp-receiver';
import { describeService, LOCAL_ACCOUNT_ID, OFFLINE_STAGE, type ServiceDescription } from './service';
import { startKinesisEmulator } from './kinesis-emulator';
import { startKinesisEventSource, type KinesisMapping } from './kinesis-event-source';
import { startSqsEventSource, type SqsMapping } from './sqs-event-source';

/**
 * The service as serverless.yml declares it for the offline stage: every name below comes from there. Read on first
 * use (`serverless print` takes seconds), not at import, so that the stack can start serverless offline meanwhile.
 */
export const offlineService = (): ServiceDescription => describeService(OFFLINE_STAGE);
export const STAGE = OFFLINE_STAGE;
/** What the offline stage's function names begin with (`<service>-offline-`). */
export const functionPrefix = () => `${offlineService().service}-${STAGE}-`;
export const functionName = (key: string) => offlineService().functionName(key);
const ACCOUNT_ID = LOCAL_ACCOUNT_ID;
/** The queues some function consumes (dead-letter queues are only written to). */
const consumedQueues = (service: ServiceDescription) =>
  [...new Set(service.functions.flatMap((fn) => fn.consumes))].map((logicalId) => service.queue(logicalId).name);
const PROJECT_ROOT = resolve(__dirname, '..', '..');

export interface StackPorts {
  http: number;
  lambda: number;
  sqs: number;
  /** The Kinesis emulator, started only when serverless.yml declares a Kinesis stream. */
  kinesis: number;
  /** The local OTLP receiver; 0 means none is started (spans go to OTEL_EXPORTER_OTLP_ENDPOINT). */
  otlp: number;
}

export const DEFAULT_PORTS: StackPorts = { http: 3000, lambda: 3002, sqs: 9324, kinesis: 4567, otlp: 4318 };

/**
 * The ports `npm start` and `npm run offline` use: the defaults, moved by HTTP_PORT, LAMBDA_PORT, SQS_PORT,
 * KINESIS_PORT, OTLP_RECEIVER_PORT.
 */
export function portsFromEnv(env: NodeJS.ProcessEnv = process.env): StackPorts {
  const port = (value: string | undefined, fallback: number) => {
    const parsed = Number(value);
    return Number.isInteger(parsed) && parsed > 0 && parsed < 65536 ? parsed : fallback;
  };
  return {
    http: port(env.HTTP_PORT, DEFAULT_PORTS.http),
    lambda: port(env.LAMBDA_PORT, DEFAULT_PORTS.lambda),
    sqs: port(env.SQS_PORT, DEFAULT_PORTS.sqs),
    kinesis: port(env.KINESIS_PORT, DEFAULT_PORTS.kinesis),
    otlp: port(env.OTLP_RECEIVER_PORT, DEFAULT_PORTS.otlp),
  };
}

export interface OfflineStack {
  ports: StackPorts;
  /** HTTP API route (no stage prefix). */
  httpApiUrl: string;
  /** REST API route (stage-prefixed, as API Gateway REST APIs are). */
  restApiUrl: string;
  lambdaEndpoint: string;
  sqsEndpoint: string;
  /** The Kinesis emulator, when serverless.yml declares a stream. */
  kinesisEndpoint?: string;
  /** The URL of the first queue a function consumes (the orders queue here). */
  queueUrl: string;
  /** Every declared queue's URL on the emulator, by its name. */
  queueUrls: Record<string, string>;
  /** The local receiver, when this stack started one. */
  receiver?: OtlpReceiver;
  /** What serverless offline printed (handlers' logs included), for diagnosis. */
  output(): string;
  /**
   * Resolves once every consumed queue holds no message, visible or in flight: the event source deletes a record
   * after its consumer has returned (process-order returns after notify-customer has answered), each having
   * flushed its spans by then; a record that failed stays until it has gone to its dead-letter queue. Rejects
   * after `timeoutMs`.
   */
  waitForQueueDrained(timeoutMs: number): Promise<void>;
  /** Resolves once serverless offline has printed `text` (logs cross a worker thread and a pipe first). */
  waitForOutput(text: string, timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

export interface StackOptions {
  ports?: Partial<StackPorts>;
  /** Echo serverless offline's output (foreground use). */
  echo?: boolean;
  /** How long serverless offline may take to come up. */
  readyTimeoutMs?: number;
  /** Variables for serverless offline and the functions, over the shell's (e.g. OTEL_EXPORTER_OTLP_ENDPOINT). */
  env?: NodeJS.ProcessEnv;
  /**
   * Where the function bundles are built (default `.esbuild`). Stacks running side by side need their own:
   * one stack's clean-up would otherwise remove the bundles another is running.
   */
  buildFolder?: string;
}

/**
 * Starts the whole pipeline on loopback: the OTLP receiver, the SQS emulator with every declared queue, the Kinesis
 * emulator with every declared stream (when there is one), then `serverless offline --stage offline`, then the SQS
 * and Kinesis event sources that feed the consumers through serverless offline's invoke endpoint. Whatever started
 * is stopped again if a later step fails, and by `stop()`.
 */
export async function startOfflineStack(options: StackOptions = {}): Promise<OfflineStack> {
  const ports = { ...DEFAULT_PORTS, ...options.ports };
  const cleanups: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    cleanups.length = 0;
  };
  try {
    await assertPortsFree([ports.http, ports.lambda, ports.sqs, ...(ports.otlp ? [ports.otlp] : [])]);

    let receiver: OtlpReceiver | undefined;
    if (ports.otlp) {
      receiver = await startOtlpReceiver(ports.otlp);
      cleanups.push(() => receiver!.close());
    }

    // serverless offline boots (the framework, then the functions' bundles) while this process reads serverless.yml
    // through `serverless print`: each takes seconds, and nothing the one does waits for the other.
    const offline = startServerlessOffline(ports, receiver, options);
    cleanups.push(offline.stop);
    const service = offlineService();

    const sqs = await startSqsEmulator(service, ports.sqs);
    cleanups.push(() => closeServer(sqs));
    let kinesisEndpoint: string | undefined;
    if (service.streams.length > 0) {
      await assertPortsFree([ports.kinesis]);
      const kinesis = await startKinesisEmulator(service.streams, ports.kinesis, service.region);
      cleanups.push(kinesis.close);
      kinesisEndpoint = kinesis.endpoint;
    }

    await offline.ready(service);

    const sqsEndpoint = `http://127.0.0.1:${ports.sqs}`;
    const consumed = consumedQueues(service);
    const eventSource = startSqsEventSource(sqsMappings(service, sqsEndpoint), {
      sqsEndpoint,
      lambdaEndpoint: `http://127.0.0.1:${ports.lambda}`,
      region: service.region,
      log: offline.note,
    });
    cleanups.push(() => eventSource.stop());
    if (kinesisEndpoint) {
      const streamSource = await startKinesisEventSource(kinesisMappings(service, sqsEndpoint), {
        kinesisEndpoint,
        sqsEndpoint,
        lambdaEndpoint: `http://127.0.0.1:${ports.lambda}`,
        region: service.region,
        accountId: ACCOUNT_ID,
        log: offline.note,
      });
      cleanups.push(() => streamSource.stop());
    }
    return {
      ports,
      httpApiUrl: `http://127.0.0.1:${ports.http}/orders`,
      restApiUrl: `http://127.0.0.1:${ports.http}/${STAGE}/orders`,
      lambdaEndpoint: `http://127.0.0.1:${ports.lambda}`,
      sqsEndpoint,
      kinesisEndpoint,
      queueUrl: queueUrl(sqsEndpoint, consumed[0] ?? service.queues[0]?.name ?? ''),
      queueUrls: Object.fromEntries(service.queues.map((queue) => [queue.name, queueUrl(sqsEndpoint, queue.name)])),
      receiver,
      output: offline.output,
      waitForQueueDrained: async (timeoutMs) => {
        const deadline = Date.now() + timeoutMs;
        for (const name of consumed) await waitForEmptyQueue(sqsEndpoint, queueUrl(sqsEndpoint, name), Math.max(0, deadline - Date.now()));
      },
      waitForOutput: async (text, timeoutMs) => {
        const deadline = Date.now() + timeoutMs;
        while (!offline.output().includes(text)) {
          if (Date.now() > deadline) throw new Error(`serverless offline did not print "${text}" within ${timeoutMs} ms`);
          await sleep(100);
        }
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function waitForEmptyQueue(endpoint: string, queueUrl: string, timeoutMs: number): Promise<void> {
  const { SQSClient, GetQueueAttributesCommand } = await import('@aws-sdk/client-sqs');
  const client = new SQSClient({ endpoint, region: 'eu-west-1', credentials: { accessKeyId: 'offline', secretAccessKey: 'offline' } });
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const { Attributes = {} } = await client.send(
        new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
      );
      if (Number(Attributes.ApproximateNumberOfMessages) === 0 && Number(Attributes.ApproximateNumberOfMessagesNotVisible) === 0) return;
      if (Date.now() > deadline) throw new Error(`${queueUrl.slice(queueUrl.lastIndexOf('/') + 1)} still held messages after ${timeoutMs} ms`);
      await sleep(200);
    }
  } finally {
    client.destroy();
  }
}

const queueUrl = (sqsEndpoint: string, name: string) => `${sqsEndpoint}/${ACCOUNT_ID}/${name}`;
const queueArn = (service: ServiceDescription, name: string) => `arn:aws:sqs:${service.region}:${ACCOUNT_ID}:${name}`;

/** Every function's `sqs` events, as the event source feeds them. */
function sqsMappings(service: ServiceDescription, sqsEndpoint: string): SqsMapping[] {
  return service.functions.flatMap((fn) =>
    fn.sqsEvents.map((event) => {
      const { name } = service.queue(event.queue);
      return { functionName: fn.name, timeout: fn.timeout, queueName: name, queueUrl: queueUrl(sqsEndpoint, name), queueArn: queueArn(service, name), event };
    }),
  );
}

/** Every function's `stream` events on a declared Kinesis stream, as the Kinesis event source feeds them. */
function kinesisMappings(service: ServiceDescription, sqsEndpoint: string): KinesisMapping[] {
  return service.functions.flatMap((fn) =>
    fn.kinesisEvents.map((event) => {
      const { name } = service.stream(event.stream);
      return {
        functionName: fn.name,
        timeout: fn.timeout,
        streamName: name,
        streamArn: `arn:aws:kinesis:${service.region}:${ACCOUNT_ID}:stream/${name}`,
        onFailureQueueUrl: event.onFailureQueue ? queueUrl(sqsEndpoint, service.queue(event.onFailureQueue).name) : undefined,
        event,
      };
    }),
  );
}

/**
 * The emulator with every queue serverless.yml declares, dead-letter queues first (a redrive policy names one).
 * The emulator applies the redrive policy itself: a message received `maxReceiveCount` times moves to the
 * dead-letter queue when its visibility timeout ends. The stage's `sqsVisibilityTimeout` replaces each queue's own,
 * so that a retry comes within seconds offline.
 */
async function startSqsEmulator(service: ServiceDescription, port: number): Promise<Server> {
  const ordered = [...service.queues].sort((a, b) => Number(Boolean(a.deadLetterQueue)) - Number(Boolean(b.deadLetterQueue)));
  return createSqsServer({
    port,
    hostname: '127.0.0.1',
    accountId: ACCOUNT_ID,
    region: service.region,
    emulateQueueCreationLifecycle: false,
    queues: ordered.map((queue) => ({
      QueueName: queue.name,
      Attributes: {
        ...queue.attributes,
        ...(service.stageVisibilityTimeout === undefined ? {} : { VisibilityTimeout: service.stageVisibilityTimeout }),
        ...(queue.deadLetterQueue
          ? {
              RedrivePolicy: JSON.stringify({
                deadLetterTargetArn: queueArn(service, service.queue(queue.deadLetterQueue).name),
                maxReceiveCount: queue.maxReceiveCount ?? 3,
              }),
            }
          : {}),
      },
    })),
  });
}

/** Spawns `serverless offline start`; `ready()` resolves once it serves every function of `service`. */
function startServerlessOffline(ports: StackPorts, receiver: OtlpReceiver | undefined, options: StackOptions) {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...options.env,
    ...(options.buildFolder ? { ESBUILD_WORK_FOLDER: options.buildFolder } : {}),
    HTTP_PORT: String(ports.http),
    LAMBDA_PORT: String(ports.lambda),
    SQS_PORT: String(ports.sqs),
    KINESIS_PORT: String(ports.kinesis),
    ...(receiver ? { OTLP_RECEIVER_PORT: String(receiver.port) } : {}),
  };
  if (receiver) {
    // With the local receiver the functions export to it; otherwise to the OTEL_EXPORTER_OTLP_* the shell set.
    delete env.OTEL_EXPORTER_OTLP_ENDPOINT;
    delete env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
    env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/json'; // what the local receiver reads
  }
  const cli = require.resolve('osls/bin/serverless.js', { paths: [PROJECT_ROOT] });
  // Its own process group, so that stopping it stops whatever it started too.
  const child = spawn(process.execPath, [cli, 'offline', 'start', '--stage', STAGE], {
    cwd: PROJECT_ROOT,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer | string) => {
    output += chunk.toString();
    if (options.echo) process.stdout.write(chunk);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = once(child, 'exit');

  const stop = async () => {
    await stopProcessGroup(child, exited);
    if (options.buildFolder) await rm(resolve(PROJECT_ROOT, options.buildFolder), { recursive: true, force: true });
  };
  const readyTimeoutMs = options.readyTimeoutMs ?? 90_000;
  const deadline = Date.now() + readyTimeoutMs;
  return {
    stop,
    ready: (service: ServiceDescription) => waitUntilReady(service, ports, child, () => output, { deadline, timeoutMs: readyTimeoutMs }),
    output: () => output,
    // The event source's lines go with serverless offline's, where the handlers' logs are.
    note: (line: string) => collect(`${line}\n`),
  };
}

/** Ready when the HTTP server and the Lambda invoke endpoint answer, having listed every declared function. */
async function waitUntilReady(
  service: ServiceDescription,
  ports: StackPorts,
  child: ChildProcess,
  output: () => string,
  { deadline, timeoutMs }: { deadline: number; timeoutMs: number },
) {
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`serverless offline exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${output()}`);
    }
    const listed = service.functions.every((fn) => output().includes(fn.name));
    if (listed && (await answers(ports.http)) && (await answers(ports.lambda))) return;
    await sleep(250);
  }
  throw new Error(`serverless offline was not ready within ${timeoutMs} ms:\n${output()}`);
}

async function answers(port: number): Promise<boolean> {
  try {
    await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1000) });
    return true;
  } catch {
    return false;
  }
}

export async function stopProcessGroup(child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // Already gone.
    }
  };
  signalGroup('SIGTERM');
  const stopped = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
  if (!stopped) {
    signalGroup('SIGKILL');
    await Promise.race([exited, sleep(2000)]);
  }
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

async function assertPortsFree(ports: number[]): Promise<void> {
  for (const port of ports) {
    const probe = createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        probe.once('error', reject);
        probe.listen(port, '127.0.0.1', () => resolve());
      });
    } catch {
      throw new Error(`port ${port} on 127.0.0.1 is in use (is \`npm run offline\` already running?)`);
    } finally {
      await new Promise((resolve) => probe.close(resolve));
    }
  }
}

/** Free loopback ports picked by the system, for tests that run beside a developer's own stack. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, async () => {
      const server = createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
      return server;
    }),
  );
  const ports = servers.map((server) => (server.address() as AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}
