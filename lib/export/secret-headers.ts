/**
 * An OTLP header whose value is a secret (a hosted backend's API key), read from SSM Parameter Store (a
 * SecureString, decrypted) or Secrets Manager by the function itself: the value is never in the CloudFormation
 * template nor in the function's environment, only the parameter's name or the secret's ARN. It is read at the
 * first export and kept for the sandbox's life; a failed read is tried again at the next export.
 */

export interface SecretHeaderSource {
  /** The header to send, e.g. `x-api-key`. */
  header: string;
  from: 'ssm' | 'secretsmanager';
  /** The parameter's name (`/path/name`) or ARN, or the secret's ARN or name. */
  id: string;
}

/**
 * The parameter as GetParameter takes it. "For parameters in a hierarchy, you must include a leading forward slash
 * character (/) when you create or reference a parameter" (AWS Systems Manager API Reference, PutParameter and
 * GetParameter, `Name`): `team/otlp-key` can only be `/team/otlp-key`. A name without "/" (`otlp-key`) and an ARN
 * are taken as they are.
 */
export function ssmParameterName(parameter: string): string {
  return parameter.startsWith('arn:') || parameter.startsWith('/') || !parameter.includes('/') ? parameter : `/${parameter}`;
}

type SsmModule = typeof import('@aws-sdk/client-ssm');
type SecretsManagerModule = typeof import('@aws-sdk/client-secrets-manager');

/** Resolves the header, reading the secret once; rejects with a message that never holds the value. */
export function secretHeaderLoader(source: SecretHeaderSource, region: string | undefined): () => Promise<Record<string, string>> {
  let loaded: Promise<Record<string, string>> | undefined;
  return () => {
    loaded ??= readSecret(source, region).then(
      (value) => ({ [source.header]: value }),
      (error: unknown) => {
        loaded = undefined;
        const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
        throw new Error(`could not read the ${source.header} header from ${describe(source)} (${reason})`);
      },
    );
    return loaded;
  };
}

async function readSecret(source: SecretHeaderSource, region: string | undefined): Promise<string> {
  // The AWS SDK clients the Lambda runtime provides, loaded at the first export rather than at start-up.
  if (source.from === 'ssm') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { SSMClient, GetParameterCommand } = require('@aws-sdk/client-ssm') as SsmModule;
    const client = new SSMClient({ region });
    try {
      const { Parameter } = await client.send(new GetParameterCommand({ Name: ssmParameterName(source.id), WithDecryption: true }));
      if (!Parameter?.Value) throw new Error('the parameter has no value');
      return Parameter.Value;
    } finally {
      client.destroy();
    }
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { SecretsManagerClient, GetSecretValueCommand } = require('@aws-sdk/client-secrets-manager') as SecretsManagerModule;
  const client = new SecretsManagerClient({ region });
  try {
    const { SecretString } = await client.send(new GetSecretValueCommand({ SecretId: source.id }));
    if (!SecretString) throw new Error('the secret has no string value');
    return valueFromSecretString(SecretString, source.header);
  } finally {
    client.destroy();
  }
}

/** A secret stored as key/value JSON (the console's default) gives the value under the header's name. */
function valueFromSecretString(secret: string, header: string): string {
  if (!secret.trimStart().startsWith('{')) return secret;
  try {
    const value = (JSON.parse(secret) as Record<string, unknown>)[header];
    if (typeof value === 'string' && value !== '') return value;
  } catch {
    return secret;
  }
  throw new Error(`the secret is JSON without a "${header}" string`);
}

function describe(source: SecretHeaderSource): string {
  return source.from === 'ssm' ? `SSM parameter ${ssmParameterName(source.id)}` : `Secrets Manager secret ${source.id}`;
}
