import test, { type ExecutionContext } from 'ava';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ApplianceConfig,
  ConfigError,
  configSchema,
  DEFAULT_CONFIG,
  loadConfig,
  parseConfigText,
  parsePathFlag,
  validateConfig,
} from '../../src/cli/config.js';

const FILE = '/etc/mptun.yaml';

/** The ConfigError that `fn` throws. */
function refused(t: ExecutionContext, fn: () => unknown): ConfigError {
  const e = t.throws(fn, { instanceOf: ConfigError });
  if (e === undefined) throw new Error('no ConfigError');
  return e;
}

/** A temporary directory removed when the test ends. */
async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mptun-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const FULL_YAML = `# mptun up --config
tun: mp0
paths:
  - eth0:192.0.2.1
  - iface: wwan0
    gateway: "[2001:DB8::1]"
  - iface: wlan0
    backup: true
  - usb0
backup: [usb0]
exclude:
  - 10.1.2.3/8          # host bits: normalized
  - 2001:db8:0:0::/32
  - 192.0.2.7
excludeLan: true
sourceRange: 100.64.0.0/20
sourceRange6: fd00:aaaa:bbbb::/48
table: 0x2000
rulePriority: 500
mtu: 1400
offload: false
scheduler: round-robin
schedulerPolicy:
  - { port: 22, scheduler: redundant }
  - { cidr: 10.1.2.3/8, port: 8000-8999, scheduler: ecf }
  - scheduler: blest
congestionControl: cubic
fullmesh: true
maxSubflows: 4
synBacklog: 256
maxPendingOpens: 512
synRate: 2000
controlSocket: /var/run/mptun.sock
stateDir: /var/lib/mptun
logLevel: debug
metrics: "[::1]:9100"
server: 192.0.2.10          # port 7443
key: /etc/mptun/key
direct: [203.0.113.9/24]
serverPool: 4
`;

const FULL_CONFIG: ApplianceConfig = {
  tun: 'mp0',
  paths: [
    { iface: 'eth0', gateway: '192.0.2.1', backup: false },
    { iface: 'wwan0', gateway: '2001:db8::1', backup: false },
    { iface: 'wlan0', backup: true },
    { iface: 'usb0', backup: true },
  ],
  backup: ['usb0', 'wlan0'],
  exclude: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7/32'],
  excludeLan: true,
  sourceRange: '100.64.0.0/20',
  sourceRange6: 'fd00:aaaa:bbbb::/48',
  table: 0x2000,
  rulePriority: 500,
  mtu: 1400,
  offload: false,
  scheduler: 'round-robin',
  schedulerPolicy: [{ port: 22, scheduler: 'redundant' }, { cidr: '10.0.0.0/8', port: [8000, 8999], scheduler: 'ecf' }, { scheduler: 'blest' }],
  congestionControl: 'cubic',
  fullmesh: true,
  maxSubflows: 4,
  synBacklog: 256,
  maxPendingOpens: 512,
  synRate: 2000,
  controlSocket: '/var/run/mptun.sock',
  stateDir: '/var/lib/mptun',
  logLevel: 'debug',
  metrics: '[::1]:9100',
  server: '192.0.2.10:7443',
  key: '/etc/mptun/key',
  direct: ['203.0.113.0/24'],
  serverPool: 4,
};

test('defaults', (t) => {
  t.deepEqual({ ...DEFAULT_CONFIG }, {
    tun: 'mptun0',
    paths: [],
    backup: [],
    exclude: [],
    excludeLan: false,
    sourceRange: '198.18.0.0/16',
    sourceRange6: 'fd6d:7074:756e::/48',
    table: 7100,
    rulePriority: 9000,
    mtu: 1500,
    offload: true,
    scheduler: 'lowest-rtt',
    schedulerPolicy: [],
    congestionControl: 'lia',
    fullmesh: false,
    maxSubflows: 8,
    synBacklog: 1024,
    maxPendingOpens: 1024,
    synRate: 1000,
    controlSocket: '/run/mptun/control.sock',
    stateDir: '/run/mptun',
    logLevel: 'info',
    metrics: null,
    server: null,
    key: null,
    direct: [],
    serverPool: 2,
  });
  t.true(Object.isFrozen(DEFAULT_CONFIG));
  t.true(Object.isFrozen(DEFAULT_CONFIG.paths));
  // An empty file, a file of comments and an empty mapping are all defaults.
  t.deepEqual(parseConfigText('', FILE), { ...DEFAULT_CONFIG });
  t.deepEqual(parseConfigText('# nothing set\n', FILE), { ...DEFAULT_CONFIG });
  t.deepEqual(parseConfigText('{}', '/etc/mptun.json'), { ...DEFAULT_CONFIG });
  t.deepEqual(validateConfig({}, FILE), { ...DEFAULT_CONFIG });
  // The config's lists are its own, not the frozen defaults.
  const cfg = validateConfig({}, FILE);
  cfg.exclude.push('10.0.0.0/8');
  t.deepEqual(DEFAULT_CONFIG.exclude, []);
});

test('a full YAML file: every field, paths as strings and mappings, normalized prefixes and gateways', (t) => {
  t.deepEqual(parseConfigText(FULL_YAML, FILE), FULL_CONFIG);
});

test('a JSON file is parsed as JSON and gives the same config', (t) => {
  const json = JSON.stringify({ ...FULL_CONFIG, $schema: '../docs/config.schema.json', table: 8192, paths: [
    'eth0:192.0.2.1',
    { iface: 'wwan0', gateway: '2001:db8::1' },
    { iface: 'wlan0', backup: true },
    'usb0',
  ], backup: ['usb0'], exclude: ['10.1.2.3/8', '2001:db8::/32', '192.0.2.7'], server: '192.0.2.10:7443', direct: ['203.0.113.9/24'] }, null, 2);
  t.deepEqual(parseConfigText(json, '/etc/mptun.json'), FULL_CONFIG);
  // JSON syntax errors say where, with a line and a column.
  const e = refused(t, () => parseConfigText('{\n  "mtu": 1500,\n}\n', '/etc/mptun.json'));
  t.is(e.field, '(file)');
  t.is(e.source, '/etc/mptun.json');
  t.regex(e.reason, /^not valid JSON: .*line 3/);
  // A .json file is not read as YAML (which would take this flow mapping).
  refused(t, () => parseConfigText('{mtu: 1500}', '/etc/mptun.json'));
  t.is(parseConfigText('{mtu: 1400}', '/etc/mptun.conf').mtu, 1400);
  t.is(parseConfigText('{"mtu": 1300}', '/etc/mptun.conf', 'json').mtu, 1300);
});

test('YAML syntax errors and duplicate keys name the file and the line', (t) => {
  let e = refused(t, () => parseConfigText('tun: mp0\npaths: [eth0\nmtu: 1400\n', FILE));
  t.is(e.field, '(file)');
  t.is(e.source, FILE);
  t.regex(e.reason, /^not valid YAML: .* at line \d+, column \d+/);
  t.true(e.message.startsWith(`config ${FILE}: (file): not valid YAML`));
  e = refused(t, () => parseConfigText('mtu: 1400\nmtu: 1500\n', FILE));
  t.regex(e.reason, /unique.* at line 2, column 1/);
  // A file that is not a mapping.
  e = refused(t, () => parseConfigText('- eth0\n', FILE));
  t.is(e.field, '(file)');
  t.regex(e.reason, /must be a mapping of field names to values, not a list/);
});

// Each bad value: the file's text, the field named and the reason.
const BAD_VALUES: [name: string, yaml: string, field: string, reason: RegExp][] = [
  ['gateway of the second path', 'paths: [eth0, {iface: wwan0, gateway: 10.0.0.x}]', 'paths[1].gateway', /^"10\.0\.0\.x" is not an IP address$/],
  ['gateway in a path string', 'paths: ["eth0:10.0.0.300"]', 'paths[0]', /^"10\.0\.0\.300" is not an IP address$/],
  ['multicast gateway', 'paths: [{iface: eth0, gateway: 224.0.0.1}]', 'paths[0].gateway', /"224\.0\.0\.1" is not a unicast address/],
  ['path string with an empty gateway', 'paths: ["eth0:"]', 'paths[0]', /"eth0:" has no gateway/],
  ['unknown field', 'foo: 1', 'foo', /^unknown field "foo"; the fields are tun, paths, /],
  ['misspelt field', 'max-subflows: 4', 'max-subflows', /unknown field "max-subflows"; did you mean "maxSubflows"\?/],
  ['unknown field in a path', 'paths: [{iface: eth0, gw: 192.0.2.1}]', 'paths[0].gw', /unknown field "gw"/],
  ['path without an interface', 'paths: [{gateway: 192.0.2.1}]', 'paths[0].iface', /is missing/],
  ['path of the wrong type', 'paths: [7]', 'paths[0]', /must be "IFACE", "IFACE:GATEWAY" or a mapping/],
  ['duplicate path', 'paths: [eth0, wwan0, {iface: eth0}]', 'paths[2].iface', /"eth0" is already paths\[0\]/],
  ['bad CIDR', 'exclude: [10.0.0.0/8, 10.0.0.0/33]', 'exclude[1]', /"10\.0\.0\.0\/33": the prefix length must be a whole number from 0 to 32/],
  ['not an address', 'exclude: [example.com/24]', 'exclude[0]', /"example\.com"/],
  ['exclude not a list', 'exclude: 10.0.0.0/8', 'exclude', /^must be a list, not "10\.0\.0\.0\/8"$/],
  ['tun name too long', 'tun: abcdefghijklmnop', 'tun', /"abcdefghijklmnop" is not a valid interface name: it is 16 bytes long/],
  ['tun name with a slash', 'tun: mp/0', 'tun', /not a valid interface name: Linux refuses "\/"/],
  ['tun name with a space', 'tun: "mp 0"', 'tun', /not a valid interface name: Linux refuses " "/],
  ['tun name ..', 'tun: ".."', 'tun', /"\.\." is not a valid interface name: "\." and "\.\." are reserved/],
  ['tun name empty', 'tun: ""', 'tun', /it is empty/],
  ['tun not a string', 'tun: 7', 'tun', /must be a string \(an interface name\), not 7/],
  ['mtu out of range', 'mtu: 9001', 'mtu', /^must be an integer between 576 and 9000, not 9001$/],
  ['mtu not an integer', 'mtu: 1500.5', 'mtu', /must be an integer between 576 and 9000, not 1500\.5/],
  ['mtu quoted', 'mtu: "1500"', 'mtu', /must be an integer between 576 and 9000, not "1500"/],
  ['mtu without a value', 'mtu:', 'mtu', /not an empty value/],
  ['reserved table', 'table: 254', 'table', /254 is reserved/],
  ['table zero', 'table: 0', 'table', /must be an integer between 1 and 4294967280, not 0/],
  ['table range over a reserved table', 'table: 250\npaths: [a, b, c, d]', 'table', /tables 250 to 254 \(capture and 4 paths\) include 253/],
  ['rule priority', 'rulePriority: 32001', 'rulePriority', /between 1 and 32000/],
  ['max subflows', 'maxSubflows: 0', 'maxSubflows', /between 1 and 32, not 0/],
  ['bad scheduler', 'scheduler: fastest', 'scheduler', /^must be one of "lowest-rtt", "round-robin", "blest", "ecf", "redundant", "kernel", not "fastest"$/],
  ['policy not a list', 'schedulerPolicy: blest', 'schedulerPolicy', /must be a list of rules \(port, cidr, scheduler\), not "blest"/],
  ['policy rule without a scheduler', 'schedulerPolicy: [{port: 22}]', 'schedulerPolicy[0].scheduler', /is missing/],
  ['policy bad scheduler', 'schedulerPolicy: [{port: 22, scheduler: fast}]', 'schedulerPolicy[0].scheduler', /must be one of "lowest-rtt".*not "fast"/],
  ['policy bad port', 'schedulerPolicy: [{scheduler: blest}, {port: 70000, scheduler: ecf}]', 'schedulerPolicy[1].port', /must be a port \(1 to 65535\) or a range "LOW-HIGH", not 70000/],
  ['policy reversed range', 'schedulerPolicy: [{port: 90-80, scheduler: ecf}]', 'schedulerPolicy[0].port', /not "90-80"/],
  ['policy bad cidr', 'schedulerPolicy: [{cidr: 10.0.0.0/33, scheduler: ecf}]', 'schedulerPolicy[0].cidr', /./],
  ['policy unknown key', 'schedulerPolicy: [{dport: 22, scheduler: ecf}]', 'schedulerPolicy[0].dport', /unknown field "dport"/],
  ['bad congestion control', 'congestionControl: bbr', 'congestionControl', /must be one of "lia", "cubic", not "bbr"/],
  ['bad log level', 'logLevel: trace', 'logLevel', /must be one of "error", "warn", "info", "debug"/],
  ['boolean as a string', 'offload: "yes"', 'offload', /^must be a boolean \(true or false\), not "yes"$/],
  ['boolean in a path', 'paths: [{iface: eth0, backup: 1}]', 'paths[0].backup', /must be a boolean/],
  ['source range IPv6', 'sourceRange: "fd00::/16"', 'sourceRange', /"fd00::\/16" is not an IPv4 prefix/],
  ['source range too small', 'sourceRange: 198.18.0.0/24', 'sourceRange', /is too small: the prefix length must be at most 22/],
  ['IPv6 source range IPv4', 'sourceRange6: 198.18.0.0/16', 'sourceRange6', /"198\.18\.0\.0\/16" is not an IPv6 prefix/],
  ['IPv6 source range too small', 'sourceRange6: "fd00:1:2:3::/62"', 'sourceRange6', /is too small: the prefix length must be at most 60/],
  ['IPv6 source range too small for the paths', 'sourceRange6: "fd00:1:2:30::/60"\npaths: [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p]', 'sourceRange6', /holds 16 \/64s, and the tun and 16 paths need 17/],
  ['source range too small for the paths', 'sourceRange: 198.18.0.0/22\npaths: [a, b, c, d]', 'sourceRange', /holds 4 \/24s, and the tun and 4 paths need 5/],
  ['relative control socket', 'controlSocket: run/mptun.sock', 'controlSocket', /must be an absolute path, not "run\/mptun\.sock"/],
  ['control socket too long', `controlSocket: /${'s'.repeat(110)}`, 'controlSocket', /is 111 bytes long; a Unix socket path holds at most 107/],
  ['relative state dir', 'stateDir: mptun', 'stateDir', /must be an absolute path/],
  ['backup not a path', 'paths: [eth0, wwan0]\nbackup: [wwan0, wlan0]', 'backup[1]', /^"wlan0" is not one of the paths \(eth0, wwan0\)$/],
  ['tun is a path', 'tun: eth0\npaths: [eth0]', 'tun', /"eth0" is also the interface of paths\[0\]/],
];

for (const [name, yaml, field, reason] of BAD_VALUES) {
  test(`refused: ${name} (${field})`, (t) => {
    const e = refused(t, () => parseConfigText(yaml, FILE));
    t.is(e.source, FILE);
    t.is(e.field, field);
    t.regex(e.reason, reason);
    t.is(e.message, `config ${FILE}: ${field}: ${e.reason}`);
  });
}

test('interface names at the limits are accepted', (t) => {
  t.is(parseConfigText('tun: abcdefghijklmno', FILE).tun, 'abcdefghijklmno');
  t.is(parseConfigText('{tun: "...", mtu: 576}', FILE, 'yaml').tun, '...');
  t.is(parseConfigText('{"tun": "a.b-c_d@e", "mtu": 9000}', 'x.json').tun, 'a.b-c_d@e');
  // Bytes are counted, not characters: 8 two-byte characters are 16 bytes.
  const e = refused(t, () => validateConfig({ tun: 'éééééééé' }, FILE));
  t.regex(e.reason, /16 bytes long/);
});

test('validateConfig checks a parsed value the same way', (t) => {
  t.deepEqual(validateConfig({ paths: ['eth0'], mtu: 1280 }, 'inline').paths, [{ iface: 'eth0', backup: false }]);
  const e = refused(t, () => validateConfig({ paths: ['eth0', { iface: 'wwan0', gateway: '10.0.0.x' }] }, 'inline'));
  t.is(e.message, 'config inline: paths[1].gateway: "10.0.0.x" is not an IP address');
  t.is(refused(t, () => validateConfig(null, 'inline')).field, '(file)');
  t.is(refused(t, () => validateConfig({ $schema: 3 }, 'inline')).field, '$schema');
});

test('parsePathFlag: IFACE, IFACE:IPv4, IFACE:[IPv6] and IFACE:IPv6', (t) => {
  t.deepEqual(parsePathFlag('eth0'), { iface: 'eth0', backup: false });
  t.deepEqual(parsePathFlag('eth0:192.0.2.1'), { iface: 'eth0', gateway: '192.0.2.1', backup: false });
  t.deepEqual(parsePathFlag('wwan0:[fe80::1]'), { iface: 'wwan0', gateway: 'fe80::1', backup: false });
  t.deepEqual(parsePathFlag('wwan0:FE80:0::1'), { iface: 'wwan0', gateway: 'fe80::1', backup: false });
  for (const [arg, reason] of [
    ['eth0:10.0.0.x', /^"10\.0\.0\.x" is not an IP address$/],
    ['eth0:', /has no gateway/],
    [':192.0.2.1', /"" is not a valid interface name: it is empty/],
    ['eth0/1:192.0.2.1', /"eth0\/1" is not a valid interface name/],
    ['eth0:fe80::1%eth0', /zone indices/],
    ['eth0:0.0.0.0', /not a unicast address/],
  ] as const) {
    const e = refused(t, () => parsePathFlag(arg));
    t.is(e.source, 'command line', arg);
    t.is(e.field, '--path', arg);
    t.regex(e.reason, reason, arg);
    t.true(e.message.startsWith('command line: --path: '), arg);
  }
});

test('backup marking: the top-level list, the paths marked in place, and auto-discovered paths', (t) => {
  let cfg = parseConfigText('paths: [eth0, wwan0, {iface: wlan0, backup: true}]\nbackup: [wwan0]', FILE);
  t.deepEqual(cfg.paths.map((p) => [p.iface, p.backup]), [['eth0', false], ['wwan0', true], ['wlan0', true]]);
  t.deepEqual(cfg.backup, ['wwan0', 'wlan0']);
  // Paths to be discovered: the names are kept for when they are.
  cfg = parseConfigText('backup: [wwan0, wwan0, wlan0]', FILE);
  t.deepEqual(cfg.paths, []);
  t.deepEqual(cfg.backup, ['wwan0', 'wlan0']);
  const e = refused(t, () => parseConfigText('backup: [wwan0, "wl/an0"]', FILE));
  t.is(e.field, 'backup[1]');
});

test('flags override the file: --path replaces, --exclude and --backup add, scalars replace', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'mptun.yaml');
  await writeFile(file, 'tun: mp0\npaths: [eth0, wwan0]\nbackup: [wwan0]\nexclude: [10.0.0.0/8]\nmtu: 1400\nlogLevel: warn\n');

  const fromFile = await loadConfig({ config: file });
  t.is(fromFile.tun, 'mp0');
  t.is(fromFile.mtu, 1400);

  const cfg = await loadConfig({
    config: file,
    path: ['wwan0', 'wlan0:192.0.2.1', 'usb0'],
    backup: ['usb0'],
    exclude: ['172.16.1.1/12', '10.0.0.0/8'],
    tun: 'mp1',
    mtu: '1280',
    maxSubflows: '2',
    offload: false,
    excludeLan: true,
    fullmesh: true,
    scheduler: 'round-robin',
    congestionControl: 'cubic',
    controlSocket: '/tmp/mptun.sock',
    stateDir: '/tmp/mptun',
    logLevel: 'debug',
  });
  t.deepEqual(cfg, {
    ...DEFAULT_CONFIG,
    tun: 'mp1',
    // The file's backup mark stays on wwan0, which is still a path; eth0 is gone.
    paths: [
      { iface: 'wwan0', backup: true },
      { iface: 'wlan0', gateway: '192.0.2.1', backup: false },
      { iface: 'usb0', backup: true },
    ],
    backup: ['wwan0', 'usb0'],
    exclude: ['10.0.0.0/8', '172.16.0.0/12'],
    excludeLan: true,
    mtu: 1280,
    maxSubflows: 2,
    offload: false,
    fullmesh: true,
    scheduler: 'round-robin',
    congestionControl: 'cubic',
    controlSocket: '/tmp/mptun.sock',
    stateDir: '/tmp/mptun',
    logLevel: 'debug',
  });

  // Without --path, --backup marks the file's paths.
  const marked = await loadConfig({ config: file, backup: ['eth0'] });
  t.deepEqual(marked.paths.map((p) => [p.iface, p.backup]), [['eth0', true], ['wwan0', true]]);
  t.deepEqual(marked.backup, ['wwan0', 'eth0']);
});

test('flags without a file start from the defaults', async (t) => {
  t.deepEqual(await loadConfig({}), { ...DEFAULT_CONFIG });
  const cfg = await loadConfig({ path: ['eth0'], backup: ['eth0'], mtu: '9000' });
  t.deepEqual(cfg.paths, [{ iface: 'eth0', backup: true }]);
  t.deepEqual(cfg.backup, ['eth0']);
  t.is(cfg.mtu, 9000);
  t.is(cfg.tun, 'mptun0');
});

test('bad flags name the flag, with the command line as the source', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'mptun.yaml');
  await writeFile(file, 'paths: [eth0, wwan0]\nsourceRange: 198.18.0.0/22\n');
  const cases: [flags: Parameters<typeof loadConfig>[0], field: string, reason: RegExp][] = [
    [{ mtu: '15OO' }, '--mtu', /^"15OO" is not a whole number$/],
    [{ mtu: '100' }, '--mtu', /^must be an integer between 576 and 9000, not 100$/],
    [{ maxSubflows: '33' }, '--max-subflows', /between 1 and 32, not 33/],
    [{ sourceRange6: '10.0.0.0/8' }, '--source-range6', /"10\.0\.0\.0\/8" is not an IPv6 prefix/],
    [{ sourceRange6: 'fd00::/32' }, '--source-range6', /is too large: the prefix length must be at least 48/],
    [{ scheduler: 'fastest' }, '--scheduler', /must be one of "lowest-rtt", "round-robin", "blest"/],
    [{ congestionControl: 'bbr' }, '--congestion-control', /must be one of "lia", "cubic"/],
    [{ logLevel: 'loud' }, '--log-level', /must be one of "error"/],
    [{ tun: 'a very long name' }, '--tun', /not a valid interface name/],
    [{ tun: 'eth0' }, '--tun', /"eth0" is also the interface of paths\[0\]/],
    [{ controlSocket: 'x.sock' }, '--control-socket', /must be an absolute path/],
    [{ stateDir: 'state' }, '--state-dir', /must be an absolute path/],
    [{ exclude: ['10.0.0.0/8', '300.0.0.0/8'] }, '--exclude', /"300\.0\.0\.0"/],
    [{ path: ['eth0', 'eth0:192.0.2.1'] }, '--path', /"eth0" is given twice/],
    [{ path: ['a', 'b', 'c', 'd'] }, '--path', /sourceRange 198\.18\.0\.0\/22 holds 4 \/24s, and the tun and 4 paths need 5/],
    [{ path: ['mptun0'] }, '--path', /"mptun0" is also the interface of paths\[0\]/],
    [{ backup: ['wlan0'] }, '--backup', /^"wlan0" is not one of the paths \(eth0, wwan0\)$/],
    [{ path: ['wlan0'], backup: ['eth0'] }, '--backup', /"eth0" is not one of the paths \(wlan0\)/],
  ];
  for (const [flags, field, reason] of cases) {
    const e = await t.throwsAsync(loadConfig({ config: file, ...flags }), { instanceOf: ConfigError }, field);
    t.is(e?.source, 'command line', field);
    t.is(e?.field, field);
    t.regex(e?.reason ?? '', reason, field);
    t.is(e?.message, `command line: ${field}: ${e?.reason}`);
  }
});

test('loadConfig reads a temporary file, YAML or JSON by its name, and names it in errors', async (t) => {
  const dir = await tempDir(t);
  const yamlFile = join(dir, 'mptun.yaml');
  await writeFile(yamlFile, FULL_YAML);
  t.deepEqual(await loadConfig({ config: yamlFile }), FULL_CONFIG);

  const jsonFile = join(dir, 'mptun.json');
  await writeFile(jsonFile, '\uFEFF{ "mtu": 1400, "paths": ["eth0"] }\n');
  const cfg = await loadConfig({ config: jsonFile });
  t.is(cfg.mtu, 1400);
  t.deepEqual(cfg.paths, [{ iface: 'eth0', backup: false }]);

  const badFile = join(dir, 'bad.yaml');
  await writeFile(badFile, 'paths:\n  - eth0\n  - iface: wwan0\n    gateway: 10.0.0.x\n');
  const e = await t.throwsAsync(loadConfig({ config: badFile }), { instanceOf: ConfigError });
  t.is(e?.message, `config ${badFile}: paths[1].gateway: "10.0.0.x" is not an IP address`);
  t.is(e?.source, badFile);
});

test('a missing or unreadable config file is named with its errno', async (t) => {
  const dir = await tempDir(t);
  const missing = join(dir, 'nope.yaml');
  let e = await t.throwsAsync(loadConfig({ config: missing }), { instanceOf: ConfigError });
  t.is(e?.source, missing);
  t.is(e?.field, '(file)');
  t.is(e?.message, `config ${missing}: (file): cannot be read: ENOENT: no such file or directory`);
  e = await t.throwsAsync(loadConfig({ config: dir }), { instanceOf: ConfigError });
  t.is(e?.source, dir);
  t.regex(e?.reason ?? '', /^cannot be read: EISDIR/);
});

test('docs/config.schema.json is configSchema(), and the schema describes every field with its default', async (t) => {
  const schema = configSchema() as { $schema: string; properties: Record<string, { default?: unknown }>; additionalProperties: boolean };
  const shipped = await readFile(new URL('../../../docs/config.schema.json', import.meta.url), 'utf8');
  // To regenerate: npm run build && node -e "import('./dist/src/cli/config.js').then((m) =>
  //   process.stdout.write(JSON.stringify(m.configSchema(), null, 2) + '\n'))" > docs/config.schema.json
  t.is(shipped, JSON.stringify(schema, null, 2) + '\n', 'docs/config.schema.json is out of date');
  t.is(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
  t.false(schema.additionalProperties);
  t.deepEqual(Object.keys(schema.properties), ['$schema', ...Object.keys(DEFAULT_CONFIG)]);
  for (const [name, value] of Object.entries(DEFAULT_CONFIG)) t.deepEqual(schema.properties[name].default, value, name);
});

test('docs/mptun.example.yaml is a valid config, and says what the README says', async (t) => {
  const file = new URL('../../../docs/mptun.example.yaml', import.meta.url);
  const c = parseConfigText(await readFile(file, 'utf8'), 'docs/mptun.example.yaml');
  t.deepEqual(c.paths, [{ iface: 'wlan0', backup: false }, { iface: 'wwan0', backup: true }]);
  t.deepEqual(c.backup, ['wwan0']);
  t.deepEqual(c.exclude, ['192.168.0.0/16']);
  t.is(c.congestionControl, 'lia');
  t.is(c.table, 7100);
});

test('the concentrator: server HOST[:PORT] normalized, key needed with it, direct prefixes; flags over the file', async (t) => {
  const base = { key: '/etc/mptun/key' };
  t.is(validateConfig({ ...base, server: '198.51.100.7' }, FILE).server, '198.51.100.7:7443');
  t.is(validateConfig({ ...base, server: '198.51.100.7:443' }, FILE).server, '198.51.100.7:443');
  t.is(validateConfig({ ...base, server: '[2001:DB8::7]:8443' }, FILE).server, '[2001:db8::7]:8443');
  t.is(validateConfig({ ...base, server: '2001:db8::7' }, FILE).server, '[2001:db8::7]:7443');
  t.is(validateConfig({ ...base, server: 'VPS.example.net:9' }, FILE).server, 'vps.example.net:9');
  t.is(validateConfig({ server: null }, FILE).server, null);
  let e = refused(t, () => validateConfig({ ...base, server: '198.51.100.7:70000' }, FILE));
  t.is(e.field, 'server');
  t.regex(e.reason, /port must be a number from 1 to 65535/);
  e = refused(t, () => validateConfig({ ...base, server: '224.0.0.1' }, FILE));
  t.is(e.field, 'server');
  t.regex(e.reason, /not a unicast address/);
  e = refused(t, () => validateConfig({ ...base, server: 'bad_host!' }, FILE));
  t.regex(e.reason, /neither an IP address nor a host name/);
  e = refused(t, () => validateConfig({ server: '198.51.100.7' }, FILE));
  t.is(e.field, 'key');
  t.regex(e.reason, /is missing: a server needs the key/);
  e = refused(t, () => validateConfig({ key: 'relative/key' }, FILE));
  t.is(e.field, 'key');
  e = refused(t, () => validateConfig({ direct: ['10.0.0.0/33'] }, FILE));
  t.is(e.field, 'direct[0]');
  // flags: --server and --key (a relative key path is made absolute), --direct adds
  const c = await loadConfig({ server: '198.51.100.7:9000', key: 'k', direct: ['10.9.0.0/16', '10.9.1.1'] });
  t.is(c.server, '198.51.100.7:9000');
  t.is(c.key, join(process.cwd(), 'k'));
  t.deepEqual(c.direct, ['10.9.0.0/16', '10.9.1.1/32']);
  const f = await t.throwsAsync(loadConfig({ server: '198.51.100.7' }), { instanceOf: ConfigError });
  t.is(f?.field, '--server');
  t.regex(f?.reason ?? '', /needs --key FILE/);
  const g = await t.throwsAsync(loadConfig({ server: '198.51.100.7', key: '/k', direct: ['nope'] }), { instanceOf: ConfigError });
  t.is(g?.field, '--direct');
  // --server-pool: 0..64, the flag named when refused
  t.is((await loadConfig({ server: '198.51.100.7', key: '/k', serverPool: '0' })).serverPool, 0);
  const h = await t.throwsAsync(loadConfig({ server: '198.51.100.7', key: '/k', serverPool: '65' }), { instanceOf: ConfigError });
  t.is(h?.field, '--server-pool');
  e = refused(t, () => validateConfig({ serverPool: -1 }, FILE));
  t.is(e.field, 'serverPool');
  // without a server nothing of it is needed, and nothing changes
  t.like(await loadConfig({}), { server: null, key: null, direct: [], serverPool: 2 });
});
