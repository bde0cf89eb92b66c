import { SpanKind } from '@opentelemetry/api';
import type {
  DynamoDBClient,
  PutItemCommandInput,
  PutItemCommandOutput,
  TransactWriteItem,
  TransactWriteItemsCommandInput,
  TransactWriteItemsCommandOutput,
  UpdateItemCommandInput,
  UpdateItemCommandOutput,
} from '@aws-sdk/client-dynamodb';
import type { Context } from '@opentelemetry/api';
import { loadDynamoDbCommands } from './aws-sdk';
import { runOutgoingCall, type ForwardOptions } from './parent';
import { dynamoDbClientSpan, dynamoDbTableOf, injectIntoPutItem, injectIntoUpdateItem } from '../carriers/dynamodb-stream';

/**
 * Writes an item with a CLIENT `PutItem <table>` span around the call and the span's context in the item's reserved
 * attribute, which the table's stream delivers to `traceDynamoDbStreamRecords` (docs/reference.md, "DynamoDB
 * Streams"). The SDK's result and errors pass through unchanged.
 */
export async function putItem(client: DynamoDBClient, input: PutItemCommandInput, options: ForwardOptions = {}): Promise<PutItemCommandOutput> {
  const { name, attributes } = dynamoDbClientSpan('PutItem', tablesOf([input.TableName]));
  return runOutgoingCall({
    name,
    kind: SpanKind.CLIENT,
    attributes,
    options,
    send: (callContext) => client.send(new (loadDynamoDbCommands().PutItemCommand)(injectIntoPutItem(input, callContext))),
  });
}

/**
 * Updates an item with a CLIENT `UpdateItem <table>` span around the call; the update also sets the reserved
 * attribute to the span's context (one assignment more in the SET clause, under placeholders of its own). The SDK's
 * result and errors pass through unchanged.
 */
export async function updateItem(client: DynamoDBClient, input: UpdateItemCommandInput, options: ForwardOptions = {}): Promise<UpdateItemCommandOutput> {
  const { name, attributes } = dynamoDbClientSpan('UpdateItem', tablesOf([input.TableName]));
  return runOutgoingCall({
    name,
    kind: SpanKind.CLIENT,
    attributes,
    options,
    send: (callContext) => client.send(new (loadDynamoDbCommands().UpdateItemCommand)(injectIntoUpdateItem(input, callContext))),
  });
}

/**
 * Runs a transaction with a CLIENT `TransactWriteItems` span (named after the table when it writes one only) around
 * the call; each Put and Update entry carries the span's context (ConditionCheck and Delete entries write no item).
 * The SDK's result and errors pass through unchanged.
 */
export async function transactWriteItems(
  client: DynamoDBClient,
  input: TransactWriteItemsCommandInput,
  options: ForwardOptions = {},
): Promise<TransactWriteItemsCommandOutput> {
  const entries = input.TransactItems ?? [];
  const tables = tablesOf(entries.map((entry) => (entry.Put ?? entry.Update ?? entry.Delete ?? entry.ConditionCheck)?.TableName));
  const { name, attributes } = dynamoDbClientSpan('TransactWriteItems', tables, entries.length);
  return runOutgoingCall({
    name,
    kind: SpanKind.CLIENT,
    attributes,
    options,
    send: (callContext) =>
      client.send(new (loadDynamoDbCommands().TransactWriteItemsCommand)({ ...input, TransactItems: entries.map((entry) => tracedEntry(entry, callContext)) })),
  });
}

function tracedEntry(entry: TransactWriteItem, callContext: Context): TransactWriteItem {
  if (entry?.Put) return { ...entry, Put: injectIntoPutItem(entry.Put, callContext) };
  if (entry?.Update) return { ...entry, Update: injectIntoUpdateItem(entry.Update, callContext) };
  return entry;
}

/** The distinct table names of the calls' `TableName`s (names or ARNs), in order. */
function tablesOf(names: (string | undefined)[]): string[] {
  const tables = names.map(dynamoDbTableOf).filter((table): table is string => table !== undefined);
  return [...new Set(tables)];
}
