// `npm run lint` (run by .ci/run): ESLint's and typescript-eslint's recommended rules, with type information for
// the rules that need it (a promise nobody awaits loses its error, and spans with it).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const nodeGlobals = Object.fromEntries(
  ['console', 'process', 'Buffer', 'URL', 'globalThis', 'setTimeout', 'clearTimeout', 'setImmediate', 'performance', 'AbortSignal', 'fetch'].map((name) => [
    name,
    'readonly',
  ]),
);

export default tseslint.config(
  { ignores: ['node_modules/', '.serverless/', '.esbuild/', 'bench/.build/', '.vitest/', 'coverage/', '.traces/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['eslint.config.mjs'] }, tsconfigRootDir: import.meta.dirname },
      globals: nodeGlobals,
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // A walk along a chain of linked nodes starts from `this`.
      '@typescript-eslint/no-this-alias': ['error', { allowedNames: ['node'] }],
    },
  },
  // CommonJS scripts (run by Node.js before anything is built) require what they use.
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', module: 'writable', __dirname: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  // Tests read untyped documents (CloudFormation templates, OTLP bodies, runtime answers) and poke at them.
  { files: ['test/**/*.ts'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
);
