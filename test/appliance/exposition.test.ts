// The Prometheus text exposition format 0.0.4 (src/appliance/exposition.ts): exact text for a
// small fixture, the escaping of HELP text and label values, values, and what it refuses.
import test from 'ava';
import {
  escapeHelp, escapeLabelValue, ExpositionError, FamilyBuilder, formatExposition, formatValue, type MetricFamily,
} from '../../src/appliance/exposition.js';
import { parseExposition, sampleValue } from '../helpers/exposition-check.js';

const FIXTURE: MetricFamily[] = [
  { name: 'mptun_uptime_seconds', help: 'Seconds since mptun up started.', type: 'gauge', samples: [{ value: 12.5 }] },
  {
    name: 'mptun_path_bytes_out_total', help: 'Bytes sent on the path.', type: 'counter', samples: [
      { labels: { path: '0', iface: 'eth0' }, value: 1234567 },
      { labels: { path: '1', iface: 'we"ird\\if\nname' }, value: 0 },
    ],
  },
  { name: 'mptun_empty', help: 'No samples: left out.', type: 'gauge', samples: [] },
  { name: 'mptun_path_srtt_seconds', help: 'A back\\slash and a\nnew line in HELP.', type: 'gauge', samples: [{ labels: { path: '0' }, value: NaN }] },
];

test('a small fixture, exactly', (t) => {
  t.is(formatExposition(FIXTURE), [
    '# HELP mptun_uptime_seconds Seconds since mptun up started.',
    '# TYPE mptun_uptime_seconds gauge',
    'mptun_uptime_seconds 12.5',
    '# HELP mptun_path_bytes_out_total Bytes sent on the path.',
    '# TYPE mptun_path_bytes_out_total counter',
    'mptun_path_bytes_out_total{path="0",iface="eth0"} 1234567',
    'mptun_path_bytes_out_total{path="1",iface="we\\"ird\\\\if\\nname"} 0',
    '# HELP mptun_path_srtt_seconds A back\\\\slash and a\\nnew line in HELP.',
    '# TYPE mptun_path_srtt_seconds gauge',
    'mptun_path_srtt_seconds{path="0"} NaN',
    '',
  ].join('\n'));
  t.is(formatExposition([]), '');
});

test('the fixture reads back: every line well-formed, HELP and TYPE before each family', (t) => {
  const p = parseExposition(formatExposition(FIXTURE));
  t.deepEqual(p.errors, []);
  t.is(sampleValue(p, 'mptun_path_bytes_out_total', { path: '0' }), 1234567);
  t.is(p.types.get('mptun_path_bytes_out_total'), 'counter');
  t.false(p.types.has('mptun_empty'));
  // the reader itself refuses what the format forbids
  t.not(parseExposition('mptun_x 1\n').errors.length, 0, 'a sample without HELP/TYPE');
  t.not(parseExposition('# HELP a_total h\n# TYPE a_total counter\na_total{l="unescaped"quote"} 1\n').errors.length, 0, 'a bad label value');
  t.not(parseExposition('# HELP a_total h\n# TYPE a_total counter\na_total 1').errors.length, 0, 'no final newline');
  t.not(parseExposition('# HELP a h\n# TYPE a counter\na 1\n').errors.length, 0, 'a counter without _total');
});

test('escaping: label values (backslash, double quote, line feed) and HELP (backslash, line feed)', (t) => {
  t.is(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
  t.is(escapeLabelValue('wlan0'), 'wlan0');
  t.is(escapeHelp('a\\b"c\nd'), 'a\\\\b"c\\nd');
});

test('values as Go\'s ParseFloat reads them', (t) => {
  t.is(formatValue(0), '0');
  t.is(formatValue(42), '42');
  t.is(formatValue(0.0123), '0.0123');
  t.is(formatValue(2 ** 53), '9007199254740992');
  t.is(formatValue(1e21), '1e+21');
  t.is(formatValue(Infinity), '+Inf');
  t.is(formatValue(-Infinity), '-Inf');
  t.is(formatValue(NaN), 'NaN');
});

test('bad metric or label names, a family given twice, a series given twice are refused', (t) => {
  t.throws(() => formatExposition([{ name: 'mptun-bad', help: '', type: 'gauge', samples: [{ value: 1 }] }]), { instanceOf: ExpositionError });
  t.throws(() => formatExposition([{ name: 'a', help: '', type: 'gauge', samples: [{ labels: { 'bad-label': 'x' }, value: 1 }] }]), { instanceOf: ExpositionError });
  t.throws(() => formatExposition([{ name: 'a', help: '', type: 'gauge', samples: [{ labels: { __reserved: 'x' }, value: 1 }] }]), { instanceOf: ExpositionError });
  const twice: MetricFamily = { name: 'a', help: '', type: 'gauge', samples: [{ value: 1 }] };
  t.throws(() => formatExposition([twice, twice]), { instanceOf: ExpositionError });
  const b = new FamilyBuilder();
  b.add('x_total', 'counter', 'h', 1, { side: 'host' });
  t.throws(() => b.add('x_total', 'counter', 'h', 2, { side: 'host' }), { instanceOf: ExpositionError });
  t.throws(() => b.add('x_total', 'gauge', 'h', 2, { side: 'subflow' }), { instanceOf: ExpositionError });
});

test('FamilyBuilder: samples of one family given apart are written together, under the first HELP', (t) => {
  const b = new FamilyBuilder();
  b.add('mptun_tcp_bytes_out_total', 'counter', 'TCP bytes out.', 10, { side: 'subflow' });
  b.add('mptun_relay_flows_total', 'counter', 'Flows.', 3);
  b.add('mptun_tcp_bytes_out_total', 'counter', 'ignored', 20, { side: 'host' });
  t.is(formatExposition(b.build()), [
    '# HELP mptun_tcp_bytes_out_total TCP bytes out.',
    '# TYPE mptun_tcp_bytes_out_total counter',
    'mptun_tcp_bytes_out_total{side="subflow"} 10',
    'mptun_tcp_bytes_out_total{side="host"} 20',
    '# HELP mptun_relay_flows_total Flows.',
    '# TYPE mptun_relay_flows_total counter',
    'mptun_relay_flows_total 3',
    '',
  ].join('\n'));
});
