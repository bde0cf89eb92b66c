import { execFile } from 'node:child_process';
import { appendFile, cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { inflateRawSync } from 'node:zlib';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTelemetryConfig } from '../lib/config';
import { EXPORT_FILE } from '../lib/export/exporter-loader';
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

interface PackageOptions {
  /** More of the command line, e.g. `['--region', 'cn-north-1']`. */
  args?: string[];
  /** The service's folder (a copy of the project). */
  cwd?: string;
}

/**
 * `serverless package --stage dev` into `dir`, with no AWS credentials and only the given OTEL_* and OTLP_*
 * variables.
 */
async function packageService(dir: string, otel: Record<string, string> = {}, { args = [], cwd = ROOT }: PackageOptions = {}): Promise<Template> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AWS_ACCESS_KEY_ID: '',
    AWS_SECRET_ACCESS_KEY: '',
    AWS_PROFILE: 'no-such-profile',
    ESBUILD_WORK_FOLDER: WORK_FOLDER,
  };
  for (const name of Object.keys(env)) if (name.startsWith('OTEL_') || name.startsWith('OTLP_')) delete env[name];
  await promisify(execFile)(process.execPath, [require.resolve('osls/bin/serverless.js'), 'package', '--stage', 'dev', '--package', dir, ...args], {
    cwd,
    env: { ...env, ...otel },
    timeout: 120_000,
  });
  return JSON.parse(await readFile(join(dir, 'cloudformation-template-update-stack.json'), 'utf8'));
}

/** Why `packageService` failed: the exit code and all it printed. */
async function packageFailure(dir: string, otel: Record<string, string>): Promise<{ code?: number; output: string }> {
  return packageService(dir, otel).then(
    () => expect.fail('serverless package succeeded'),
    (error: Error & { code?: number; stdout?: string; stderr?: string }) => ({ code: error.code, output: `${error.stdout}${error.stderr}` }),
  );
}

/** A copy of the project to package with a changed serverless.yml, beside the project's node_modules. */
async function projectCopy(prefix: string, editServerlessYml: (yml: string) => string = (yml) => yml): Promise<string> {
  const copy = await mkdtemp(join(tmpdir(), prefix));
  for (const entry of ['serverless.yml', 'package.json', 'tsconfig.json', 'functions', 'lib', 'scripts', 'extension', 'collector']) {
    await cp(join(ROOT, entry), join(copy, entry), { recursive: true });
  }
  await symlink(join(ROOT, 'node_modules'), join(copy, 'node_modules'), 'dir');
  await writeFile(join(copy, 'serverless.yml'), editServerlessYml(await readFile(join(copy, 'serverless.yml'), 'utf8')));
  return copy;
}

/** Runs `work` with a new empty folder, removed afterwards. */
async function inTempDir(prefix: string, work: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  try {
    await work(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const functionsOf = (packaged: Template) => Object.values(packaged.Resources).filter((resource) => resource.Type === 'AWS::Lambda::Function');

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

  it('puts every function on a Lambda Managed Instances capacity provider with one switch, and refuses an ARN that is not one', async () => {
    for (const [, fn] of ofType('AWS::Lambda::Function')) expect(fn.Properties.CapacityProviderConfig).toBeUndefined();
    const arn = 'arn:aws:lambda:eu-west-1:123456789012:capacity-provider:orders';
    const dir = await mkdtemp(join(tmpdir(), 'traced-package-lmi-'));
    try {
      const onInstances = await packageService(dir, { LAMBDA_CAPACITY_PROVIDER_ARN: arn, LAMBDA_PER_ENVIRONMENT_MAX_CONCURRENCY: '32' });
      const functions = Object.values(onInstances.Resources).filter((resource) => resource.Type === 'AWS::Lambda::Function');
      expect(functions).toHaveLength(devService.functions.length);
      for (const fn of functions) {
        expect(fn.Properties.CapacityProviderConfig).toEqual({
          LambdaManagedInstancesCapacityProviderConfig: { CapacityProviderArn: arn, PerExecutionEnvironmentMaxConcurrency: 32 },
        });
      }
      const refused = await packageService(dir, { LAMBDA_CAPACITY_PROVIDER_ARN: 'orders' }).then(
        () => undefined,
        (error: Error & { stdout?: string; stderr?: string }) => `${error.stdout}${error.stderr}`,
      );
      expect(refused).toContain('custom.managedInstances.capacityProviderArn "orders" is not a Lambda capacity provider\'s ARN');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 240_000);

  it('adds the OpenTelemetry collector layer with one switch, the functions exporting to it and its configuration in the zip', async () => {
    for (const [, fn] of ofType('AWS::Lambda::Function')) {
      expect(fn.Properties.Layers ?? []).toEqual([]);
      expect(fn.Properties.Environment.Variables.OPENTELEMETRY_COLLECTOR_CONFIG_URI).toBe('');
    }
    const dir = await mkdtemp(join(tmpdir(), 'traced-package-collector-'));
    try {
      const collector = await packageService(dir, { OTEL_COLLECTOR_LAYER: 'true', OTEL_COLLECTOR_EXPORT_ENDPOINT: 'https://otlp.example.com' });
      for (const fn of Object.values(collector.Resources).filter((resource) => resource.Type === 'AWS::Lambda::Function')) {
        expect(fn.Properties.Layers).toEqual([
          { 'Fn::Sub': 'arn:${AWS::Partition}:lambda:${AWS::Region}:184161586896:layer:opentelemetry-collector-arm64-0_23_0:1' },
        ]);
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

      // A hierarchical name written without its leading "/" is the parameter it can only be (lib/export/secret-headers.ts reads
      // the same one), a plain name has "/" after "parameter" in its ARN, an ARN is granted as it is.
      const readFor = async (spelling: string) => {
        const packaged = await packageService(dir, { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otlp.example.com', OTLP_SECRET_SSM_PARAMETER: spelling });
        return packaged.Resources.ProcessOrderRole.Properties.Policies[0].PolicyDocument.Statement.find(
          (statement: any) => statement['Fn::If']?.[0] === 'ReadsOtlpSecretFromSsm',
        )['Fn::If'][1].Resource;
      };
      const arnOf = (resource: string) => ({ 'Fn::Sub': `arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:${resource}` });
      expect(await readFor('team/otlp-key')).toEqual(arnOf('parameter/team/otlp-key'));
      expect(await readFor('otlp-key')).toEqual(arnOf('parameter/otlp-key'));
      const shared = 'arn:aws:ssm:eu-west-1:123456789012:parameter/shared/otlp-key';
      expect(await readFor(shared)).toBe(shared);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 150_000);

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

  it('grants X-Ray exactly when the packaged functions sign their exports for it, however the endpoint is spelt', async () => {
    await inTempDir('traced-package-spelling-', async (dir) => {
      const spellings: [Record<string, string>, boolean][] = [
        [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://xray.eu-west-1.amazonaws.com/' }, true],
        [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://XRAY.eu-west-1.AMAZONAWS.com:443//' }, true],
        [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://xray.eu-west-1.amazonaws.com:443/v1/traces/' }, true],
        [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://xray.ap-southeast-2.amazonaws.com' }, true],
        [
          { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://xray.eu-west-1.amazonaws.com', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://otlp.example.com/v1/traces' },
          false,
        ],
        [{ OTEL_TRACES_EXPORTER: 'console' }, false],
      ];
      for (const [otel, signs] of spellings) {
        const packaged = await packageService(dir, otel);
        const environment = functionsOf(packaged)[0].Properties.Environment.Variables;
        expect(readTelemetryConfig(environment).otlpSigning !== undefined, JSON.stringify(otel)).toBe(signs);
        expect(evaluateCondition({ Condition: 'ExportsToXRay' }, packaged.Conditions), JSON.stringify(otel)).toBe(signs);
      }
    });
  }, 120_000);

  it("exports to X-Ray in the stack's partition, and names every ARN by the stack's partition", async () => {
    await inTempDir('traced-package-partition-', async (dir) => {
      for (const [region, endpoint] of [
        ['cn-north-1', 'https://xray.cn-north-1.amazonaws.com.cn'],
        ['us-gov-west-1', 'https://xray.us-gov-west-1.amazonaws.com'],
        ['us-gov-east-1', 'https://xray.us-gov-east-1.amazonaws.com'],
      ]) {
        const packaged = await packageService(dir, {}, { args: ['--region', region] });
        for (const fn of functionsOf(packaged)) expect(fn.Properties.Environment.Variables.OTEL_EXPORTER_OTLP_ENDPOINT, region).toBe(endpoint);
        expect(readTelemetryConfig(functionsOf(packaged)[0].Properties.Environment.Variables).otlpSigning).toMatchObject({ service: 'xray', region });
        expect(evaluateCondition({ Condition: 'ExportsToXRay' }, packaged.Conditions), region).toBe(true);
        expect(JSON.stringify(packaged), region).not.toMatch(/arn:aws:/);
        expect(JSON.stringify(packaged), region).toContain('arn:${AWS::Partition}:');
      }
    });
  }, 120_000);

  it('adds the collector layer published for x86_64 functions, which the OpenTelemetry project names amd64', async () => {
    const copy = await projectCopy('traced-package-x86-', (yml) => yml.replace(/^ {2}architecture: arm64$/m, '  architecture: x86_64'));
    const dir = await mkdtemp(join(tmpdir(), 'traced-package-x86-out-'));
    try {
      const packaged = await packageService(dir, { OTEL_COLLECTOR_LAYER: 'true' }, { cwd: copy, args: ['--region', 'us-gov-west-1'] });
      for (const fn of functionsOf(packaged)) {
        expect(fn.Properties.Architectures).toEqual(['x86_64']);
        expect(fn.Properties.Layers).toEqual([
          { 'Fn::Sub': 'arn:${AWS::Partition}:lambda:${AWS::Region}:184161586896:layer:opentelemetry-collector-amd64-0_23_0:1' },
        ]);
      }
    } finally {
      await rm(copy, { recursive: true, force: true });
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('refuses to package OTLP headers, which the template would hold, saying where an API key goes and never printing it', async () => {
    await inTempDir('traced-package-headers-', async (dir) => {
      for (const name of ['OTEL_EXPORTER_OTLP_HEADERS', 'OTEL_EXPORTER_OTLP_TRACES_HEADERS']) {
        const failure = await packageFailure(dir, { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otlp.example.com', [name]: 'x-api-key=s3cr3t-value' });
        expect(failure.code).toBe(1);
        expect(failure.output).toContain(`${name} would be written into the CloudFormation template`);
        for (const where of ['OTLP_SECRET_SSM_PARAMETER', 'OTLP_SECRET_ARN', 'OTLP_HEADERS_NOT_SECRET=true']) expect(failure.output).toContain(where);
        expect(failure.output).not.toContain('s3cr3t');
      }

      // Headers said not to be secret are packaged as given.
      const packaged = await packageService(dir, {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otlp.example.com',
        OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x-tenant=shop',
        OTLP_HEADERS_NOT_SECRET: 'true',
      });
      for (const fn of functionsOf(packaged)) expect(fn.Properties.Environment.Variables.OTEL_EXPORTER_OTLP_TRACES_HEADERS).toBe('x-tenant=shop');
      expect(readTelemetryConfig(functionsOf(packaged)[0].Properties.Environment.Variables).otlpHeaders).toEqual({ 'x-tenant': 'shop' });
    });
  }, 60_000);

  it('ships per function its own code with a source map, its tracing kit and the exporter file beside it without one, and the after-response extension, without the AWS SDK the runtime provides', async () => {
    for (const fn of ['create-order', 'process-order', 'notify-customer']) {
      const zip = await readFile(join(outDir, `${fn}.zip`));
      const kitFile = `${fn}.tracing.js`;
      expect(zipEntryNames(zip).sort()).toEqual([
        'collector/collector.yaml',
        'extension/after-response.mjs',
        `functions/${fn}.js`,
        `functions/${fn}.js.map`,
        `functions/${kitFile}`,
        `functions/${EXPORT_FILE}`,
      ]);
      // The function's bundle is its own code: the kit (lib/ and the OpenTelemetry packages) is required from its file.
      const bundle = zipEntry(zip, `functions/${fn}.js`).toString('utf8');
      const kit = zipEntry(zip, `functions/${kitFile}`).toString('utf8');
      expect(bundle).toContain(`require("./${kitFile}")`);
      for (const code of ['traceparent', 'OTEL_SERVICE_NAME']) {
        expect(bundle, fn).not.toContain(code);
        expect(kit, fn).toContain(code);
      }
      // Neither the kit nor the exporter names a map: Node.js maps (and scans when loading) the function's code only.
      expect(bundle).toMatch(/\/\/# sourceMappingURL=\S+\.js\.map\s*$/);
      for (const file of [kit, zipEntry(zip, `functions/${EXPORT_FILE}`).toString('utf8')]) expect(file).not.toContain('sourceMappingURL');
      // The exporter's code (SigV4 signing, the OTLP serializer) is in that file only, required at the first export.
      expect(kit).toContain(`require("./${EXPORT_FILE}")`);
      for (const code of ['AWS4-HMAC-SHA256', 'resourceSpans']) {
        expect(bundle + kit, fn).not.toContain(code);
        expect(zipEntry(zip, `functions/${EXPORT_FILE}`).toString('utf8')).toContain(code);
      }
    }
  });

  it("exports from the exporter file; without it, logs why once, drops the spans and leaves the handler's result unchanged", async () => {
    const taskRoot = await mkdtemp(join(tmpdir(), 'traced-task-root-'));
    const received: string[] = [];
    const receiver = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      request.on('end', () => {
        received.push(body);
        response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((listening) => receiver.listen(0, '127.0.0.1', listening));
    try {
      const zip = await readFile(join(outDir, 'notify-customer.zip'));
      for (const name of zipEntryNames(zip).filter((entry) => entry.startsWith('functions/'))) {
        await mkdir(dirname(join(taskRoot, name)), { recursive: true });
        await writeFile(join(taskRoot, name), zipEntry(zip, name));
      }
      // The handler as the runtime calls it (no Runtime API here: the spans are exported before it returns).
      const script = `require(process.argv[1]).handler({ orderId: 'o-1', customerEmail: 'a@example.com', itemCount: 1 }, { awsRequestId: 'r-1', functionName: 'notify-customer', getRemainingTimeInMillis: () => 5000 })
        .then((result) => console.log(JSON.stringify(result)), (error) => { console.log('handler failed', error); process.exitCode = 1; });`;
      const run = () =>
        promisify(execFile)(process.execPath, ['--enable-source-maps', '-e', script, join(taskRoot, 'functions', 'notify-customer.js')], {
          env: {
            PATH: process.env.PATH,
            OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`,
            OTEL_SERVICE_NAME: 'notify-customer',
          },
          timeout: 20_000,
        });
      const result = (stdout: string) => JSON.parse(stdout.trim().split('\n').pop()!);

      const exported = await run();
      expect(result(exported.stdout)).toMatchObject({ orderId: 'o-1', delivered: true });
      expect(received).toHaveLength(1);
      expect(received[0]).toContain('send order confirmation');

      received.length = 0;
      await rm(join(taskRoot, 'functions', EXPORT_FILE));
      const dropped = await run();
      expect(result(dropped.stdout)).toMatchObject({ orderId: 'o-1', delivered: true });
      expect(received).toHaveLength(0);
      const log = `${dropped.stdout}${dropped.stderr}`;
      expect(log).toContain(`traced-lambda: the exporter's code (${EXPORT_FILE} beside the handler) could not be loaded, so spans are dropped`);
    } finally {
      await new Promise((closed) => receiver.close(closed));
      await rm(taskRoot, { recursive: true, force: true });
    }
  });

  it('turns source maps on in every function, so stack traces name the TypeScript sources', () => {
    for (const [, fn] of ofType('AWS::Lambda::Function')) {
      expect(fn.Properties.Environment.Variables.NODE_OPTIONS.split(' ')).toContain('--enable-source-maps');
    }
  });

  it("names the sources in each source map where they are in the package, so a stack frame's path starts with the task root", async () => {
    for (const fn of ['create-order', 'process-order', 'notify-customer']) {
      const zip = await readFile(join(outDir, `${fn}.zip`));
      const map = JSON.parse(zipEntry(zip, `functions/${fn}.js.map`).toString('utf8'));
      // As Node.js resolves them: the source root and each source against the map's own URL in /var/task.
      const resolved = map.sources.map((source: string) => new URL(`${map.sourceRoot ?? ''}${source}`, `file:///var/task/functions/${fn}.js.map`).pathname);
      expect(resolved).toContain(`/var/task/functions/${fn}.ts`);
      // Only the function's own sources: the kit's code is in its own file, not mapped.
      for (const path of resolved) expect(path, fn).toMatch(/^\/var\/task\/functions\//);
    }

    // Node.js itself, on the package unzipped into a task root: the frames of an error thrown in the handler's
    // module name the TypeScript source under that root.
    const taskRoot = await mkdtemp(join(tmpdir(), 'traced-task-root-'));
    try {
      const zip = await readFile(join(outDir, 'notify-customer.zip'));
      for (const name of zipEntryNames(zip).filter((entry) => entry.startsWith('functions/'))) {
        await mkdir(dirname(join(taskRoot, name)), { recursive: true });
        await writeFile(join(taskRoot, name), zipEntry(zip, name));
      }
      // The handler rejects an event without an order: the error passes through the kit's wrapper unchanged, and its
      // first frame is in the function's TypeScript source.
      const script = `const { findSourceMap } = require('node:module');
        const { handler } = require(process.argv[1]);
        const sources = findSourceMap(process.argv[1]).payload.sources;
        handler({}, { awsRequestId: 'r-1', functionName: 'notify-customer', getRemainingTimeInMillis: () => 5000 }).catch((error) =>
          console.log(JSON.stringify({ sources, frame: error.stack.split('\\n')[1] })));`;
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ['--enable-source-maps', '-e', script, join(taskRoot, 'functions', 'notify-customer.js')],
        {
          env: { PATH: process.env.PATH, OTEL_SDK_DISABLED: 'true' },
        },
      );
      const { sources, frame } = JSON.parse(stdout.trim().split('\n').pop()!) as { sources: string[]; frame: string };
      expect(sources).toContain(`file://${taskRoot}/functions/notify-customer.ts`);
      expect(frame).toContain(`${taskRoot}/functions/notify-customer.ts:`);
      for (const source of sources) expect(source.startsWith(`file://${taskRoot}/`), source).toBe(true);
    } finally {
      await rm(taskRoot, { recursive: true, force: true });
    }
  });
});

describe('serverless package with a function that does not build', () => {
  it("fails at once with esbuild's message", { timeout: 60_000 }, async () => {
    // A copy of the service whose create-order imports a module that does not exist.
    const copy = await mkdtemp(join(tmpdir(), 'traced-broken-'));
    try {
      for (const entry of ['serverless.yml', 'package.json', 'tsconfig.json', 'functions', 'lib', 'scripts']) {
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

/** One entry's bytes: its central directory header gives where its local header is, stored or deflated after it. */
function zipEntry(zip: Buffer, name: string): Buffer {
  for (let at = zip.indexOf('PK\x01\x02'); at >= 0; at = zip.indexOf('PK\x01\x02', at + 46)) {
    const length = zip.readUInt16LE(at + 28);
    if (zip.toString('utf8', at + 46, at + 46 + length) !== name) continue;
    const [method, size, local] = [zip.readUInt16LE(at + 10), zip.readUInt32LE(at + 20), zip.readUInt32LE(at + 42)];
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const data = zip.subarray(start, start + size);
    return method === 8 ? inflateRawSync(data) : data;
  }
  throw new Error(`no ${name} in the zip`);
}

/** Entry names from a zip's central directory (file headers, signature PK\x01\x02). */
function zipEntryNames(zip: Buffer): string[] {
  const names: string[] = [];
  for (let at = zip.indexOf('PK\x01\x02'); at >= 0; at = zip.indexOf('PK\x01\x02', at + 46)) {
    const length = zip.readUInt16LE(at + 28);
    names.push(zip.toString('utf8', at + 46, at + 46 + length));
  }
  return names;
}
