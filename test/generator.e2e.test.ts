import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeService } from '../scripts/offline/service';
import { parseArguments, TRIGGERS } from '../scripts/new';

// `npm run new` in a copy of the project: every trigger's function is generated, then the copy must typecheck,
// lint, pass the generated unit tests, package, and declare what the offline stack needs.
const ROOT = resolve(__dirname, '..');
// Names no project is likely to have already (the copy holds the project's own functions, generated ones included).
const GENERATED = [
  ['sqs', 'gen-test-queue-worker'],
  ['http', 'gen-test-http-endpoint'],
  ['invoke', 'gen-test-invoked'],
  ['sns', 'gen-test-sns-subscriber'],
  ['eventbridge', 'gen-test-event-rule'],
  ['kinesis', 'gen-test-stream-consumer'],
  ['dynamodb', 'gen-test-table-consumer'],
  ['http-stream', 'gen-test-stream-endpoint'],
  ['step-functions', 'gen-test-task'],
] as const;
let copy: string;

/** Runs a command in the copy; resolves with its exit code and output instead of rejecting. */
function run(command: string, args: string[], timeout = 120_000): Promise<{ code: number | null; output: string }> {
  return new Promise((done) => {
    const child = execFile(command, args, { cwd: copy, timeout, env: { ...process.env, ESBUILD_WORK_FOLDER: '.esbuild-generator-test' } });
    let output = '';
    child.stdout!.on('data', (chunk) => (output += chunk));
    child.stderr!.on('data', (chunk) => (output += chunk));
    child.on('close', (code) => done({ code, output }));
  });
}
const bin = (name: string) => join(ROOT, 'node_modules', '.bin', name);

beforeAll(async () => {
  copy = await mkdtemp(join(tmpdir(), 'traced-generator-'));
  for (const entry of [
    'serverless.yml',
    'package.json',
    'tsconfig.json',
    'vitest.config.mts',
    'eslint.config.mjs',
    '.prettierrc.json',
    'functions',
    'lib',
    'scripts',
    'extension',
    'collector',
  ]) {
    await cp(join(ROOT, entry), join(copy, entry), { recursive: true });
  }
  for (const file of ['setup.ts', 'global-setup.ts', 'service.ts', 'trace-ids.ts']) await cp(join(ROOT, 'test', file), join(copy, 'test', file));
  await symlink(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
  for (const [trigger, name] of GENERATED) {
    const { code, output } = await run(bin('tsx'), ['scripts/new.ts', trigger, name]);
    if (code !== 0) throw new Error(`npm run new -- ${trigger} ${name} failed:\n${output}`);
  }
}, 180_000);

afterAll(async () => {
  if (copy) await rm(copy, { recursive: true, force: true });
});

describe('npm run new', () => {
  it('writes a handler and its unit test for every trigger', async () => {
    expect([...TRIGGERS].sort()).toEqual(GENERATED.map(([trigger]) => trigger).sort());
    for (const [, name] of GENERATED) {
      expect((await stat(join(copy, 'functions', `${name}.ts`))).isFile()).toBe(true);
      expect((await stat(join(copy, 'test', 'functions', `${name}.test.ts`))).isFile()).toBe(true);
    }
    // The handlers never import OpenTelemetry: the kit's wrappers do the tracing.
    for (const [, name] of GENERATED) expect(await readFile(join(copy, 'functions', `${name}.ts`), 'utf8')).not.toContain('@opentelemetry');
  });

  it('generates code that typechecks, lints and is formatted', { timeout: 120_000 }, async () => {
    const files = GENERATED.flatMap(([, name]) => [`functions/${name}.ts`, `test/functions/${name}.test.ts`]);
    const typecheck = await run(bin('tsc'), ['--noEmit', '-p', '.']);
    expect(typecheck.output).toBe('');
    expect(typecheck.code).toBe(0);
    expect(await run(bin('eslint'), files)).toMatchObject({ code: 0 });
    expect(await run(bin('prettier'), ['--check', ...files, 'serverless.yml'])).toMatchObject({ code: 0 });
  });

  it("generates unit tests that pass: each function continues its caller's trace", { timeout: 120_000 }, async () => {
    const { code, output } = await run(bin('vitest'), ['run', ...GENERATED.map(([, name]) => `test/functions/${name}.test.ts`)]);
    expect(output).toMatch(new RegExp(`Tests\\s+.*${GENERATED.length} passed`));
    expect(code).toBe(0);
  });

  it('declares each function with its own least-privilege role, and the sqs one with its queue and dead-letter queue', async () => {
    const service = describeService('offline', copy);
    const worker = service.functions.find((fn) => fn.key === 'gen-test-queue-worker')!;
    expect(worker.consumes).toEqual(['GenTestQueueWorkerQueue']);
    expect(service.queue('GenTestQueueWorkerQueue')).toMatchObject({ deadLetterQueue: 'GenTestQueueWorkerDeadLetterQueue', maxReceiveCount: 3 });
    expect(service.functions.find((fn) => fn.key === 'gen-test-http-endpoint')!.triggers).toEqual(['httpApi']);
    expect(service.functions.find((fn) => fn.key === 'gen-test-invoked')!.triggers).toEqual([]);
    expect(service.functions.find((fn) => fn.key === 'gen-test-sns-subscriber')!.triggers).toEqual(['sns']);
    expect(service.functions.find((fn) => fn.key === 'gen-test-event-rule')!.triggers).toEqual(['eventBridge']);
    expect(service.functions.find((fn) => fn.key === 'gen-test-stream-consumer')!.triggers).toEqual(['stream']);
    expect(service.functions.find((fn) => fn.key === 'gen-test-table-consumer')!.triggers).toEqual(['stream']);
    // A streaming function is reached through its own URL, a task through its state machine, not an event.
    expect(service.functions.find((fn) => fn.key === 'gen-test-stream-endpoint')!.triggers).toEqual([]);
    expect(service.functions.find((fn) => fn.key === 'gen-test-task')!.triggers).toEqual([]);
  });

  it('packages every generated function, the queue wired to its consumer and nothing granted beyond it', { timeout: 120_000 }, async () => {
    const out = join(copy, '.serverless-test');
    const { code, output } = await run(process.execPath, [
      join(ROOT, 'node_modules', 'osls', 'bin', 'serverless.js'),
      'package',
      '--stage',
      'dev',
      '--package',
      out,
    ]);
    expect(code, output).toBe(0);
    for (const [, name] of GENERATED) expect((await stat(join(out, `${name}.zip`))).size).toBeGreaterThan(0);
    const { Resources: resources } = JSON.parse(await readFile(join(out, 'cloudformation-template-update-stack.json'), 'utf8'));
    expect(resources.GenTestQueueWorkerQueue.Properties.RedrivePolicy.deadLetterTargetArn).toEqual({
      'Fn::GetAtt': ['GenTestQueueWorkerDeadLetterQueue', 'Arn'],
    });
    const mapping = Object.values(resources as Record<string, { Type: string; Properties: Record<string, unknown> }>).find(
      (resource) =>
        resource.Type === 'AWS::Lambda::EventSourceMapping' && JSON.stringify(resource.Properties.EventSourceArn).includes('GenTestQueueWorkerQueue'),
    );
    expect(mapping?.Properties).toMatchObject({
      FunctionName: { 'Fn::GetAtt': ['GenDashtestDashqueueDashworkerLambdaFunction', 'Arn'] },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    const granted = (role: string) =>
      resources[role].Properties.Policies.flatMap((policy: { PolicyDocument: { Statement: unknown[] } }) => policy.PolicyDocument.Statement)
        .filter((statement: { Effect?: string }) => statement.Effect === 'Allow')
        .map((statement: { Action: unknown; Resource: unknown }) => [statement.Action, statement.Resource]);
    expect(granted('GenTestQueueWorkerRole')).toEqual([
      [['logs:CreateLogStream', 'logs:PutLogEvents'], { 'Fn::GetAtt': ['GenDashtestDashqueueDashworkerLogGroup', 'Arn'] }],
      [['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'], { 'Fn::GetAtt': ['GenTestQueueWorkerQueue', 'Arn'] }],
    ]);
    // The stream consumer: an on-demand stream, its mapping reporting batch item failures from the latest record on,
    // its failed batches described in a queue, and its role allowed to read that stream and send to that queue alone.
    expect(resources.GenTestStreamConsumerStream).toMatchObject({
      Type: 'AWS::Kinesis::Stream',
      Properties: { StreamModeDetails: { StreamMode: 'ON_DEMAND' } },
    });
    expect(resources.GenTestStreamConsumerStream.Properties.ShardCount).toBeUndefined();
    const streamMapping = Object.values(resources as Record<string, { Type: string; Properties: Record<string, unknown> }>).find(
      (resource) =>
        resource.Type === 'AWS::Lambda::EventSourceMapping' && JSON.stringify(resource.Properties.EventSourceArn).includes('GenTestStreamConsumerStream'),
    );
    expect(streamMapping?.Properties).toMatchObject({
      FunctionName: { 'Fn::GetAtt': ['GenDashtestDashstreamDashconsumerLambdaFunction', 'Arn'] },
      EventSourceArn: { 'Fn::GetAtt': ['GenTestStreamConsumerStream', 'Arn'] },
      StartingPosition: 'LATEST',
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      MaximumRetryAttempts: 3,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': ['GenTestStreamConsumerFailedRecordsQueue', 'Arn'] } } },
    });
    expect(granted('GenTestStreamConsumerRole')).toEqual([
      [['logs:CreateLogStream', 'logs:PutLogEvents'], { 'Fn::GetAtt': ['GenDashtestDashstreamDashconsumerLogGroup', 'Arn'] }],
      [
        ['kinesis:GetRecords', 'kinesis:GetShardIterator', 'kinesis:DescribeStream', 'kinesis:DescribeStreamSummary', 'kinesis:ListShards'],
        { 'Fn::GetAtt': ['GenTestStreamConsumerStream', 'Arn'] },
      ],
      [['sqs:SendMessage'], { 'Fn::GetAtt': ['GenTestStreamConsumerFailedRecordsQueue', 'Arn'] }],
    ]);
    // The table's stream consumer: an on-demand table streaming both images, its mapping reporting batch item
    // failures, its failed batches described in a queue, and its role allowed to read that stream alone.
    expect(resources.GenTestTableConsumerTable).toMatchObject({
      Type: 'AWS::DynamoDB::Table',
      Properties: { BillingMode: 'PAY_PER_REQUEST', StreamSpecification: { StreamViewType: 'NEW_AND_OLD_IMAGES' } },
    });
    const tableMapping = Object.values(resources as Record<string, { Type: string; Properties: Record<string, unknown> }>).find(
      (resource) =>
        resource.Type === 'AWS::Lambda::EventSourceMapping' && JSON.stringify(resource.Properties.EventSourceArn).includes('GenTestTableConsumerTable'),
    );
    expect(tableMapping?.Properties).toMatchObject({
      FunctionName: { 'Fn::GetAtt': ['GenDashtestDashtableDashconsumerLambdaFunction', 'Arn'] },
      EventSourceArn: { 'Fn::GetAtt': ['GenTestTableConsumerTable', 'StreamArn'] },
      StartingPosition: 'LATEST',
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      MaximumRetryAttempts: 3,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': ['GenTestTableConsumerFailedRecordsQueue', 'Arn'] } } },
    });
    expect(granted('GenTestTableConsumerRole')).toEqual([
      [['logs:CreateLogStream', 'logs:PutLogEvents'], { 'Fn::GetAtt': ['GenDashtestDashtableDashconsumerLogGroup', 'Arn'] }],
      [
        ['dynamodb:GetRecords', 'dynamodb:GetShardIterator', 'dynamodb:DescribeStream', 'dynamodb:ListStreams'],
        { 'Fn::GetAtt': ['GenTestTableConsumerTable', 'StreamArn'] },
      ],
      [['sqs:SendMessage'], { 'Fn::GetAtt': ['GenTestTableConsumerFailedRecordsQueue', 'Arn'] }],
    ]);
    expect(granted('GenTestHttpEndpointRole')).toEqual([
      [['logs:CreateLogStream', 'logs:PutLogEvents'], { 'Fn::GetAtt': ['GenDashtestDashhttpDashendpointLogGroup', 'Arn'] }],
    ]);
    // The streaming function's URL answers as the response is written; its role has its log group alone.
    const url = Object.values(resources as Record<string, { Type: string; Properties: Record<string, unknown> }>).find(
      (resource) => resource.Type === 'AWS::Lambda::Url' && JSON.stringify(resource.Properties.TargetFunctionArn).includes('GenDashtestDashstreamDashendpoint'),
    );
    expect(url?.Properties).toMatchObject({ InvokeMode: 'RESPONSE_STREAM' });
    expect(granted('GenTestStreamEndpointRole')).toEqual([
      [['logs:CreateLogStream', 'logs:PutLogEvents'], { 'Fn::GetAtt': ['GenDashtestDashstreamDashendpointLogGroup', 'Arn'] }],
    ]);
    // The task's state machine: traced, its one Task state invoking that function with the trace context passed on,
    // and a role allowed to invoke that function alone; the function's own role has its log group alone.
    expect(resources.GenTestTaskStateMachine).toMatchObject({
      Type: 'AWS::StepFunctions::StateMachine',
      Properties: {
        RoleArn: { 'Fn::GetAtt': ['GenTestTaskStateMachineRole', 'Arn'] },
        TracingConfiguration: { Enabled: true },
        DefinitionSubstitutions: { GenTestTaskArn: { 'Fn::GetAtt': ['GenDashtestDashtaskLambdaFunction', 'Arn'] } },
      },
    });
    const definition = resources.GenTestTaskStateMachine.Properties.Definition ?? JSON.parse(resources.GenTestTaskStateMachine.Properties.DefinitionString);
    expect(definition.States.GenTestTask).toMatchObject({
      Type: 'Task',
      Resource: 'arn:aws:states:::lambda:invoke',
      Parameters: { FunctionName: '${GenTestTaskArn}', Payload: { 'id.$': '$.id', 'traced_lambda_trace.$': '$.traced_lambda_trace' } },
      ResultPath: '$.genTestTask',
    });
    expect(granted('GenTestTaskStateMachineRole')).toEqual([
      [
        'lambda:InvokeFunction',
        [
          { 'Fn::GetAtt': ['GenDashtestDashtaskLambdaFunction', 'Arn'] },
          { 'Fn::Join': [':', [{ 'Fn::GetAtt': ['GenDashtestDashtaskLambdaFunction', 'Arn'] }, '*']] },
        ],
      ],
      [['xray:PutTraceSegments', 'xray:PutTelemetryRecords', 'xray:GetSamplingRules', 'xray:GetSamplingTargets'], '*'],
    ]);
    expect(granted('GenTestTaskRole')).toEqual([[['logs:CreateLogStream', 'logs:PutLogEvents'], { 'Fn::GetAtt': ['GenDashtestDashtaskLogGroup', 'Arn'] }]]);
    // Every reference in the template points at a resource it declares.
    const declared = new Set(Object.keys(resources));
    const referenced = new Set<string>();
    JSON.stringify(resources, (key, value) => {
      if (key === 'Fn::GetAtt') referenced.add(Array.isArray(value) ? value[0] : String(value).split('.')[0]);
      if (key === 'Ref' && typeof value === 'string' && !value.startsWith('AWS::')) referenced.add(value);
      return value;
    });
    expect([...referenced].filter((id) => !declared.has(id))).toEqual([]);
  });

  it('refuses a name that exists, an unknown trigger and a malformed name, saying what to give', async () => {
    const again = await run(bin('tsx'), ['scripts/new.ts', 'sqs', 'gen-test-queue-worker']);
    expect(again.code).toBe(1);
    expect(again.output).toContain('gen-test-queue-worker.ts exists already');
    expect(() => parseArguments(['queue', 'x'])).toThrow(
      'unknown trigger "queue"; usage: npm run new -- <http|sqs|invoke|sns|eventbridge|kinesis|dynamodb|http-stream|step-functions> <name>',
    );
    expect(() => parseArguments(['sqs', 'Ship_Order'])).toThrow('"Ship_Order" is not a function name');
    expect(() => parseArguments(['sqs'])).toThrow('usage: npm run new');
  });
});
