/**
 * The service as serverless.yml declares it, read through the framework's own `serverless print` (every variable
 * resolved for the stage): its name, its functions with their deployed names and triggers, the queues and Kinesis
 * streams it creates and the environment each function gets. The offline stack, `npm start` and the tests take every
 * name from here, so that renaming the service, or adding a function, a queue or a stream, needs no edit outside
 * serverless.yml and the function's own files.
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';

const PROJECT_ROOT = resolve(__dirname, '..', '..');
/** The stage serverless offline runs (`npm start`, `npm run offline`, the end-to-end tests). */
export const OFFLINE_STAGE = 'offline';
/** The account id of every local ARN and queue URL (the SQS emulator's, and the tests'). */
export const LOCAL_ACCOUNT_ID = '000000000000';

/** An event source of a function, by its key in serverless.yml (`http`, `httpApi`, `sqs`, `sns`, …). */
export type TriggerName = string;

export interface DeclaredFunction {
  /** The function's key under `functions:` (e.g. `create-order`). */
  key: string;
  /** Its deployed name (`<service>-<stage>-<key>` unless serverless.yml names it). */
  name: string;
  handler: string;
  triggers: TriggerName[];
  /** The logical ids of the queues in `resources` this function consumes (its `sqs` events). */
  consumes: string[];
  /** Its `sqs` events with their settings, in the order serverless.yml lists them. */
  sqsEvents: DeclaredSqsEvent[];
  /** Its `stream` events on a Kinesis stream declared in `resources`, with their settings. */
  kinesisEvents: DeclaredKinesisEvent[];
  /** Its timeout in seconds (its own, or the provider's). */
  timeout: number;
  /** Its own environment: strings as resolved, CloudFormation references kept as they are. */
  environment: Record<string, unknown>;
}

/**
 * A function's `sqs` event: the event source mapping Lambda would create, with its defaults
 * (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html).
 */
export interface DeclaredSqsEvent {
  /** The logical id of the consumed queue in `resources`. */
  queue: string;
  /** Records per invocation at most (Lambda's default: 10). */
  batchSize: number;
  /** Seconds to gather records before invoking (Lambda's default: 0, invoke as soon as there are any). */
  maximumBatchingWindow: number;
  /** `functionResponseType: ReportBatchItemFailures`: the function reports the records that failed. */
  reportBatchItemFailures: boolean;
  /** `enabled: false` pauses the mapping. */
  enabled: boolean;
}

/**
 * A function's `stream` event on a declared Kinesis stream: the event source mapping Lambda would create, with its
 * defaults (https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-parameters.html).
 */
export interface DeclaredKinesisEvent {
  /** The logical id of the consumed stream in `resources`. */
  stream: string;
  /** Records per invocation at most (Lambda's default: 100). */
  batchSize: number;
  /** Seconds to gather records before invoking (Lambda's default: 0). */
  maximumBatchingWindow: number;
  /** `LATEST` (the default here), `TRIM_HORIZON` or `AT_TIMESTAMP`. */
  startingPosition: string;
  /** `functionResponseType: ReportBatchItemFailures`: the function reports the record it failed at. */
  reportBatchItemFailures: boolean;
  /** Retries of a failing batch before it is given up (Lambda's default: -1, until the records expire). */
  maximumRetryAttempts: number;
  /** `bisectBatchOnFunctionError`: a batch whose invocation fails is split in two. */
  bisectBatchOnFunctionError: boolean;
  /** The logical id of the declared queue a given-up batch is described in (`destinations.onFailure`). */
  onFailureQueue?: string;
  /** `enabled: false` pauses the mapping. */
  enabled: boolean;
}

export interface DeclaredStream {
  /** The stream's logical id in `resources`. */
  logicalId: string;
  /** Its Name. */
  name: string;
  /** Its ShardCount when provisioned; 1 for an on-demand stream (offline only: AWS starts one with 4). */
  shardCount: number;
}

export interface DeclaredQueue {
  /** The queue's logical id in `resources`. */
  logicalId: string;
  /** Its QueueName. */
  name: string;
  /** The logical id of its dead-letter queue, when it has one. */
  deadLetterQueue?: string;
  /** How many receives before a message moves to the dead-letter queue. */
  maxReceiveCount?: number;
  /** Its other properties with a plain value (VisibilityTimeout, FifoQueue, …), as SQS attribute strings. */
  attributes: Record<string, string>;
}

export interface ServiceDescription {
  service: string;
  stage: string;
  region: string;
  functions: DeclaredFunction[];
  queues: DeclaredQueue[];
  /** Every AWS::Kinesis::Stream in `resources`. */
  streams: DeclaredStream[];
  /** The stage's `custom.stages.<stage>.sqsVisibilityTimeout`, when set: every queue's visibility timeout there. */
  stageVisibilityTimeout?: number;
  /** The deployed name of a declared function; throws for a key serverless.yml does not declare. */
  functionName(key: string): string;
  /** A declared queue, by logical id; throws for one serverless.yml does not declare. */
  queue(logicalId: string): DeclaredQueue;
  /** A declared Kinesis stream, by logical id; throws for one serverless.yml does not declare. */
  stream(logicalId: string): DeclaredStream;
  /**
   * A function's environment as plain strings: a `Ref` to a declared queue becomes that queue's URL on `endpoint`
   * (default: the region's SQS endpoint in the local account), anything else that is not a string is left out.
   */
  environmentOf(key: string, endpoint?: string): Record<string, string>;
}

interface PrintedFunction {
  name?: string;
  handler?: string;
  timeout?: number;
  environment?: Record<string, unknown>;
  events?: Record<string, unknown>[];
}

/** What `serverless print --format json` gives (the parts read here). */
export interface PrintedConfig {
  service: string;
  provider: { stage: string; region: string; timeout?: number };
  custom?: { stages?: Record<string, { sqsVisibilityTimeout?: unknown } | undefined> };
  functions?: Record<string, PrintedFunction>;
  resources?: { Resources?: Record<string, { Type?: string; Properties?: Record<string, unknown> }> };
}

const described = new Map<string, ServiceDescription>();

/** The service for `stage`, read once per process and stage (`serverless print` takes about 1.5 s). */
export function describeService(stage: string, cwd = PROJECT_ROOT): ServiceDescription {
  const key = `${cwd}\0${stage}`;
  let description = described.get(key);
  if (!description) {
    description = fromPrintedConfig(printServiceConfig(stage, cwd));
    described.set(key, description);
  }
  return description;
}

/** serverless.yml resolved for `stage` by the framework itself (`serverless print`). */
export function printServiceConfig(stage: string, cwd = PROJECT_ROOT): PrintedConfig {
  const cli = resolve(cwd, 'node_modules', 'osls', 'bin', 'serverless.js');
  try {
    const out = execFileSync(process.execPath, [cli, 'print', '--stage', stage, '--format', 'json'], {
      cwd,
      encoding: 'utf8',
      timeout: 60_000,
      maxBuffer: 16 * 1024 * 1024,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return JSON.parse(out.slice(out.indexOf('{'))) as PrintedConfig;
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new Error(`could not read serverless.yml with \`serverless print --stage ${stage}\`${stderr ? `:\n${stderr}` : `: ${(error as Error).message}`}`, {
      cause: error,
    });
  }
}

/** The description of a printed (resolved) configuration. */
export function fromPrintedConfig(config: PrintedConfig): ServiceDescription {
  const { service } = config;
  const { stage, region } = config.provider;
  const resources = config.resources?.Resources ?? {};
  const queues: DeclaredQueue[] = Object.entries(resources)
    .filter(([, resource]) => resource.Type === 'AWS::SQS::Queue')
    .map(([logicalId, resource]) => {
      const { QueueName, RedrivePolicy, ...others } = resource.Properties ?? {};
      const redrive = RedrivePolicy as { deadLetterTargetArn?: unknown; maxReceiveCount?: unknown } | undefined;
      const attributes: Record<string, string> = {};
      for (const [name, value] of Object.entries(others)) {
        if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') attributes[name] = String(value);
      }
      return {
        logicalId,
        name: typeof QueueName === 'string' ? QueueName : `${service}-${stage}-${logicalId}`,
        deadLetterQueue: logicalIdOf(redrive?.deadLetterTargetArn),
        maxReceiveCount: redrive?.maxReceiveCount === undefined ? undefined : Number(redrive.maxReceiveCount),
        attributes,
      };
    });
  const streams: DeclaredStream[] = Object.entries(resources)
    .filter(([, resource]) => resource.Type === 'AWS::Kinesis::Stream')
    .map(([logicalId, resource]) => {
      const { Name, ShardCount } = resource.Properties ?? {};
      const shards = Number(ShardCount);
      return {
        logicalId,
        name: typeof Name === 'string' ? Name : `${service}-${stage}-${logicalId}`,
        shardCount: Number.isInteger(shards) && shards > 0 ? shards : 1,
      };
    });
  const streamIds = new Set(streams.map((declared) => declared.logicalId));
  const functions: DeclaredFunction[] = Object.entries(config.functions ?? {}).map(([key, fn]) => {
    const events = fn.events ?? [];
    const sqsEvents = events.flatMap((event) => sqsEventOf(event.sqs));
    const kinesisEvents = events.flatMap((event) => kinesisEventOf(event.stream, streamIds));
    return {
      key,
      name: fn.name ?? `${service}-${stage}-${key}`,
      handler: fn.handler ?? '',
      triggers: events.flatMap((event) => Object.keys(event)),
      consumes: sqsEvents.map((event) => event.queue),
      sqsEvents,
      kinesisEvents,
      timeout: Number(fn.timeout ?? config.provider.timeout ?? 6),
      environment: fn.environment ?? {},
    };
  });
  const visibility = Number(config.custom?.stages?.[stage]?.sqsVisibilityTimeout);

  const queue = (logicalId: string) => {
    const found = queues.find((candidate) => candidate.logicalId === logicalId);
    if (!found) throw new Error(`serverless.yml declares no queue ${logicalId} (it has: ${queues.map((q) => q.logicalId).join(', ') || 'none'})`);
    return found;
  };
  const stream = (logicalId: string) => {
    const found = streams.find((candidate) => candidate.logicalId === logicalId);
    if (!found) throw new Error(`serverless.yml declares no Kinesis stream ${logicalId} (it has: ${streams.map((s) => s.logicalId).join(', ') || 'none'})`);
    return found;
  };
  const declaredFunction = (key: string) => {
    const found = functions.find((candidate) => candidate.key === key);
    if (!found) throw new Error(`serverless.yml declares no function ${key} (it has: ${functions.map((f) => f.key).join(', ') || 'none'})`);
    return found;
  };
  return {
    service,
    stage,
    region,
    functions,
    queues,
    streams,
    stageVisibilityTimeout: Number.isInteger(visibility) && visibility >= 0 ? visibility : undefined,
    functionName: (key) => declaredFunction(key).name,
    queue,
    stream,
    environmentOf(key, endpoint = `https://sqs.${region}.amazonaws.com`) {
      const variables: Record<string, string> = {};
      for (const [name, value] of Object.entries(declaredFunction(key).environment)) {
        if (typeof value === 'string') {
          variables[name] = value;
          continue;
        }
        const ref = (value as { Ref?: unknown } | null)?.Ref;
        const referenced = typeof ref === 'string' ? queues.find((candidate) => candidate.logicalId === ref) : undefined;
        if (referenced) variables[name] = `${endpoint}/${LOCAL_ACCOUNT_ID}/${referenced.name}`;
      }
      return variables;
    },
  };
}

/** An `sqs` event as serverless.yml writes it (an ARN alone, or an object with settings); none for an ARN not in `resources`. */
function sqsEventOf(sqs: unknown): DeclaredSqsEvent[] {
  const settings = typeof sqs === 'object' && sqs !== null && !('Fn::GetAtt' in sqs) && !('Ref' in sqs) ? (sqs as Record<string, unknown>) : { arn: sqs };
  const queue = logicalIdOf(settings.arn);
  if (!queue) return [];
  return [
    {
      queue,
      batchSize: Number(settings.batchSize ?? 10),
      maximumBatchingWindow: Number(settings.maximumBatchingWindow ?? 0),
      reportBatchItemFailures: settings.functionResponseType === 'ReportBatchItemFailures',
      enabled: settings.enabled !== false && settings.enabled !== 'false',
    },
  ];
}

/**
 * A `stream` event as serverless.yml writes it (an ARN alone, or an object with settings) on one of `streams`; none
 * for a DynamoDB stream or an ARN not in `resources`.
 */
function kinesisEventOf(event: unknown, streams: Set<string>): DeclaredKinesisEvent[] {
  if (event === undefined) return [];
  const settings = isSettings(event) ? event : { arn: event };
  const stream = logicalIdOf(settings.arn);
  if (!stream || !streams.has(stream) || (settings.type !== undefined && settings.type !== 'kinesis')) return [];
  const onFailure = (settings.destinations as { onFailure?: unknown } | undefined)?.onFailure;
  const retries = Number(settings.maximumRetryAttempts ?? -1);
  return [
    {
      stream,
      batchSize: Number(settings.batchSize ?? 100),
      maximumBatchingWindow: Number(settings.maximumBatchingWindow ?? 0),
      startingPosition: typeof settings.startingPosition === 'string' ? settings.startingPosition : 'LATEST',
      reportBatchItemFailures: settings.functionResponseType === 'ReportBatchItemFailures',
      maximumRetryAttempts: Number.isInteger(retries) && retries >= 0 ? retries : -1,
      bisectBatchOnFunctionError: settings.bisectBatchOnFunctionError === true || settings.bisectBatchOnFunctionError === 'true',
      // `onFailure: <arn>` or `onFailure: { arn, type }`.
      onFailureQueue: logicalIdOf(isSettings(onFailure) ? onFailure.arn : onFailure),
      enabled: settings.enabled !== false && settings.enabled !== 'false',
    },
  ];
}

/** An event's settings object, as opposed to a bare ARN (a string or a CloudFormation function). */
function isSettings(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !('Fn::GetAtt' in value) && !('Ref' in value);
}

/** `{ "Fn::GetAtt": ["OrdersQueue", "Arn"] }` or `!Ref OrdersQueue` → `OrdersQueue`. */
function logicalIdOf(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const getAtt = (value as { 'Fn::GetAtt'?: unknown })['Fn::GetAtt'];
  if (Array.isArray(getAtt) && typeof getAtt[0] === 'string') return getAtt[0];
  if (typeof getAtt === 'string') return getAtt.split('.')[0];
  const ref = (value as { Ref?: unknown }).Ref;
  return typeof ref === 'string' ? ref : undefined;
}
