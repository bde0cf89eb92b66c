import { describe, expect, it } from 'vitest';
import { readTelemetryConfig } from '../../lib/config';
import { exportsToXRay, otlpHeadersProblem, ssmParameterArn, xrayEndpoint } from '../../scripts/serverless/otlp-settings';

// What the serverless.yml plugin decides when the stack is packaged (test/package.test.ts packages with it).
describe('the OTLP settings as the stack is packaged', () => {
  it("names CloudWatch's OTLP endpoint under the domain of the region's partition", () => {
    expect(xrayEndpoint('eu-west-1')).toBe('https://xray.eu-west-1.amazonaws.com');
    expect(xrayEndpoint('cn-north-1')).toBe('https://xray.cn-north-1.amazonaws.com.cn');
    expect(xrayEndpoint('cn-northwest-1')).toBe('https://xray.cn-northwest-1.amazonaws.com.cn');
    expect(xrayEndpoint('us-gov-west-1')).toBe('https://xray.us-gov-west-1.amazonaws.com');
    expect(xrayEndpoint('us-gov-east-1')).toBe('https://xray.us-gov-east-1.amazonaws.com');
  });

  it('grants X-Ray for every spelling of its endpoint the functions sign for, and for no other endpoint', () => {
    const signed: Record<string, string>[] = [
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://xray.eu-west-1.amazonaws.com' },
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://xray.eu-west-1.amazonaws.com/' },
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://xray.eu-west-1.amazonaws.com//' },
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://XRAY.EU-WEST-1.AmazonAWS.com' },
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://xray.eu-west-1.amazonaws.com:443/' },
      { OTEL_EXPORTER_OTLP_ENDPOINT: ' https://xray.eu-west-1.amazonaws.com ' },
      { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://xray.eu-west-1.amazonaws.com/v1/traces' },
      { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://Xray.eu-west-1.amazonaws.com:443/v1/traces?tenant=a' },
      { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://xray.cn-north-1.amazonaws.com.cn/v1/traces' },
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://xray.ap-southeast-2.amazonaws.com' },
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otlp.example.com', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://xray.eu-west-1.amazonaws.com/v1/traces' },
    ];
    const unsigned: Record<string, string>[] = [
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otlp.example.com' },
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://xray.example.com' },
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://xray.eu-west-1.amazonaws.com.example.com' },
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://localhost:4318' },
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://xray.eu-west-1.amazonaws.com', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://otlp.example.com/v1/traces' },
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://xray.eu-west-1.amazonaws.com', OTEL_TRACES_EXPORTER: 'console' },
    ];
    for (const environment of signed) {
      expect(exportsToXRay(environment), JSON.stringify(environment)).toBe(true);
      expect(readTelemetryConfig(environment).otlpSigning, JSON.stringify(environment)).toMatchObject({ service: 'xray' });
    }
    for (const environment of unsigned) {
      expect(exportsToXRay(environment), JSON.stringify(environment)).toBe(false);
      expect(readTelemetryConfig(environment).otlpSigning, JSON.stringify(environment)).toBeUndefined();
    }
    // Values the template holds as CloudFormation functions are not the functions' strings.
    expect(exportsToXRay({ OTEL_EXPORTER_OTLP_ENDPOINT: { 'Fn::Sub': 'https://xray.${AWS::Region}.amazonaws.com' } })).toBe(false);
  });

  it("grants reading the parameter by its ARN, in the stack's partition, whichever way its name is written", () => {
    const arnOf = (resource: string) => ({ 'Fn::Sub': `arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:${resource}` });
    expect(ssmParameterArn('/order-pipeline/otlp-api-key')).toEqual(arnOf('parameter/order-pipeline/otlp-api-key'));
    expect(ssmParameterArn('order-pipeline/otlp-api-key')).toEqual(arnOf('parameter/order-pipeline/otlp-api-key'));
    expect(ssmParameterArn('otlp-api-key')).toEqual(arnOf('parameter/otlp-api-key'));
    const shared = 'arn:aws-cn:ssm:cn-north-1:123456789012:parameter/shared/otlp-api-key';
    expect(ssmParameterArn(shared)).toBe(shared);
  });

  it('refuses OTLP headers in the environment, saying where an API key goes and never what it is, unless they are said not to be secret', () => {
    const environments = [{ OTEL_EXPORTER_OTLP_HEADERS: '', OTEL_EXPORTER_OTLP_TRACES_HEADERS: '' }, { OTEL_EXPORTER_OTLP_HEADERS: 'x-api-key=s3cr3t-value' }];

    const problem = otlpHeadersProblem(environments, undefined);

    expect(problem).toContain('OTEL_EXPORTER_OTLP_HEADERS would be written into the CloudFormation template');
    for (const where of ['OTLP_SECRET_SSM_PARAMETER', 'OTLP_SECRET_ARN', 'OTLP_HEADERS_NOT_SECRET=true']) expect(problem).toContain(where);
    expect(problem).not.toContain('s3cr3t');
    expect(otlpHeadersProblem([{ OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x-api-key=s3cr3t-value' }], 'false')).toContain(
      'OTEL_EXPORTER_OTLP_TRACES_HEADERS would be',
    );
    expect(otlpHeadersProblem(environments, 'true')).toBeUndefined();
    expect(otlpHeadersProblem(environments, 'TRUE')).toBeUndefined();
    expect(otlpHeadersProblem([{ OTEL_EXPORTER_OTLP_HEADERS: '' }, {}], undefined)).toBeUndefined();
  });
});
