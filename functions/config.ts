/** What the functions read from their environment, once per process (serverless.yml sets these per stage). */
export interface FunctionConfig {
  ordersQueueUrl?: string;
  notifyCustomerFunction?: string;
  /** Set only offline: the SQS emulator. */
  sqsEndpoint?: string;
  /** Set only offline: serverless-offline's Lambda invoke endpoint. */
  lambdaEndpoint?: string;
}

export function readFunctionConfig(env: Record<string, string | undefined> = process.env): FunctionConfig {
  return {
    ordersQueueUrl: env.ORDERS_QUEUE_URL || undefined,
    notifyCustomerFunction: env.NOTIFY_CUSTOMER_FUNCTION || undefined,
    sqsEndpoint: env.SQS_ENDPOINT || undefined,
    lambdaEndpoint: env.LAMBDA_ENDPOINT || undefined,
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

/** A required setting; its absence is a deployment mistake, reported as such. */
export function required(value: string | undefined, name: string): string {
  if (!value) throw new Error(`${name} is not set: deploy with serverless.yml, or set it in the environment`);
  return value;
}
