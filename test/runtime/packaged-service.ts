/**
 * What `serverless package` produces for the service, ready to run under the runtime interface client
 * (./lambda-runtime.ts): the zips unzipped one per function, the CloudFormation template the functions' settings
 * come from, and a NODE_PATH that gives a function what the Lambda Node.js runtime gives it (the AWS SDK v3) and
 * nothing else. Shared by the runtime tests; each test file packages into a temporary folder of its own.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import JSZip from 'jszip';
import { devService } from '../service';

const ROOT = resolve(__dirname, '..', '..');
const STAGE = 'dev';
/** Deployed names as serverless.yml gives them on the unit tests' stage. */
export const PREFIX = `${devService.service}-${STAGE}-`;

// The properties of an AWS::Lambda::Function the tests read; the rest of the template is not typed here.
export interface FunctionProperties {
  FunctionName: string;
  Handler: string;
  Runtime: string;
  MemorySize?: number;
  Environment: { Variables: Record<string, unknown> };
}

export interface ServicePackage {
  /** A temporary folder for the test file: the package, the unzipped functions, anything else it writes. */
  readonly work: string;
  /** NODE_PATH for the runtime: the AWS SDK v3 only, as in /var/runtime/node_modules. */
  readonly nodePath: string;
  /** The template's AWS::Lambda::Function of `key` (e.g. `notify-customer`). */
  functionResource(key: string): FunctionProperties;
  /** Unzips `<key>.zip` into `work/<key>` (once) and gives that folder: the function's LAMBDA_TASK_ROOT. */
  taskRoot(key: string): Promise<string>;
  /** The function's template environment (plain values only) with `overrides` over it. */
  environment(key: string, overrides?: Record<string, string>): Record<string, string>;
  /** Removes the temporary folder and the packaging's own. */
  remove(): Promise<void>;
}

/** Runs `serverless package` on the dev stage; `label` keeps this file's esbuild work folder apart from others'. */
export async function packageService(label: string): Promise<ServicePackage> {
  const work = await mkdtemp(join(tmpdir(), `traced-${label}-`));
  const esbuildWorkFolder = `.esbuild-${label}`;
  const outDir = join(work, 'package');
  await promisify(execFile)(process.execPath, [require.resolve('osls/bin/serverless.js'), 'package', '--stage', STAGE, '--package', outDir], {
    cwd: ROOT,
    env: { ...process.env, ESBUILD_WORK_FOLDER: esbuildWorkFolder, AWS_PROFILE: 'no-such-profile' },
    timeout: 120_000,
  });
  const template: { Resources: Record<string, { Type: string; Properties: any }> } = JSON.parse(
    await readFile(join(outDir, 'cloudformation-template-update-stack.json'), 'utf8'),
  );

  const nodePath = join(work, 'runtime', 'node_modules');
  await mkdir(nodePath, { recursive: true });
  await symlink(join(ROOT, 'node_modules', '@aws-sdk'), join(nodePath, '@aws-sdk'), 'dir');

  const unzipped = new Map<string, Promise<string>>();
  const functionResource = (key: string): FunctionProperties => {
    const found = Object.values(template.Resources).find(
      (resource) => resource.Type === 'AWS::Lambda::Function' && resource.Properties.FunctionName === PREFIX + key,
    );
    if (!found) throw new Error(`no AWS::Lambda::Function ${PREFIX + key} in the template`);
    return found.Properties;
  };
  return {
    work,
    nodePath,
    functionResource,
    taskRoot(key) {
      let done = unzipped.get(key);
      if (!done) {
        const into = join(work, key);
        done = unzip(join(outDir, `${key}.zip`), into).then(() => into);
        unzipped.set(key, done);
      }
      return done;
    },
    environment: (key, overrides = {}) => ({ ...plainVariables(functionResource(key).Environment.Variables), ...overrides }),
    async remove() {
      await rm(work, { recursive: true, force: true });
      await rm(join(ROOT, esbuildWorkFolder), { recursive: true, force: true });
    },
  };
}

/** The template's variables that hold a plain value (references to stack resources are given by the test). */
function plainVariables(variables: Record<string, unknown> = {}): Record<string, string> {
  return Object.fromEntries(Object.entries(variables).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
}

async function unzip(zipFile: string, into: string): Promise<void> {
  const zip = await JSZip.loadAsync(await readFile(zipFile));
  for (const entry of Object.values(zip.files)) {
    if (entry.dir) continue;
    const target = join(into, entry.name);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, await entry.async('nodebuffer'));
  }
}
