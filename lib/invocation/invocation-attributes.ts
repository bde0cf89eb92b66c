// The FaaS attributes every invocation's entry span carries, cold start included.
import type { Attributes } from '@opentelemetry/api';
import type { Context as LambdaContext } from 'aws-lambda';
import { ATTR_AWS_LAMBDA_INVOKED_ARN, ATTR_CLOUD_ACCOUNT_ID, ATTR_FAAS_COLDSTART, ATTR_FAAS_INVOCATION_ID, ATTR_FAAS_TRIGGER } from '../semconv';

// Per process, not per invocation: only the first invocation a sandbox runs pays the cold start.
let coldStartPending = true;

/**
 * Environments Lambda initialises before any traffic reaches them (AWS_LAMBDA_INITIALIZATION_TYPE): no invocation
 * there waits for the init, so none is a cold start (and Managed Instances, with a worker per thread, would
 * otherwise report one per worker).
 */
const INITIALIZED_AHEAD = ['provisioned-concurrency', 'lambda-managed-instances'];

/** True for the first invocation of this process, false afterwards, and always where Lambda initialises ahead. */
export function takeColdStart(initializationType: string | undefined): boolean {
  const cold = coldStartPending && !INITIALIZED_AHEAD.includes(initializationType ?? '');
  coldStartPending = false;
  return cold;
}

/** The FaaS attributes every invocation span carries. */
export function invocationAttributes(lambdaContext: LambdaContext, trigger: string, coldStart: boolean): Attributes {
  // Built by assignment into one object: spreading objects with computed keys costs microseconds per span.
  const attributes: Attributes = {};
  attributes[ATTR_FAAS_TRIGGER] = trigger;
  attributes[ATTR_FAAS_COLDSTART] = coldStart;
  if (lambdaContext.awsRequestId) attributes[ATTR_FAAS_INVOCATION_ID] = lambdaContext.awsRequestId;
  const arn = lambdaContext.invokedFunctionArn;
  if (arn) {
    attributes[ATTR_AWS_LAMBDA_INVOKED_ARN] = arn;
    // arn:aws:lambda:region:account-id:function:name[:alias]
    const account = arn.split(':')[4];
    if (account) attributes[ATTR_CLOUD_ACCOUNT_ID] = account;
  }
  return attributes;
}

/** The request id of an invocation, when the runtime gave one: the id its spans are exported under. */
export function requestIdOf(lambdaContext: LambdaContext | undefined): string | undefined {
  try {
    const id = lambdaContext?.awsRequestId;
    return typeof id === 'string' && id !== '' ? id : undefined;
  } catch {
    return undefined;
  }
}
