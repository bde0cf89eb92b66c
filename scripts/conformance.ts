/**
 * `npm run conformance -- <path to w3c/trace-context's test folder>`: runs the W3C Trace Context test suite
 * (its test.py, with Python 3 and aiohttp, e.g. Debian's python3-aiohttp) against a service built from the kit
 * (conformance/w3c-service.ts) behind serverless offline, on the HTTP API route and on the REST route, at
 * Trace Context level 2. The suite is not shipped here: clone github.com/w3c/trace-context and give its `test`
 * folder. Exits 0 when every case passes on both routes.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePorts, stopProcessGroup } from './offline/stack';

const ROOT = resolve(__dirname, '..');
const READY_TIMEOUT_MS = 90_000;
const SUITE_TIMEOUT_MS = 180_000;

async function main(): Promise<number> {
  const suite = process.argv[2] ?? process.env.W3C_TRACE_CONTEXT_TESTS;
  if (!suite || !existsSync(join(suite, 'test.py'))) {
    console.error('Give the test folder of a clone of github.com/w3c/trace-context: npm run conformance -- <path>/trace-context/test');
    return 2;
  }
  const [http, lambda] = await freePorts(2);
  const offline = spawn(process.execPath, [require.resolve('osls/bin/serverless.js'), 'offline', 'start'], {
    cwd: join(ROOT, 'conformance'),
    env: { ...process.env, CONFORMANCE_HTTP_PORT: String(http), CONFORMANCE_LAMBDA_PORT: String(lambda) },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  offline.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  offline.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(offline, 'exit');
  try {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!output.includes('Server ready')) {
      if (offline.exitCode !== null || Date.now() > deadline) throw new Error(`serverless offline did not start:\n${output}`);
      await sleep(200);
    }
    let failed = false;
    for (const [route, url] of [
      ['HTTP API', `http://127.0.0.1:${http}/test`],
      ['REST', `http://127.0.0.1:${http}/offline/test`],
    ]) {
      const { code, text } = await runSuite(suite, url);
      const summary = text.trim().split('\n').slice(-3).join(' ').replace(/\s+/g, ' ');
      console.log(`${route} (${url}): ${summary}`);
      if (code !== 0) {
        failed = true;
        console.log(text);
      }
    }
    return failed ? 1 : 0;
  } finally {
    await stopProcessGroup(offline, exited);
    await rm(join(ROOT, 'conformance', '.esbuild-conformance'), { recursive: true, force: true });
  }
}

/** test.py against one URL, at Trace Context level 2; its unittest report comes on stderr. */
async function runSuite(suite: string, url: string): Promise<{ code: number; text: string }> {
  const python = spawn('python3', ['test.py', url], { cwd: suite, env: { ...process.env, SPEC_LEVEL: '2' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  python.stdout!.on('data', (chunk: Buffer) => (text += chunk.toString()));
  python.stderr!.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const timer = setTimeout(() => python.kill('SIGKILL'), SUITE_TIMEOUT_MS);
  const [code] = (await once(python, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code: code ?? 1, text };
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  },
);
