import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { describeService, fromPrintedConfig, type PrintedConfig } from '../../scripts/offline/service';
import { devService } from '../service';

const ROOT = resolve(__dirname, '..', '..');
const dirs: string[] = [];

afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('the service as serverless.yml declares it', () => {
  it('names the functions, their triggers and queues, and the queues with their dead-letter queues', () => {
    // Arrange: what `serverless print` gives for a small service
    const printed: PrintedConfig = {
      service: 'shop',
      provider: { stage: 'test', region: 'us-east-2' },
      functions: {
        'take-order': {
          handler: 'functions/take-order.handler',
          events: [{ httpApi: { path: '/orders', method: 'post' } }],
          environment: { QUEUE_URL: { Ref: 'Jobs' }, MODE: 'fast' },
        },
        work: { name: 'custom-worker', handler: 'functions/work.handler', events: [{ sqs: { arn: { 'Fn::GetAtt': ['Jobs', 'Arn'] }, batchSize: 5 } }] },
      },
      resources: {
        Resources: {
          Jobs: {
            Type: 'AWS::SQS::Queue',
            Properties: {
              QueueName: 'shop-test-jobs',
              VisibilityTimeout: 30,
              RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': ['JobsDlq', 'Arn'] }, maxReceiveCount: 5 },
            },
          },
          JobsDlq: { Type: 'AWS::SQS::Queue', Properties: { QueueName: 'shop-test-jobs-dlq' } },
          Role: { Type: 'AWS::IAM::Role', Properties: {} },
        },
      },
    };

    // Act
    const service = fromPrintedConfig(printed);

    // Assert
    expect(service.functions.map(({ key, name, triggers, consumes }) => ({ key, name, triggers, consumes }))).toEqual([
      { key: 'take-order', name: 'shop-test-take-order', triggers: ['httpApi'], consumes: [] },
      { key: 'work', name: 'custom-worker', triggers: ['sqs'], consumes: ['Jobs'] },
    ]);
    expect(service.functions.map(({ sqsEvents, timeout }) => ({ sqsEvents, timeout }))).toEqual([
      { sqsEvents: [], timeout: 6 },
      { sqsEvents: [{ queue: 'Jobs', batchSize: 5, maximumBatchingWindow: 0, reportBatchItemFailures: false, enabled: true }], timeout: 6 },
    ]);
    expect(service.queues).toEqual([
      { logicalId: 'Jobs', name: 'shop-test-jobs', deadLetterQueue: 'JobsDlq', maxReceiveCount: 5, attributes: { VisibilityTimeout: '30' } },
      { logicalId: 'JobsDlq', name: 'shop-test-jobs-dlq', deadLetterQueue: undefined, maxReceiveCount: undefined, attributes: {} },
    ]);
    expect(service.environmentOf('take-order')).toEqual({ QUEUE_URL: 'https://sqs.us-east-2.amazonaws.com/000000000000/shop-test-jobs', MODE: 'fast' });
    expect(service.environmentOf('take-order', 'http://127.0.0.1:9324')).toMatchObject({ QUEUE_URL: 'http://127.0.0.1:9324/000000000000/shop-test-jobs' });
    expect(() => service.functionName('missing')).toThrow('serverless.yml declares no function missing (it has: take-order, work)');
    expect(() => service.queue('Orders')).toThrow('serverless.yml declares no queue Orders');
  });

  it("reads the Kinesis streams and each consumer's stream event with its error handling, leaving DynamoDB streams out", () => {
    // Arrange: what `serverless print` gives for the events `npm run new -- kinesis` and `-- dynamodb` write
    const printed: PrintedConfig = {
      service: 'shop',
      provider: { stage: 'test', region: 'us-east-2' },
      functions: {
        track: {
          handler: 'functions/track.handler',
          events: [
            {
              stream: {
                type: 'kinesis',
                arn: { 'Fn::GetAtt': ['Clicks', 'Arn'] },
                batchSize: 50,
                startingPosition: 'TRIM_HORIZON',
                functionResponseType: 'ReportBatchItemFailures',
                maximumRetryAttempts: 3,
                destinations: { onFailure: { arn: { 'Fn::GetAtt': ['ClicksFailed', 'Arn'] }, type: 'sqs' } },
              },
            },
            { stream: { 'Fn::GetAtt': ['Views', 'Arn'] } },
          ],
        },
        audit: { handler: 'functions/audit.handler', events: [{ stream: { type: 'dynamodb', arn: { 'Fn::GetAtt': ['Table', 'StreamArn'] } } }] },
      },
      resources: {
        Resources: {
          Clicks: { Type: 'AWS::Kinesis::Stream', Properties: { Name: 'shop-test-clicks', StreamModeDetails: { StreamMode: 'ON_DEMAND' } } },
          Views: { Type: 'AWS::Kinesis::Stream', Properties: { ShardCount: 2 } },
          ClicksFailed: { Type: 'AWS::SQS::Queue', Properties: { QueueName: 'shop-test-clicks-failed' } },
          Table: { Type: 'AWS::DynamoDB::Table', Properties: {} },
        },
      },
    };

    // Act
    const service = fromPrintedConfig(printed);

    // Assert
    expect(service.streams).toEqual([
      { logicalId: 'Clicks', name: 'shop-test-clicks', shardCount: 1 },
      { logicalId: 'Views', name: 'shop-test-Views', shardCount: 2 },
    ]);
    expect(service.functions.map((fn) => fn.kinesisEvents)).toEqual([
      [
        {
          stream: 'Clicks',
          batchSize: 50,
          maximumBatchingWindow: 0,
          startingPosition: 'TRIM_HORIZON',
          reportBatchItemFailures: true,
          maximumRetryAttempts: 3,
          bisectBatchOnFunctionError: false,
          onFailureQueue: 'ClicksFailed',
          enabled: true,
        },
        // Lambda's defaults: 100 records, no window, retried until the records expire.
        {
          stream: 'Views',
          batchSize: 100,
          maximumBatchingWindow: 0,
          startingPosition: 'LATEST',
          reportBatchItemFailures: false,
          maximumRetryAttempts: -1,
          bisectBatchOnFunctionError: false,
          onFailureQueue: undefined,
          enabled: true,
        },
      ],
      [],
    ]);
    expect(() => service.stream('Orders')).toThrow('serverless.yml declares no Kinesis stream Orders (it has: Clicks, Views)');
  });

  it("is this project's serverless.yml as the framework resolves it", () => {
    expect(devService.stage).toBe('dev');
    expect(devService.functions.map((fn) => fn.name)).toEqual(devService.functions.map((fn) => `${devService.service}-dev-${fn.key}`));
    const consumer = devService.functions.find((fn) => fn.triggers.includes('sqs'))!;
    expect(devService.queue(consumer.consumes[0]).deadLetterQueue).toBeDefined();
    expect(consumer.sqsEvents).toEqual([
      { queue: consumer.consumes[0], batchSize: 10, maximumBatchingWindow: 1, reportBatchItemFailures: true, enabled: true },
    ]);
    // Deployed, each queue keeps its own visibility timeout; only the offline stage shortens them.
    expect(devService.stageVisibilityTimeout).toBeUndefined();
  });

  it('follows a rename of the service in serverless.yml alone', { timeout: 60_000 }, async () => {
    // Arrange: the project's serverless.yml with another service name, beside the project's node_modules and scripts
    const dir = await mkdtemp(join(tmpdir(), 'traced-renamed-'));
    dirs.push(dir);
    const yml = (await readFile(join(ROOT, 'serverless.yml'), 'utf8')).replace(/^service: .*$/m, 'service: renamed-shop');
    await writeFile(join(dir, 'serverless.yml'), yml);
    await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    await symlink(join(ROOT, 'package.json'), join(dir, 'package.json'));
    // The local plugin serverless.yml lists, and the lib/ it reads the settings with.
    await symlink(join(ROOT, 'scripts'), join(dir, 'scripts'));

    // Act
    const renamed = describeService('offline', dir);

    // Assert
    expect(renamed.service).toBe('renamed-shop');
    expect(renamed.functions.map((fn) => fn.name)).toEqual(devService.functions.map((fn) => `renamed-shop-offline-${fn.key}`));
    expect(renamed.queues.map((queue) => queue.name)).toEqual(
      devService.queues.map((queue) => queue.name.replace(`${devService.service}-dev-`, 'renamed-shop-offline-')),
    );
  });
});
