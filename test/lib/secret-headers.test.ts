import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import type { DiagLogger } from '@opentelemetry/api';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { traceInvokeHandler } from '../../lib';
import { readTelemetryConfig } from '../../lib/config';
import { startTelemetry } from '../../lib/telemetry';
import { lambdaContext } from '../../lib/testing';

// A hosted backend's API key, read by the function from SSM Parameter Store or Secrets Manager at its first
// export: the deployment holds only the parameter's name or the secret's ARN.
const ssm = mockClient(SSMClient);
const secrets = mockClient(SecretsManagerClient);
let server: Server;
let endpoint: string;
const requests: IncomingHttpHeaders[] = [];

beforeAll(async () => {
  server = createServer((request, response) => {
    requests.push(request.headers);
    request.resume().on('end', () => response.writeHead(200).end('{}'));
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(() => {
  ssm.reset();
  secrets.reset();
  requests.length = 0;
});

afterAll(async () => {
  ssm.restore();
  secrets.restore();
  server.closeAllConnections();
  await new Promise((done) => server.close(done));
});

function start(env: Record<string, string>) {
  const lines: string[] = [];
  const record = (message: string) => void lines.push(message);
  const logger: DiagLogger = { error: record, warn: record, info: record, debug: record, verbose: record };
  startTelemetry(readTelemetryConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, AWS_REGION: 'eu-west-1', ...env }), { logger });
  return lines;
}
const invocations = async (count: number) => {
  for (let i = 0; i < count; i++) await traceInvokeHandler(async () => 'done')({}, lambdaContext());
};

describe('an OTLP header from SSM Parameter Store', () => {
  it('reads the SecureString once per sandbox, decrypted, and sends it on every export', async () => {
    ssm.on(GetParameterCommand).resolves({ Parameter: { Name: '/order-pipeline/otlp-key', Type: 'SecureString', Value: 's3cr3t' } });
    start({ OTLP_SECRET_SSM_PARAMETER: '/order-pipeline/otlp-key', OTLP_SECRET_HEADER: 'x-honeycomb-team' });

    await invocations(3);

    expect(requests.map((headers) => headers['x-honeycomb-team'])).toEqual(['s3cr3t', 's3cr3t', 's3cr3t']);
    expect(ssm).toHaveReceivedCommandTimes(GetParameterCommand, 1);
    expect(ssm).toHaveReceivedCommandWith(GetParameterCommand, { Name: '/order-pipeline/otlp-key', WithDecryption: true });
  });

  it('reads a hierarchical name written without its leading "/" as the parameter it can only be, and a plain name or an ARN as given', async () => {
    // Arrange: three functions, each configured with one spelling
    ssm.on(GetParameterCommand).resolves({ Parameter: { Name: '/team/otlp-key', Type: 'SecureString', Value: 's3cr3t' } });
    const arn = 'arn:aws:ssm:eu-west-1:123456789012:parameter/shared/otlp-key';

    // Act
    for (const parameter of ['team/otlp-key', 'otlp-key', arn]) {
      start({ OTLP_SECRET_SSM_PARAMETER: parameter });
      await invocations(1);
    }

    // Assert: what IAM grants for the same spellings (scripts/serverless/otlp-settings.ts) names the same parameters
    expect(ssm.commandCalls(GetParameterCommand).map((call) => call.args[0].input.Name)).toEqual(['/team/otlp-key', 'otlp-key', arn]);
    expect(requests.map((headers) => headers['x-api-key'])).toEqual(['s3cr3t', 's3cr3t', 's3cr3t']);
  });

  it('says why the spans could not go when the read fails, without the value, and tries again at the next export', async () => {
    ssm
      .on(GetParameterCommand)
      .rejectsOnce(Object.assign(new Error('User is not authorized to perform ssm:GetParameter'), { name: 'AccessDeniedException' }))
      .resolves({ Parameter: { Value: 's3cr3t' } });
    const lines = start({ OTLP_SECRET_SSM_PARAMETER: '/order-pipeline/otlp-key' });

    await invocations(2);

    expect(lines).toContain(
      'traced-lambda: could not export 1 span(s): could not read the x-api-key header from SSM parameter /order-pipeline/otlp-key ' +
        '(AccessDeniedException: User is not authorized to perform ssm:GetParameter). Further failures are counted until an export succeeds.',
    );
    expect(requests.map((headers) => headers['x-api-key'])).toEqual(['s3cr3t']);
    expect(lines.join('\n')).not.toContain('s3cr3t');
  });
});

describe('an OTLP header from Secrets Manager', () => {
  it('takes a plain secret string as the value', async () => {
    secrets.on(GetSecretValueCommand).resolves({ SecretString: 'plain-key' });
    start({ OTLP_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:otlp-AbCdEf' });

    await invocations(1);

    expect(requests[0]['x-api-key']).toBe('plain-key');
    expect(secrets).toHaveReceivedCommandWith(GetSecretValueCommand, { SecretId: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:otlp-AbCdEf' });
  });

  it("takes the header's key from a key/value secret, and says so when it is missing", async () => {
    secrets.on(GetSecretValueCommand).resolves({ SecretString: '{"x-api-key":"from-json","other":"x"}' });
    start({ OTLP_SECRET_ARN: 'otlp' });
    await invocations(1);
    expect(requests[0]['x-api-key']).toBe('from-json');

    requests.length = 0;
    secrets.reset();
    secrets.on(GetSecretValueCommand).resolves({ SecretString: '{"other":"x"}' });
    const lines = start({ OTLP_SECRET_ARN: 'otlp', OTLP_SECRET_HEADER: 'x-api-key' });
    await invocations(1);
    expect(requests).toHaveLength(0);
    expect(lines.join('\n')).toContain(
      'could not read the x-api-key header from Secrets Manager secret otlp (Error: the secret is JSON without a "x-api-key" string)',
    );
  });
});

describe('the secret header in the configuration', () => {
  it('holds only where the value is kept, never the value', () => {
    expect(readTelemetryConfig({}).otlpSecretHeader).toBeUndefined();
    expect(readTelemetryConfig({ OTLP_SECRET_SSM_PARAMETER: '/p' }).otlpSecretHeader).toEqual({ header: 'x-api-key', from: 'ssm', id: '/p' });
    const both = readTelemetryConfig({ OTLP_SECRET_SSM_PARAMETER: '/p', OTLP_SECRET_ARN: 'arn:s', OTLP_SECRET_HEADER: 'authorization' });
    expect(both.otlpSecretHeader).toEqual({ header: 'authorization', from: 'ssm', id: '/p' });
    expect(both.warnings).toEqual(['OTLP_SECRET_SSM_PARAMETER and OTLP_SECRET_ARN are both set; reading the SSM parameter.']);
  });
});
