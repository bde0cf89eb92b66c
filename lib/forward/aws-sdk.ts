/**
 * The AWS SDK command classes, loaded on the first forward call rather than when the function starts: every
 * function imports the kit, and loading an SDK client it never uses would cost tens of milliseconds of cold
 * start. The Lambda runtime provides the SDK; the caller's client comes from the same module, so the commands
 * are the ones its `send` (and aws-sdk-client-mock) expects.
 */
type SqsModule = typeof import('@aws-sdk/client-sqs');
type LambdaModule = typeof import('@aws-sdk/client-lambda');
type KinesisModule = typeof import('@aws-sdk/client-kinesis');
type DynamoDbModule = typeof import('@aws-sdk/client-dynamodb');
type SfnModule = typeof import('@aws-sdk/client-sfn');

let sqs: SqsModule | undefined;
let lambda: LambdaModule | undefined;
let kinesis: KinesisModule | undefined;
let dynamoDb: DynamoDbModule | undefined;
let sfn: SfnModule | undefined;

export function loadSqsCommands(): Pick<SqsModule, 'SendMessageCommand' | 'SendMessageBatchCommand'> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (sqs ??= require('@aws-sdk/client-sqs') as SqsModule);
}

export function loadLambdaCommands(): Pick<LambdaModule, 'InvokeCommand'> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (lambda ??= require('@aws-sdk/client-lambda') as LambdaModule);
}

export function loadKinesisCommands(): Pick<KinesisModule, 'PutRecordCommand' | 'PutRecordsCommand'> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (kinesis ??= require('@aws-sdk/client-kinesis') as KinesisModule);
}

export function loadDynamoDbCommands(): Pick<DynamoDbModule, 'PutItemCommand' | 'UpdateItemCommand' | 'TransactWriteItemsCommand'> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (dynamoDb ??= require('@aws-sdk/client-dynamodb') as DynamoDbModule);
}

export function loadSfnCommands(): Pick<SfnModule, 'StartExecutionCommand' | 'StartSyncExecutionCommand'> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (sfn ??= require('@aws-sdk/client-sfn') as SfnModule);
}
