// Lint: TypeScript rules for the whole tree, and the sans-IO rule of DESIGN.md for the
// protocol core: src/ip, src/tcp and src/mptcp never do I/O and never read the clock.
import tseslint from 'typescript-eslint';

const sansIoImports = ['net', 'dgram', 'timers', 'timers/promises', 'fs', 'fs/promises', 'child_process', 'worker_threads', 'perf_hooks']
  .flatMap((m) => [`node:${m}`, m]);

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'build/**'] },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommended],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // The sans-IO core: time is a parameter, packets are inputs and outputs.
    files: ['src/ip/**/*.ts', 'src/tcp/**/*.ts', 'src/mptcp/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: sansIoImports.map((name) => ({ name, message: 'The protocol core is sans-IO (DESIGN.md): no I/O here.' })),
      }],
      'no-restricted-globals': ['error',
        ...['setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'clearImmediate', 'queueMicrotask', 'performance']
          .map((name) => ({ name, message: 'The protocol core is sans-IO: time is a parameter, the engine owns the timers.' })),
      ],
      'no-restricted-properties': ['error',
        { object: 'Date', property: 'now', message: 'The protocol core never reads the clock: take `now` as a parameter.' },
        { object: 'process', property: 'hrtime', message: 'The protocol core never reads the clock: take `now` as a parameter.' },
        { object: 'performance', property: 'now', message: 'The protocol core never reads the clock: take `now` as a parameter.' },
      ],
      'no-restricted-syntax': ['error',
        { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: 'The protocol core never reads the clock.' },
      ],
    },
  },
);
