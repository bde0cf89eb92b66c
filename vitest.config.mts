import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The JSON report lets .ci/run print a plain "N passed, N failed" summary line.
    reporters: ['default', ['json', { outputFile: '.vitest/results.json' }]],
    // Prints the Node.js that runs the tests and stops on one older than the toolchain needs.
    globalSetup: ['test/global-setup.ts'],
    setupFiles: ['test/setup.ts'],
    // The offline end-to-end and packaging tests start real processes; everything else runs in milliseconds.
    testTimeout: 10_000,
    hookTimeout: 120_000,
    // The functions' own variables (queue URLs, function names) come from serverless.yml: test/setup.ts.
    env: { AWS_REGION: 'eu-west-1' },
  },
});
