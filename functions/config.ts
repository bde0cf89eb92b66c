/** What the functions read from their environment, once per process (serverless.yml sets these per stage). */
export interface FunctionConfig {
  ordersQueueUrl?: string;
  notifyCustomerFunction?: string;
  /** Set only offline: the SQS emulator. */
  sqsEndpoint?: string;
  /** Set only offline: serverless-offline's Lambda invoke endpoint. */
  lambdaEndpoint?: string;
  /** Set only offline: the Kinesis emulator (kinesalite). */
  kinesisEndpoint?: string;
}

export function readFunctionConfig(env: Record<string, string | undefined> = process.env): FunctionConfig {
  return {
    ordersQueueUrl: env.ORDERS_QUEUE_URL || undefined,
    notifyCustomerFunction: env.NOTIFY_CUSTOMER_FUNCTION || undefined,
    sqsEndpoint: env.SQS_ENDPOINT || undefined,
    lambdaEndpoint: env.LAMBDA_ENDPOINT || undefined,
    kinesisEndpoint: env.KINESIS_ENDPOINT || undefined,
  };
}

/**
 * SDK client options: the deployed functions use the Lambda role and the region's endpoints; offline, an
 * endpoint override points at the local emulator, which takes any credentials.
 */
export function awsClientOptions(endpoint: string | undefined) {
  if (!endpoint) return {};
  return { endpoint, credentials: { accessKeyId: 'offline', secretAccessKey: 'offline' } };
}

/**
 * Kinesis client options, e.g. `new KinesisClient(kinesisClientOptions(config.kinesisEndpoint))` in a function that
 * writes to a stream: deployed, none (the region's endpoint, over HTTP/2 as the SDK chooses); offline, the emulator
 * over HTTP/1.1, since the Kinesis client speaks HTTP/2 by default and the emulator does not.
 */
export function kinesisClientOptions(endpoint: string | undefined) {
  if (!endpoint) return {};
  // Loaded offline only: serverless.yml keeps it out of the bundles (deployed, this line never runs).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { NodeHttpHandler } = require('@smithy/node-http-handler') as typeof import('@smithy/node-http-handler');
  return { ...awsClientOptions(endpoint), requestHandler: new NodeHttpHandler() };
}

/** A required setting; its absence is a deployment mistake, reported as such. */
export function required(value: string | undefined, name: string): string {
  if (!value) throw new Error(`${name} is not set: deploy with serverless.yml, or set it in the environment`);
  return value;
}
