// The serverless.yml plugin that runs the functions on Lambda Managed Instances: with
// custom.managedInstances.capacityProviderArn set (LAMBDA_CAPACITY_PROVIDER_ARN), every function of the stack,
// those `npm run new` adds included, gets CloudFormation's CapacityProviderConfig, which osls does not write itself.
// The property's shape is AWS::Lambda::Function's (CloudFormation resource specification).

/** The ARN pattern CloudFormation gives CapacityProviderArn. */
const CAPACITY_PROVIDER_ARN = /^arn:aws[a-zA-Z-]*:lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:capacity-provider:[a-zA-Z0-9-_]+$/;

class ManagedInstancesPlugin {
  constructor(serverless) {
    this.serverless = serverless;
    this.hooks = { 'before:package:finalize': () => this.attach() };
  }

  attach() {
    const settings = this.serverless.service.custom?.managedInstances ?? {};
    const arn = String(settings.capacityProviderArn ?? '').trim();
    if (arn === '') return;
    if (!CAPACITY_PROVIDER_ARN.test(arn)) {
      throw new this.serverless.classes.Error(
        `custom.managedInstances.capacityProviderArn "${arn}" is not a Lambda capacity provider's ARN (arn:<partition>:lambda:<region>:<account>:capacity-provider:<name>).`,
      );
    }
    const config = { CapacityProviderArn: arn };
    const concurrency = String(settings.perEnvironmentMaxConcurrency ?? '').trim();
    if (concurrency !== '') {
      const value = Number(concurrency);
      if (!Number.isInteger(value) || value < 1 || value > 1600) {
        throw new this.serverless.classes.Error(`custom.managedInstances.perEnvironmentMaxConcurrency "${concurrency}" is not a whole number from 1 to 1600.`);
      }
      config.PerExecutionEnvironmentMaxConcurrency = value;
    }
    const resources = this.serverless.service.provider.compiledCloudFormationTemplate.Resources;
    for (const resource of Object.values(resources)) {
      if (resource.Type !== 'AWS::Lambda::Function') continue;
      resource.Properties.CapacityProviderConfig = { LambdaManagedInstancesCapacityProviderConfig: { ...config } };
    }
  }
}

module.exports = ManagedInstancesPlugin;
