import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExecution, traceStepFunctionsTask, withSpan } from '../../lib';
import { captureSpans, lambdaContext } from '../../lib/testing';

const ROOT = join(__dirname, '..', '..');

/** The `resources:` block that docs/reference.md's "Step Functions" section gives for serverless.yml. */
async function documentedResources(): Promise<string> {
  const reference = await readFile(join(ROOT, 'docs', 'reference.md'), 'utf8');
  const section = reference.slice(reference.indexOf('### Step Functions'));
  const block = /```yaml\n(resources:\n[\s\S]*?)```/.exec(section);
  if (!block) throw new Error('docs/reference.md: no ```yaml resources: block in "Step Functions"');
  return block[1];
}

/** A service with the function `charge-card` and the documented block, as a user's serverless.yml would have them. */
const serviceYml = (resources: string) => `service: order-flow
frameworkVersion: '4'
provider:
  name: aws
  runtime: nodejs24.x
  region: eu-west-1
functions:
  charge-card:
    handler: functions/charge-card.handler
${resources}`;

interface Template {
  Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
}

/** What a JSONPath Parameters object makes of a state's input (the `$` and `$.a.b` paths the block uses). */
function applyParameters(parameters: unknown, input: unknown): unknown {
  if (parameters === null || typeof parameters !== 'object' || Array.isArray(parameters)) return parameters;
  const result: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(parameters)) {
    if (key.endsWith('.$')) {
      const steps = String(value)
        .replace(/^\$\.?/, '')
        .split('.')
        .filter(Boolean);
      result[key.slice(0, -2)] = steps.reduce<unknown>((node, step) => (node as Record<string, unknown>)?.[step], input);
    } else {
      result[key] = applyParameters(value, input);
    }
  }
  return result;
}

describe('the state machine docs/reference.md gives for serverless.yml', () => {
  let dir: string;
  let template: Template;

  beforeAll(async () => {
    // Arrange: package it as a user would, with no AWS credentials
    dir = await mkdtemp(join(tmpdir(), 'sfn-service-'));
    await mkdir(join(dir, 'functions'));
    await writeFile(join(dir, 'functions', 'charge-card.js'), 'exports.handler = async () => ({ charged: true });\n');
    await writeFile(join(dir, 'serverless.yml'), serviceYml(await documentedResources()));
    const env = { ...process.env, AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', AWS_PROFILE: 'no-such-profile' };
    await promisify(execFile)(process.execPath, [require.resolve('osls/bin/serverless.js'), 'package', '--stage', 'dev', '--package', join(dir, 'out')], {
      cwd: dir,
      env,
      timeout: 120_000,
    });
    template = JSON.parse(await readFile(join(dir, 'out', 'cloudformation-template-update-stack.json'), 'utf8')) as Template;
  }, 150_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('packages into a traced state machine whose Task invokes the function it names, with a role allowed only that', () => {
    const machine = template.Resources.OrderFlowStateMachine;
    const role = template.Resources.OrderFlowStateMachineRole;
    expect(machine.Type).toBe('AWS::StepFunctions::StateMachine');
    expect(machine.Properties.TracingConfiguration).toEqual({ Enabled: true });
    expect(machine.Properties.DefinitionSubstitutions).toEqual({ ChargeCardArn: { 'Fn::GetAtt': ['ChargeDashcardLambdaFunction', 'Arn'] } });
    expect(template.Resources.ChargeDashcardLambdaFunction.Type).toBe('AWS::Lambda::Function');
    const task = (machine.Properties.Definition as { States: Record<string, { Parameters: { FunctionName: string } }> }).States.ChargeCard;
    expect(task.Parameters.FunctionName).toBe('${ChargeCardArn}');
    expect(role.Type).toBe('AWS::IAM::Role');
    const statements = JSON.stringify(role.Properties.Policies);
    expect(statements).toContain('"Action":"lambda:InvokeFunction","Resource":[{"Fn::GetAtt":["ChargeDashcardLambdaFunction","Arn"]}');
  });

  it("passes the context startExecution wrote on to the task, whose span continues the producer's trace", async () => {
    // Arrange
    const sfnMock = mockClient(SFNClient);
    sfnMock.on(StartExecutionCommand).resolves({ executionArn: 'arn:aws:states:eu-west-1:123456789012:execution:order-flow:run-1', startDate: new Date() });
    const capture = captureSpans();
    const machine = template.Resources.OrderFlowStateMachine;
    const { Parameters } = (machine.Properties.Definition as { States: Record<string, { Parameters: { Payload: unknown } }> }).States.ChargeCard;
    const seen: unknown[] = [];
    const task = traceStepFunctionsTask(async (event: unknown) => {
      seen.push(event);
      return { charged: true };
    });

    // Act: the execution's input, then the Task's Parameters over it, as Step Functions builds the function's event
    await withSpan('place order', () =>
      startExecution(new SFNClient({ region: 'eu-west-1' }), {
        stateMachineArn: 'arn:aws:states:eu-west-1:123456789012:stateMachine:order-flow',
        input: '{"orderId":"o-1","total":12,"note":"gift"}',
      }),
    );
    const input: unknown = JSON.parse(sfnMock.commandCalls(StartExecutionCommand)[0].args[0].input.input!);
    await task(applyParameters(Parameters.Payload, input), lambdaContext({ functionName: 'charge-card' }));
    sfnMock.restore();

    // Assert
    const producer = capture.span('SFN.StartExecution');
    const taskSpan = capture.span('charge-card');
    expect(seen).toEqual([{ orderId: 'o-1', total: 12 }]);
    expect(taskSpan.parentSpanContext?.spanId).toBe(producer.spanContext().spanId);
    expect(taskSpan.spanContext().traceId).toBe(producer.spanContext().traceId);
    expect(taskSpan.attributes['traced_lambda.parent.source']).toBe('step-functions-input');
  });
});
