/**
 * The OpenTelemetry semantic-convention names this kit writes, kept local so that a function bundle does not
 * carry the whole conventions package (it costs more at cold start than the SDK itself). They follow the
 * conventions' v1.44.0 (docs/reference.md, "Semantic conventions").
 */

// Resource
export const ATTR_SERVICE_NAME = 'service.name';
export const ATTR_CLOUD_PROVIDER = 'cloud.provider';
export const ATTR_CLOUD_PLATFORM = 'cloud.platform';
export const ATTR_CLOUD_REGION = 'cloud.region';
export const ATTR_CLOUD_ACCOUNT_ID = 'cloud.account.id';
export const ATTR_FAAS_NAME = 'faas.name';
export const ATTR_FAAS_VERSION = 'faas.version';
export const ATTR_FAAS_INSTANCE = 'faas.instance';
export const ATTR_FAAS_MAX_MEMORY = 'faas.max_memory';

// FaaS server side
export const ATTR_FAAS_TRIGGER = 'faas.trigger';
export const ATTR_FAAS_INVOCATION_ID = 'faas.invocation_id';
export const ATTR_FAAS_COLDSTART = 'faas.coldstart';
export const ATTR_AWS_LAMBDA_INVOKED_ARN = 'aws.lambda.invoked_arn';

// FaaS client side
export const ATTR_FAAS_INVOKED_NAME = 'faas.invoked_name';
export const ATTR_FAAS_INVOKED_PROVIDER = 'faas.invoked_provider';
export const ATTR_FAAS_INVOKED_REGION = 'faas.invoked_region';

// HTTP
export const ATTR_HTTP_REQUEST_METHOD = 'http.request.method';
export const ATTR_HTTP_ROUTE = 'http.route';
export const ATTR_HTTP_RESPONSE_STATUS_CODE = 'http.response.status_code';
export const ATTR_URL_PATH = 'url.path';
export const ATTR_URL_SCHEME = 'url.scheme';
export const ATTR_SERVER_ADDRESS = 'server.address';
export const ATTR_SERVER_PORT = 'server.port';
export const ATTR_URL_FULL = 'url.full';
export const ATTR_CLIENT_ADDRESS = 'client.address';
export const ATTR_USER_AGENT_ORIGINAL = 'user_agent.original';
export const ATTR_ERROR_TYPE = 'error.type';

// Messaging
export const ATTR_MESSAGING_SYSTEM = 'messaging.system';
export const ATTR_MESSAGING_OPERATION_TYPE = 'messaging.operation.type';
export const ATTR_MESSAGING_OPERATION_NAME = 'messaging.operation.name';
export const ATTR_MESSAGING_DESTINATION_NAME = 'messaging.destination.name';
export const ATTR_MESSAGING_MESSAGE_ID = 'messaging.message.id';
export const ATTR_MESSAGING_BATCH_MESSAGE_COUNT = 'messaging.batch.message_count';
export const ATTR_MESSAGING_DESTINATION_PARTITION_ID = 'messaging.destination.partition.id';

// AWS Kinesis (the AWS SDK conventions' stream attribute, set on the messaging spans too)
export const ATTR_AWS_KINESIS_STREAM_NAME = 'aws.kinesis.stream_name';

// Database (a DynamoDB write's CLIENT span) and the AWS SDK conventions' DynamoDB attributes
export const ATTR_DB_SYSTEM_NAME = 'db.system.name';
export const ATTR_DB_OPERATION_NAME = 'db.operation.name';
export const ATTR_DB_OPERATION_BATCH_SIZE = 'db.operation.batch.size';
export const ATTR_AWS_DYNAMODB_TABLE_NAMES = 'aws.dynamodb.table_names';
export const DB_SYSTEM_NAME_AWS_DYNAMODB = 'aws.dynamodb';

// FaaS datasource trigger (a DynamoDB stream record: the table, what happened to the item, and when)
export const ATTR_FAAS_DOCUMENT_COLLECTION = 'faas.document.collection';
export const ATTR_FAAS_DOCUMENT_OPERATION = 'faas.document.operation';
export const ATTR_FAAS_DOCUMENT_TIME = 'faas.document.time';
/** `faas.trigger` of a database's stream; a constant of its own, so that a batch description can name it without a property read. */
export const FAAS_TRIGGER_DATASOURCE = 'datasource';

// AWS Step Functions (the AWS SDK conventions' attribute, on the StartExecution span)
export const ATTR_AWS_STEP_FUNCTIONS_STATE_MACHINE_ARN = 'aws.step_functions.state_machine.arn';

// RPC (the AWS SDK call behind a Lambda invoke). The RPC registry deprecates rpc.system and rpc.service, but the AWS
// SDK client span still requires them (rpc.system = aws-api): the stable rpc.system.name has no AWS value.
export const ATTR_RPC_SYSTEM = 'rpc.system';
export const ATTR_RPC_SERVICE = 'rpc.service';
export const ATTR_RPC_METHOD = 'rpc.method';

export const FAAS_TRIGGER = {
  http: 'http',
  pubsub: 'pubsub',
  other: 'other',
} as const;

export const MESSAGING_SYSTEM_AWS_SQS = 'aws_sqs';
export const MESSAGING_SYSTEM_AWS_SNS = 'aws.sns';
/**
 * The messaging registry (as of @opentelemetry/semantic-conventions 1.45.0) lists no Kinesis value for `messaging.system`, which is open to others: this one is
 * spelled as its `aws_sqs` sibling.
 */
export const MESSAGING_SYSTEM_AWS_KINESIS = 'aws_kinesis';
