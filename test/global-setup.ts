// Runs once before any test file: says which Node.js runs the suite, and stops it on one that cannot; reads the
// service's names from serverless.yml for every test file.
import type { TestProject } from 'vitest/node';
import { OFFLINE_STAGE, printServiceConfig, type PrintedConfig } from '../scripts/offline/service';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { check } = require('../scripts/node-runtime.cjs') as {
  check(): { ok: boolean; message: string };
};

export default function setup(project: TestProject): void {
  const { ok, message } = check();
  if (!ok) throw new Error(message);
  console.log(message);
  // serverless.yml read once for the whole run, for the stage the unit tests name and the one offline runs on.
  project.provide('printedService', { dev: printServiceConfig('dev'), offline: printServiceConfig(OFFLINE_STAGE) });
}

declare module 'vitest' {
  export interface ProvidedContext {
    printedService: { dev: PrintedConfig; offline: PrintedConfig };
  }
}
