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
    env: {
      AWS_REGION: 'eu-west-1',
      ORDERS_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/123456789012/order-pipeline-dev-orders',
      NOTIFY_CUSTOMER_FUNCTION: 'order-pipeline-dev-notify-customer',
    },
  },
});
