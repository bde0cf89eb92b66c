// The Node.js that runs the tests and tools, checked against the Lambda runtime the functions deploy on.
//
// The project installs Node.js 24 as a dependency (the node-<os>-<cpu> packages in optionalDependencies), so
// every npm script, npx command and vitest worker finds it first on its PATH, whatever the machine's own Node
// is. Where no such package exists for the machine (macOS on Apple silicon), the machine's Node is used:
// older than 22 cannot run the toolchain at all, and another major than the deployed one is worth a warning.
//
// `node scripts/node-runtime.cjs` prints the version and exits 1 if it cannot run the toolchain (.ci/run);
// the test suite calls check() before any test file runs.
const { readFileSync } = require('node:fs');
const { join } = require('node:path');

const OLDEST_SUPPORTED_MAJOR = 22;

/** The major of `provider.runtime` in serverless.yml (nodejs24.x → 24). */
function deployedMajor(root = join(__dirname, '..')) {
  const match = /^\s*runtime:\s*nodejs(\d+)\.x\s*$/m.exec(readFileSync(join(root, 'serverless.yml'), 'utf8'));
  if (!match) throw new Error('serverless.yml has no provider.runtime of the form nodejsNN.x');
  return Number(match[1]);
}

/** { ok, message }: ok is false when this Node cannot run the toolchain; message says what runs. */
function check(version = process.versions.node, execPath = process.execPath) {
  const major = Number(version.split('.')[0]);
  const deployed = deployedMajor();
  const line = `Node.js v${version} (${execPath}); the functions deploy on nodejs${deployed}.x`;
  if (major < OLDEST_SUPPORTED_MAJOR) {
    return {
      ok: false,
      message:
        `${line}.\nNode.js ${OLDEST_SUPPORTED_MAJOR} or later is needed (the OpenTelemetry SDK and vitest require it). ` +
        `Run through npm (npm test, npm start, npx …) after npm ci so that the project's Node.js ${deployed} is used, ` +
        `or install Node.js ${deployed} (.nvmrc).`,
    };
  }
  if (major !== deployed) {
    return { ok: true, message: `${line}.\nWarning: not the deployed major; install Node.js ${deployed} (.nvmrc) to test what AWS runs.` };
  }
  return { ok: true, message: line };
}

module.exports = { check, deployedMajor, OLDEST_SUPPORTED_MAJOR };

if (require.main === module) {
  const { ok, message } = check();
  (ok ? console.log : console.error)(message);
  process.exitCode = ok ? 0 : 1;
}
