/**
 * The OTLP settings as the stack is built, decided by the code that reads them in the functions (lib/), so that
 * the template and the functions agree:
 * - `${otlp:xrayEndpoint}`: CloudWatch's OTLP endpoint in the stack's region, under its partition's domain
 *   (`amazonaws.com.cn` in China), known when the stack is packaged, so offline runs and lib/config.ts read a URL.
 * - `${otlp:exportsToXRay}`: `true` when the functions' environment makes them sign their exports for X-Ray
 *   (lib/config.ts's reading of it, whatever the endpoint's spelling), for the condition that grants them the right.
 * - `${otlp:ssmParameterArn}`: the ARN of the parameter OTLP_SECRET_SSM_PARAMETER names, in the stack's partition.
 * - Before a package or a function's deployment: no OTLP headers in the functions' environment, whose values the
 *   template would hold, unless OTLP_HEADERS_NOT_SECRET=true says they are not secret.
 */
import { partition } from '@aws-sdk/core/client';
import { readTelemetryConfig } from '../../lib/config';
import { ssmParameterName } from '../../lib/export/secret-headers';

type Environment = Record<string, unknown>;

/** What the plugin reads of the framework (osls, the Serverless Framework v3's API). */
interface Serverless {
  service: {
    provider: { environment?: Environment };
    getAllFunctions(): string[];
    getFunction(name: string): { environment?: Environment };
  };
  classes: { Error: new (message: string) => Error };
}

interface VariableSourceInput {
  address?: string;
  resolveConfigurationProperty(path: string[]): Promise<unknown>;
}

const HEADER_VARIABLES = ['OTEL_EXPORTER_OTLP_HEADERS', 'OTEL_EXPORTER_OTLP_TRACES_HEADERS'] as const;
const NOT_SECRET_OPT_IN = 'OTLP_HEADERS_NOT_SECRET';

export class OtlpSettingsPlugin {
  readonly hooks: Record<string, () => void>;
  readonly configurationVariablesSources = {
    otlp: { resolve: (input: VariableSourceInput) => this.resolve(input) },
  };

  constructor(private readonly serverless: Serverless) {
    const refuseHeaders = () => {
      const problem = otlpHeadersProblem(this.environments(), process.env[NOT_SECRET_OPT_IN]);
      if (problem) throw new this.serverless.classes.Error(problem);
    };
    // Before anything is built: `deploy` packages first (the package hooks run), `deploy function` does not.
    this.hooks = { 'before:package:cleanup': refuseHeaders, 'before:deploy:function:initialize': refuseHeaders };
  }

  private environments(): Environment[] {
    const { service } = this.serverless;
    return [service.provider.environment ?? {}, ...service.getAllFunctions().map((name) => service.getFunction(name).environment ?? {})];
  }

  private async resolve({ address, resolveConfigurationProperty }: VariableSourceInput): Promise<{ value: unknown }> {
    const region = String(await resolveConfigurationProperty(['provider', 'region']));
    switch (address) {
      case 'xrayEndpoint':
        return { value: xrayEndpoint(region) };
      case 'exportsToXRay':
        return { value: String(exportsToXRay((await resolveConfigurationProperty(['provider', 'environment'])) as Environment)) };
      case 'ssmParameterArn':
        return { value: ssmParameterArn(String(await resolveConfigurationProperty(['custom', 'otlpSecret', 'ssmParameter']))) };
      default:
        throw new this.serverless.classes.Error(`\${otlp:${address}} is not one of \${otlp:xrayEndpoint}, \${otlp:exportsToXRay}, \${otlp:ssmParameterArn}`);
    }
  }
}

/** CloudWatch's OTLP endpoint in `region`: `xray.<region>.` and the domain of the region's partition. */
export function xrayEndpoint(region: string): string {
  return `https://xray.${region}.${partition(region).dnsSuffix}`;
}

/** Whether functions with this environment sign their exports for X-Ray, as lib/config.ts decides it. */
export function exportsToXRay(environment: Environment): boolean {
  const strings = Object.fromEntries(Object.entries(environment).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
  return readTelemetryConfig(strings).otlpSigning !== undefined;
}

/**
 * The IAM resource for reading the parameter: its ARN as given (a parameter shared from another account is read by
 * ARN), or built from its name in the stack's partition, region and account. A parameter's ARN holds its name after
 * `parameter/`, a hierarchical name without its leading slash.
 */
export function ssmParameterArn(parameter: string): string | { 'Fn::Sub': string } {
  const name = ssmParameterName(parameter);
  if (name.startsWith('arn:')) return name;
  return { 'Fn::Sub': `arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:parameter/${name.replace(/^\//, '')}` };
}

/** Why the functions' environment must not go into a template: it holds OTLP headers, which may be an API key. */
export function otlpHeadersProblem(environments: Environment[], notSecret: string | undefined): string | undefined {
  if (notSecret?.trim().toLowerCase() === 'true') return undefined;
  const set = HEADER_VARIABLES.filter((name) => environments.some((environment) => environment[name] !== undefined && environment[name] !== ''));
  if (set.length === 0) return undefined;
  return [
    `${set.join(' and ')} would be written into the CloudFormation template and the functions' environment, where anyone who can read the stack or the functions reads them.`,
    "Keep a backend's API key in SSM Parameter Store (a SecureString) or Secrets Manager and deploy with where it is kept:",
    'OTLP_SECRET_HEADER=<header> with OTLP_SECRET_SSM_PARAMETER=<parameter name> or OTLP_SECRET_ARN=<secret ARN>',
    '(README.md, "Another OTLP backend, its API key kept secret").',
    `Headers that are not secret can go in the template with ${NOT_SECRET_OPT_IN}=true.`,
  ].join(' ');
}
