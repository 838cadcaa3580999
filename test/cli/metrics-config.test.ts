// The `metrics` field and `--metrics` flag: where `mptun up` serves its Prometheus metrics.
// Off by default; a port alone means the loopback; a bad value is refused naming the field.
import test from 'ava';
import { ConfigError, DEFAULT_CONFIG, loadConfig, metricsEndpoint, parseConfigText, validateConfig } from '../../src/cli/config.js';

const FILE = '/etc/mptun.yaml';

test('off by default; a port alone, or ":PORT", is the loopback 127.0.0.1', async (t) => {
  t.is(DEFAULT_CONFIG.metrics, null);
  t.is(parseConfigText('', FILE).metrics, null);
  t.is(parseConfigText('metrics: null\n', FILE).metrics, null);
  t.is(parseConfigText('metrics: 9464\n', FILE).metrics, '127.0.0.1:9464');
  t.is(parseConfigText('metrics: "9464"\n', FILE).metrics, '127.0.0.1:9464');
  t.is(parseConfigText('metrics: ":9464"\n', FILE).metrics, '127.0.0.1:9464');
  t.is((await loadConfig({ metrics: '9464' })).metrics, '127.0.0.1:9464');
  t.is((await loadConfig({ metrics: ':9100' })).metrics, '127.0.0.1:9100');
  t.is((await loadConfig({})).metrics, null);
});

test('ADDR:PORT with an IPv4 address, or an IPv6 one in brackets; normalized', async (t) => {
  t.is(parseConfigText('metrics: "0.0.0.0:9464"\n', FILE).metrics, '0.0.0.0:9464');
  t.is(parseConfigText('metrics: "192.0.2.7:09464"\n', FILE).metrics, '192.0.2.7:9464');
  t.is(parseConfigText('metrics: "[::1]:9464"\n', FILE).metrics, '[::1]:9464');
  t.is(parseConfigText('metrics: "[2001:DB8:0::1]:80"\n', FILE).metrics, '[2001:db8::1]:80');
  t.is(validateConfig({ metrics: '[::]:9464' }, FILE).metrics, '[::]:9464');
  t.is((await loadConfig({ metrics: '127.0.0.1:9464' })).metrics, '127.0.0.1:9464');
  t.deepEqual(metricsEndpoint('127.0.0.1:9464'), { host: '127.0.0.1', port: 9464 });
  t.deepEqual(metricsEndpoint('[2001:db8::1]:80'), { host: '2001:db8::1', port: 80 });
});

test('a bad value is refused, naming the field (file) or the flag (command line)', async (t) => {
  const bad: Array<[unknown, RegExp]> = [
    ['localhost:9464', /"localhost" is not an IP address/],
    ['127.0.0.1', /the port must be a number from 1 to 65535/],
    ['127.0.0.1:0', /the port must be a number from 1 to 65535/],
    [':65536', /the port must be a number from 1 to 65535/],
    [0, /the port must be a number from 1 to 65535/],
    ['::1:9464', /not ADDR:PORT, PORT or :PORT \(an IPv6 address goes in brackets/],
    ['224.0.0.1:9464', /is not an address of this host/],
    ['', /the port must be/],
    [true, /must be a string/],
    [['9464'], /must be a string/],
  ];
  for (const [value, reason] of bad) {
    const e = t.throws(() => validateConfig({ metrics: value }, FILE), { instanceOf: ConfigError }, JSON.stringify(value));
    t.is(e?.field, 'metrics');
    t.regex(e?.reason ?? '', reason, JSON.stringify(value));
  }
  const e = await t.throwsAsync(loadConfig({ metrics: 'nine' }), { instanceOf: ConfigError });
  t.is(e?.message, 'command line: --metrics: "nine": the port must be a number from 1 to 65535');
  const e2 = await t.throwsAsync(loadConfig({ metrics: '10.0.0.1:' }), { instanceOf: ConfigError });
  t.is(e2?.field, '--metrics');
});
