import { execFile } from 'node:child_process';
import { appendFile, cp, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devService } from './service';

// `serverless package` as a user runs it before `serverless deploy`, with no AWS credentials at all.
const ROOT = resolve(__dirname, '..');
// Its own build folder: the offline end-to-end test may be building in the default one at the same time.
const WORK_FOLDER = '.esbuild-package-test';
type Resource = { Type: string; Properties: Record<string, any>; DependsOn?: unknown };
interface Template {
  Resources: Record<string, Resource>;
  Conditions: Record<string, unknown>;
}
let template: Template;
let resources: Record<string, Resource>;
let outDir: string;

/** `serverless package --stage dev` into `dir`, with no AWS credentials and only the given OTEL_* variables. */
async function packageService(dir: string, otel: Record<string, string> = {}): Promise<Template> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AWS_ACCESS_KEY_ID: '',
    AWS_SECRET_ACCESS_KEY: '',
    AWS_PROFILE: 'no-such-profile',
    ESBUILD_WORK_FOLDER: WORK_FOLDER,
  };
  for (const name of Object.keys(env)) if (name.startsWith('OTEL_')) delete env[name];
  await promisify(execFile)(process.execPath, [require.resolve('osls/bin/serverless.js'), 'package', '--stage', 'dev', '--package', dir], {
    cwd: ROOT,
    env: { ...env, ...otel },
    timeout: 120_000,
  });
  return JSON.parse(await readFile(join(dir, 'cloudformation-template-update-stack.json'), 'utf8'));
}

/** What CloudFormation makes of a condition in eu-west-1 (the intrinsic functions the template uses). */
function evaluateCondition(node: unknown, conditions: Record<string, unknown>): unknown {
  if (typeof node === 'string') return node;
  const [[name, value]] = Object.entries(node as Record<string, any>);
  if (name === 'Fn::Sub') return String(value).replaceAll('${AWS::Region}', 'eu-west-1');
  if (name === 'Fn::Equals') return evaluateCondition(value[0], conditions) === evaluateCondition(value[1], conditions);
  if (name === 'Fn::And') return value.every((item: unknown) => evaluateCondition(item, conditions) === true);
  if (name === 'Fn::Not') return evaluateCondition(value[0], conditions) !== true;
  if (name === 'Fn::Or') return value.some((item: unknown) => evaluateCondition(item, conditions) === true);
  if (name === 'Condition') return evaluateCondition(conditions[value], conditions);
  throw new Error(`no evaluation for ${name}`);
}

beforeAll(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'traced-package-'));
  template = await packageService(outDir);
  resources = template.Resources;
}, 150_000);

afterAll(async () => {
  await rm(outDir, { recursive: true, force: true });
  await rm(join(ROOT, WORK_FOLDER), { recursive: true, force: true });
});

const ofType = (type: string) => Object.entries(resources).filter(([, resource]) => resource.Type === type);
const statementsOf = (role: string) => resources[role].Properties.Policies.flatMap((policy: any) => policy.PolicyDocument.Statement);

describe('serverless package', () => {
  it('declares the orders queue with a dead-letter queue', () => {
    const queue = resources.OrdersQueue;
    expect(queue.Type).toBe('AWS::SQS::Queue');
    expect(queue.Properties.QueueName).toBe(devService.queue('OrdersQueue').name);
    expect(queue.Properties.RedrivePolicy).toEqual({
      deadLetterTargetArn: { 'Fn::GetAtt': ['OrdersDeadLetterQueue', 'Arn'] },
      maxReceiveCount: 3,
    });
    expect(resources.OrdersDeadLetterQueue.Type).toBe('AWS::SQS::Queue');
  });

  it('declares every function serverless.yml has on Node.js 24, each with its own role', () => {
    const functions = Object.fromEntries(ofType('AWS::Lambda::Function').map(([, fn]) => [fn.Properties.FunctionName, fn.Properties]));
    expect(Object.keys(functions).sort()).toEqual(devService.functions.map((fn) => fn.name).sort());
    for (const fn of Object.values(functions) as { Runtime: string }[]) expect(fn.Runtime).toBe('nodejs24.x');
    const roles = Object.values(functions).map((fn) => JSON.stringify((fn as { Role: unknown }).Role));
    expect(new Set(roles).size).toBe(roles.length);
    const createOrder = functions[devService.functionName('create-order')];
    expect(createOrder.Role).toEqual({ 'Fn::GetAtt': ['CreateOrderRole', 'Arn'] });
    expect(createOrder.Environment.Variables.ORDERS_QUEUE_URL).toEqual({ Ref: 'OrdersQueue' });
    expect(functions[devService.functionName('process-order')].Environment.Variables.NOTIFY_CUSTOMER_FUNCTION).toBe(devService.functionName('notify-customer'));
  });

  it('wires the queue to process-order with batches of 10 and ReportBatchItemFailures', () => {
    // The orders queue has one consumer (functions added with npm run new bring their own queues).
    const mappings = ofType('AWS::Lambda::EventSourceMapping')
      .map(([, mapping]) => mapping.Properties)
      .filter((mapping) => JSON.stringify(mapping.EventSourceArn) === JSON.stringify({ 'Fn::GetAtt': ['OrdersQueue', 'Arn'] }));
    expect(mappings).toHaveLength(1);
    expect(mappings[0]).toMatchObject({
      EventSourceArn: { 'Fn::GetAtt': ['OrdersQueue', 'Arn'] },
      FunctionName: { 'Fn::GetAtt': ['ProcessDashorderLambdaFunction', 'Arn'] },
      BatchSize: 10,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
  });

  it('exposes POST /orders on both the REST API and the HTTP API', () => {
    expect(resources.ApiGatewayMethodOrdersPost.Properties.HttpMethod).toBe('POST');
    expect(resources.HttpApiRoutePostOrders.Properties.RouteKey).toBe('POST /orders');
  });

  it('scopes every IAM statement to the resources its function uses, never "*" but for writing spans to X-Ray', () => {
    const xray = { Effect: 'Allow', Action: ['xray:PutSpans', 'xray:PutSpansForIndexing'], Resource: '*' };
    for (const [name, role] of ofType('AWS::IAM::Role')) {
      const statements = role.Properties.Policies.flatMap((policy: any) => policy.PolicyDocument.Statement);
      // X-Ray's span actions take no resource ARN; the statement exists only while the functions export there.
      expect(statements, name).toContainEqual({ 'Fn::If': ['ExportsToXRay', xray, { Ref: 'AWS::NoValue' }] });
      expect(
        statements.filter((statement: any) => statement['Fn::If']).map((statement: any) => statement['Fn::If'][0]),
        name,
      ).toEqual(['ExportsToXRay', 'ReadsOtlpSecretFromSsm', 'ReadsOtlpSecretFromSecretsManager']);
      for (const statement of statements.filter((statement: any) => !statement['Fn::If'])) {
        expect(JSON.stringify(statement.Resource)).not.toContain('"*"');
      }
    }
    expect(statementsOf('CreateOrderRole')).toContainEqual({
      Effect: 'Allow',
      Action: 'sqs:SendMessage',
      Resource: { 'Fn::GetAtt': ['OrdersQueue', 'Arn'] },
    });
    expect(statementsOf('ProcessOrderRole')).toEqual(
      expect.arrayContaining([
        { Effect: 'Allow', Action: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'], Resource: { 'Fn::GetAtt': ['OrdersQueue', 'Arn'] } },
        { Effect: 'Allow', Action: 'lambda:InvokeFunction', Resource: { 'Fn::GetAtt': ['NotifyDashcustomerLambdaFunction', 'Arn'] } },
      ]),
    );
    const notifyActions = statementsOf('NotifyCustomerRole').flatMap((statement: any) => statement.Action ?? statement['Fn::If'][1].Action);
    expect(notifyActions).toEqual([
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      'xray:PutSpans',
      'xray:PutSpansForIndexing',
      'ssm:GetParameter',
      'secretsmanager:GetSecretValue',
    ]);
    // With no secret configured, neither read is granted.
    expect(evaluateCondition({ Condition: 'ReadsOtlpSecretFromSsm' }, template.Conditions)).toBe(false);
    expect(evaluateCondition({ Condition: 'ReadsOtlpSecretFromSecretsManager' }, template.Conditions)).toBe(false);
  });

  it('adds the OpenTelemetry collector layer with one switch, the functions exporting to it and its configuration in the zip', async () => {
    for (const [, fn] of ofType('AWS::Lambda::Function')) {
      expect(fn.Properties.Layers ?? []).toEqual([]);
      expect(fn.Properties.Environment.Variables.OPENTELEMETRY_COLLECTOR_CONFIG_URI).toBe('');
    }
    const dir = await mkdtemp(join(tmpdir(), 'traced-package-collector-'));
    try {
      const collector = await packageService(dir, { OTEL_COLLECTOR_LAYER: 'true', OTEL_COLLECTOR_EXPORT_ENDPOINT: 'https://otlp.example.com' });
      for (const fn of Object.values(collector.Resources).filter((resource) => resource.Type === 'AWS::Lambda::Function')) {
        expect(fn.Properties.Layers).toEqual(['arn:aws:lambda:eu-west-1:184161586896:layer:opentelemetry-collector-arm64-0_23_0:1']);
        expect(fn.Properties.Environment.Variables).toMatchObject({
          OTEL_EXPORTER_OTLP_ENDPOINT: 'http://localhost:4318',
          OPENTELEMETRY_COLLECTOR_CONFIG_URI: '/var/task/collector/collector.yaml',
          OTEL_COLLECTOR_EXPORT_ENDPOINT: 'https://otlp.example.com',
        });
      }
      expect(evaluateCondition({ Condition: 'ExportsToXRay' }, collector.Conditions)).toBe(false);
      // The configuration the layer reads: the functions' OTLP/HTTP in, the chosen endpoint out.
      const config = await readFile(join(ROOT, 'collector', 'collector.yaml'), 'utf8');
      expect(config).toMatch(/receivers:\n {2}otlp:\n {4}protocols:\n {6}http:\n {8}endpoint: localhost:4318/);
      expect(config).toContain('endpoint: ${env:OTEL_COLLECTOR_EXPORT_ENDPOINT}');
      expect(config).toMatch(/traces:\n {6}receivers: \[otlp\]\n {6}exporters: \[otlphttp\]/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("gives the functions only where a backend's API key is kept, and the right to read that one parameter or secret", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'traced-package-secret-'));
    try {
      const parameter = '/order-pipeline/otlp-api-key';
      const fromSsm = await packageService(dir, { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otlp.example.com', OTLP_SECRET_SSM_PARAMETER: parameter });
      const [fn] = Object.values(fromSsm.Resources).filter((resource) => resource.Type === 'AWS::Lambda::Function');
      expect(fn.Properties.Environment.Variables).toMatchObject({
        OTLP_SECRET_HEADER: 'x-api-key',
        OTLP_SECRET_SSM_PARAMETER: parameter,
        OTEL_EXPORTER_OTLP_HEADERS: '',
      });
      expect(evaluateCondition({ Condition: 'ReadsOtlpSecretFromSsm' }, fromSsm.Conditions)).toBe(true);
      expect(evaluateCondition({ Condition: 'ReadsOtlpSecretFromSecretsManager' }, fromSsm.Conditions)).toBe(false);
      const read = fromSsm.Resources.CreateOrderRole.Properties.Policies[0].PolicyDocument.Statement.find(
        (statement: any) => statement['Fn::If']?.[0] === 'ReadsOtlpSecretFromSsm',
      )['Fn::If'][1];
      expect(read).toEqual({
        Effect: 'Allow',
        Action: 'ssm:GetParameter',
        Resource: { 'Fn::Sub': `arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:parameter${parameter}` },
      });

      const arn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:otlp-api-key-AbCdEf';
      const fromSecrets = await packageService(dir, { OTLP_SECRET_ARN: arn, OTLP_SECRET_HEADER: 'x-honeycomb-team' });
      expect(evaluateCondition({ Condition: 'ReadsOtlpSecretFromSecretsManager' }, fromSecrets.Conditions)).toBe(true);
      const readSecret = fromSecrets.Resources.NotifyCustomerRole.Properties.Policies[0].PolicyDocument.Statement.find(
        (statement: any) => statement['Fn::If']?.[0] === 'ReadsOtlpSecretFromSecretsManager',
      )['Fn::If'][1];
      expect(readSecret).toEqual({ Effect: 'Allow', Action: 'secretsmanager:GetSecretValue', Resource: arn });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("exports to CloudWatch's OTLP endpoint in the stack's region by default, and grants X-Ray only then", async () => {
    for (const [, fn] of ofType('AWS::Lambda::Function')) {
      expect(fn.Properties.Environment.Variables).toMatchObject({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'https://xray.eu-west-1.amazonaws.com',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '',
      });
    }
    expect(evaluateCondition({ Condition: 'ExportsToXRay' }, template.Conditions)).toBe(true);

    const elsewhere = await mkdtemp(join(tmpdir(), 'traced-package-otlp-'));
    try {
      const other = await packageService(elsewhere, { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otlp.example.com' });
      const [fn] = Object.values(other.Resources).filter((resource) => resource.Type === 'AWS::Lambda::Function');
      expect(fn.Properties.Environment.Variables.OTEL_EXPORTER_OTLP_ENDPOINT).toBe('https://otlp.example.com');
      expect(evaluateCondition({ Condition: 'ExportsToXRay' }, other.Conditions)).toBe(false);
      const traces = await packageService(elsewhere, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://xray.eu-west-1.amazonaws.com/v1/traces' });
      expect(evaluateCondition({ Condition: 'ExportsToXRay' }, traces.Conditions)).toBe(true);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  }, 60_000);

  it('ships one bundle per function with its source map and the after-response extension, without the AWS SDK the runtime provides', async () => {
    for (const fn of ['create-order', 'process-order', 'notify-customer']) {
      const names = zipEntryNames(await readFile(join(outDir, `${fn}.zip`)));
      expect(names.sort()).toEqual(['collector/collector.yaml', 'extension/after-response.mjs', `functions/${fn}.js`, `functions/${fn}.js.map`]);
    }
  });

  it('turns source maps on in every function, so stack traces name the TypeScript sources', () => {
    for (const [, fn] of ofType('AWS::Lambda::Function')) {
      expect(fn.Properties.Environment.Variables.NODE_OPTIONS.split(' ')).toContain('--enable-source-maps');
    }
  });
});

describe('serverless package with a function that does not build', () => {
  it("fails at once with esbuild's message", { timeout: 60_000 }, async () => {
    // A copy of the service whose create-order imports a module that does not exist.
    const copy = await mkdtemp(join(tmpdir(), 'traced-broken-'));
    try {
      for (const entry of ['serverless.yml', 'package.json', 'tsconfig.json', 'functions', 'lib']) {
        await cp(join(ROOT, entry), join(copy, entry), { recursive: true });
      }
      await symlink(join(ROOT, 'node_modules'), join(copy, 'node_modules'), 'dir');
      await appendFile(join(copy, 'functions', 'create-order.ts'), "\nimport { missing } from './no-such-module';\nexport const broken = missing;\n");
      const started = Date.now();
      const failure = await promisify(execFile)(process.execPath, [require.resolve('osls/bin/serverless.js'), 'package', '--stage', 'dev'], {
        cwd: copy,
        env: { ...process.env, AWS_PROFILE: 'no-such-profile' },
        timeout: 45_000,
      }).then(
        () => undefined,
        (error: Error & { code?: number; killed?: boolean; stderr?: string; stdout?: string }) => error,
      );
      expect(failure, 'serverless package succeeded with a broken function').toBeDefined();
      expect(failure!.killed, 'serverless package hung after the build error and was killed').toBe(false);
      expect(failure!.code).toBe(1);
      expect(`${failure!.stdout}${failure!.stderr}`).toContain('Could not resolve "./no-such-module"');
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  });
});

/** Entry names from a zip's central directory (file headers, signature PK\x01\x02). */
function zipEntryNames(zip: Buffer): string[] {
  const names: string[] = [];
  for (let at = zip.indexOf('PK\x01\x02'); at >= 0; at = zip.indexOf('PK\x01\x02', at + 46)) {
    const length = zip.readUInt16LE(at + 28);
    names.push(zip.toString('utf8', at + 46, at + 46 + length));
  }
  return names;
}
