// Lint: TypeScript rules for the whole tree; the layers of DESIGN.md (each folder of src/
// imports only the folders below it; test/setup/layers.test.ts also finds import cycles); and the sans-IO
// rule for the protocol core: src/ip, src/tcp and src/mptcp never do I/O and never read the clock.
import tseslint from 'typescript-eslint';

const sansIoImports = ['net', 'dgram', 'timers', 'timers/promises', 'fs', 'fs/promises', 'child_process', 'worker_threads', 'perf_hooks']
  .flatMap((m) => [`node:${m}`, m]);

// Which folders of src/ each folder may import (DESIGN.md, "Layers and their rooms"): layers
// point down only. The wire formats (src/ip, with the virtio-net header) are the floor.
const LAYERS = {
  ip: [],
  tun: ['ip'],
  tcp: ['ip'],
  mptcp: ['tcp', 'ip'],
  routing: ['ip'],
  convert: ['ip'],
  // the local control socket of a running mptun (mptun up, mptun server)
  control: [],
  server: ['ip', 'convert', 'routing', 'tun', 'control'],
  appliance: ['ip', 'tcp', 'mptcp', 'routing', 'tun', 'control', 'convert'],
  cli: ['ip', 'tcp', 'mptcp', 'routing', 'tun', 'appliance', 'convert', 'server', 'control'],
};
const FOLDERS = Object.keys(LAYERS);
const SANS_IO = new Set(['ip', 'tcp', 'mptcp', 'convert']);

function importRules(folder) {
  const forbidden = FOLDERS.filter((f) => f !== folder && !LAYERS[folder].includes(f));
  const rule = {
    patterns: forbidden.map((f) => ({ group: [`../${f}`, `../${f}/*`, `../../${f}/*`], message: `src/${folder} may import only ${LAYERS[folder].map((x) => `src/${x}`).join(', ') || 'nothing of ours'} (layers point down).` })),
  };
  if (SANS_IO.has(folder)) rule.paths = sansIoImports.map((name) => ({ name, message: 'The protocol core is sans-IO (DESIGN.md): no I/O here.' }));
  return { files: [`src/${folder}/**/*.ts`], rules: { 'no-restricted-imports': ['error', rule] } };
}

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
  ...FOLDERS.map(importRules),
  {
    // The sans-IO core: time is a parameter, packets are inputs and outputs.
    files: ['src/ip/**/*.ts', 'src/tcp/**/*.ts', 'src/mptcp/**/*.ts', 'src/convert/**/*.ts'],
    rules: {
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
