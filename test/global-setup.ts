// Runs once before any test file: says which Node.js runs the suite, and stops it on one that cannot.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { check } = require('../scripts/node-runtime.cjs') as {
  check(): { ok: boolean; message: string };
};

export default function setup(): void {
  const { ok, message } = check();
  if (!ok) throw new Error(message);
  console.log(message);
}
