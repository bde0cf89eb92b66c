import 'aws-sdk-client-mock-vitest/extend';
import { devService } from './service';

// Each function's own environment from serverless.yml (queue references as queue URLs), as a deployed function
// has it: the unit tests import the functions directly.
for (const fn of devService.functions) {
  for (const [name, value] of Object.entries(devService.environmentOf(fn.key))) process.env[name] ??= value;
}
