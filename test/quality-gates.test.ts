import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

// The gates .ci/run puts before the tests: each must reject what it is there for, and .ci/run must run them.
const ROOT = resolve(__dirname, '..');
const dirs: string[] = [];

afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** Runs a project binary; resolves with its exit code and output instead of rejecting on a failure. */
async function exitOf(bin: string, args: string[], options: { cwd?: string; input?: string } = {}) {
  const child = execFile(resolve(ROOT, 'node_modules', '.bin', bin), args, { cwd: options.cwd ?? ROOT, timeout: 90_000 });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  if (options.input !== undefined) child.stdin!.end(options.input);
  const code = await new Promise<number | null>((done) => child.on('close', done));
  return { code, output };
}

describe('quality gates', () => {
  it('.ci/run runs the type check, the lint and the format check before the tests, and fails on any of them', async () => {
    const ci = await readFile(resolve(ROOT, '.ci/run'), 'utf8');
    const lines = ci.split('\n');
    const at = (command: string) => lines.findIndex((line) => line.trim() === `${command} || status=$?`);
    for (const command of ['npm run typecheck', 'npm run lint', 'npm run format:check']) expect(at(command), command).toBeGreaterThan(-1);
    expect(at('npm run format:check')).toBeLessThan(at('npm test'));
    expect(lines.at(-2)?.trim() || lines.at(-1)?.trim()).toBe('exit "$status"');
  });

  it('lint rejects a promise nobody awaits in lib/', { timeout: 60_000 }, async () => {
    const floating = 'export async function send(): Promise<void> {}\nexport function handle(): void {\n  send();\n}\n';
    const { code, output } = await exitOf('eslint', ['--stdin', '--stdin-filename', 'lib/handlers/http.ts'], { input: floating });
    expect(code).toBe(1);
    expect(output).toContain('@typescript-eslint/no-floating-promises');
    // The same code with the promise handed off on purpose passes.
    expect(
      (await exitOf('eslint', ['--stdin', '--stdin-filename', 'lib/handlers/http.ts'], { input: floating.replace('  send();', '  void send();') })).code,
    ).toBe(0);
  });

  it('the type check rejects a type error, with the project settings', { timeout: 90_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'traced-typecheck-'));
    dirs.push(dir);
    await writeFile(
      join(dir, 'tsconfig.json'),
      JSON.stringify({ extends: resolve(ROOT, 'tsconfig.json'), include: ['*.ts'], compilerOptions: { typeRoots: [resolve(ROOT, 'node_modules/@types')] } }),
    );
    await symlink(resolve(ROOT, 'node_modules'), join(dir, 'node_modules'));
    await writeFile(join(dir, 'wrong.ts'), "export const count: number = 'three';\n");
    const { code, output } = await exitOf('tsc', ['--noEmit', '-p', dir], { cwd: dir });
    expect(code).not.toBe(0);
    expect(output).toContain("Type 'string' is not assignable to type 'number'");
    await writeFile(join(dir, 'wrong.ts'), 'export const count: number = 3;\n');
    expect((await exitOf('tsc', ['--noEmit', '-p', dir], { cwd: dir })).code).toBe(0);
  });
});
