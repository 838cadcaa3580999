// The configuration of `mptun up`: a YAML or JSON file, then the command-line flags over it.
// Every value is checked before anything is touched, and a bad one is refused with a
// `ConfigError` naming where it came from (the file or the command line), the field
// ("paths[1].gateway", "--mtu") and the reason. The same table of rules validates the file,
// gives the defaults and generates the JSON Schema shipped as docs/config.schema.json.
//
// No I/O here but reading the file in `loadConfig`.

import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { parseDocument } from 'yaml';
import { SCHEDULER_NAMES } from '../mptcp/scheduler.js';
import type { SchedulerRule } from '../mptcp/policy.js';
import { metricsEndpoint, type ApplianceConfig, type PathConfig } from '../appliance/config.js';

export { metricsEndpoint, type ApplianceConfig, type PathConfig };
import {
  formatIpAddress,
  IpAddressError,
  IpPrefix,
  isUnicastAddress,
  parseIpAddress,
} from '../ip/address.js';

/** What `mptun up` parsed from argv (node:util parseArgs); every flag is optional. */
export interface CliFlags {
  config?: string;
  path?: string[];
  backup?: string[];
  tun?: string;
  exclude?: string[];
  excludeLan?: boolean;
  offload?: boolean;
  mtu?: string;
  scheduler?: string;
  congestionControl?: string;
  controlSocket?: string;
  stateDir?: string;
  logLevel?: string;
  fullmesh?: boolean;
  maxSubflows?: string;
  sourceRange6?: string;
  metrics?: string;
  server?: string;
  key?: string;
  direct?: string[];
  serverPool?: string;
}

/** The `source` of a value given by a flag. */
const COMMAND_LINE = 'command line';

/**
 * A configuration value that is refused. `source` is the file's path or 'command line';
 * `field` is where in it ("paths[1].gateway", "--mtu", "(file)" for the file as a whole);
 * `reason` says what is wrong, quoting the value.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly source: string;
  readonly field: string;
  readonly reason: string;

  constructor(source: string, field: string, reason: string) {
    super(`${source === COMMAND_LINE ? COMMAND_LINE : `config ${source}`}: ${field}: ${reason}`);
    this.source = source;
    this.field = field;
    this.reason = reason;
  }
}

/** Where a value is: builds field paths and throws the error for it. */
class At {
  constructor(readonly source: string, readonly field: string) {}

  key(name: string): At {
    return new At(this.source, this.field === '' ? name : `${this.field}.${name}`);
  }

  index(i: number): At {
    return new At(this.source, `${this.field}[${i}]`);
  }

  fail(reason: string): never {
    throw new ConfigError(this.source, this.field === '' ? '(file)' : this.field, reason);
  }
}

/** A value as quoted in a reason. */
function show(v: unknown): string {
  if (v === null || v === undefined) return 'an empty value';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return String(v);
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// Rules: each checks a value (throwing a ConfigError at its place) and describes itself as JSON Schema.

type JsonSchema = { [key: string]: unknown };

interface Rule<T> {
  readonly schema: JsonSchema;
  check(value: unknown, at: At): T;
}

const booleanRule: Rule<boolean> = {
  schema: { type: 'boolean' },
  check(v: unknown, at: At) {
    if (typeof v !== 'boolean') at.fail(`must be a boolean (true or false), not ${show(v)}`);
    return v;
  },
};

function integerRule(min: number, max: number, reserved: readonly number[] = [], why = ''): Rule<number> {
  const schema: JsonSchema = { type: 'integer', minimum: min, maximum: max };
  if (reserved.length > 0) schema.not = { enum: [...reserved] };
  return {
    schema,
    check(v: unknown, at: At) {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
        at.fail(`must be an integer between ${min} and ${max}, not ${show(v)}`);
      }
      if (reserved.includes(v)) at.fail(`${v} is reserved${why}`);
      return v;
    },
  };
}

function enumRule<T extends string>(values: readonly T[]): Rule<T> {
  return {
    schema: { enum: [...values] },
    check(v: unknown, at: At) {
      if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
        at.fail(`must be one of ${values.map((x) => JSON.stringify(x)).join(', ')}, not ${show(v)}`);
      }
      return v as T;
    },
  };
}

function stringValue(v: unknown, at: At, what: string): string {
  if (typeof v !== 'string') at.fail(`must be a string (${what}), not ${show(v)}`);
  return v;
}

// Linux interface names (net/core/dev.c, dev_valid_name): 1 to IFNAMSIZ - 1 = 15 bytes, not
// "." or "..", and no '/', ':' or whitespace (isspace: the ASCII space and \t \n \v \f \r).
const IFNAME_MAX_BYTES = 15;
const IFNAME_BAD_CHAR = /[/:\0 \t\n\v\f\r]/;
const IFNAME_CHAR_CLASS = '[^/:\\u0000 \\t\\n\\v\\f\\r]';

function checkIfname(name: string, at: At): string {
  const bad = (why: string): never => at.fail(`${show(name)} is not a valid interface name: ${why}`);
  if (name === '') bad('it is empty');
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > IFNAME_MAX_BYTES) bad(`it is ${bytes} bytes long, and Linux allows at most ${IFNAME_MAX_BYTES}`);
  if (name === '.' || name === '..') bad('"." and ".." are reserved');
  const ch = IFNAME_BAD_CHAR.exec(name);
  if (ch !== null) bad(`Linux refuses ${JSON.stringify(ch[0])} in interface names`);
  return name;
}

const ifnameRule: Rule<string> = {
  schema: { type: 'string', minLength: 1, maxLength: IFNAME_MAX_BYTES, pattern: `^(?!\\.\\.?$)${IFNAME_CHAR_CLASS}+$` },
  check(v: unknown, at: At) {
    return checkIfname(stringValue(v, at, 'an interface name'), at);
  },
};

/** A gateway: an IPv4 or IPv6 unicast address, the latter optionally in brackets. Normalized. */
function checkGateway(text: string, at: At): string {
  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  let bytes: Buffer;
  try {
    ({ bytes } = parseIpAddress(bare));
  } catch (e) {
    if (!(e instanceof IpAddressError)) throw e;
    // The zone-index and prefix messages say what to change; the others only that it is no address.
    at.fail(bare.includes('%') || bare.includes('/') ? e.message : `${show(text)} is not an IP address`);
  }
  if (!isUnicastAddress(bytes)) at.fail(`${show(text)} is not a unicast address`);
  return formatIpAddress(bytes);
}

const gatewayRule: Rule<string> = {
  schema: {
    type: 'string',
    description: 'An IPv4 or IPv6 unicast address ("192.0.2.1", "fe80::1" or "[fe80::1]").',
  },
  check(v: unknown, at: At) {
    return checkGateway(stringValue(v, at, 'an IP address'), at);
  },
};

/** A prefix of either family, host bits cleared; a bare address is a host prefix. */
function checkPrefix(text: string, at: At): IpPrefix {
  try {
    return IpPrefix.parse(text, { strict: false });
  } catch (e) {
    if (!(e instanceof IpAddressError)) throw e;
    return at.fail(e.message);
  }
}

const prefixRule: Rule<string> = {
  schema: {
    type: 'string',
    pattern: '^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$',
    description: 'An IPv4 or IPv6 prefix ("10.0.0.0/8", "2001:db8::/32"); host bits are cleared, a bare address is a host prefix.',
  },
  check(v: unknown, at: At) {
    return checkPrefix(stringValue(v, at, 'a prefix such as "10.0.0.0/8"'), at).toString();
  },
};

// The source range holds the tun's /24 and one private /24 per path.
const SOURCE_RANGE_MAX_PREFIX = 22;

const sourceRangeRule: Rule<string> = {
  schema: {
    type: 'string',
    pattern: '^[0-9]{1,3}(\\.[0-9]{1,3}){3}/[0-9]{1,2}$',
  },
  check(v: unknown, at: At) {
    const text = stringValue(v, at, 'an IPv4 prefix such as "198.18.0.0/16"');
    const p = checkPrefix(text, at);
    if (p.family !== 4) at.fail(`${show(text)} is not an IPv4 prefix`);
    if (p.length > SOURCE_RANGE_MAX_PREFIX) {
      at.fail(`${show(text)} is too small: the prefix length must be at most ${SOURCE_RANGE_MAX_PREFIX}, to hold the tun's /24 and a /24 per path`);
    }
    return p.toString();
  },
};

// The IPv6 source range holds the tun's /64 and one private /64 per path; the paths' sources
// are carved in the 16 bits above the /64 (at most 50 paths, so /60 and wider will do).
const SOURCE_RANGE6_MAX_PREFIX = 60;
const SOURCE_RANGE6_MIN_PREFIX = 48;

const sourceRange6Rule: Rule<string> = {
  schema: {
    type: 'string',
    pattern: '^[0-9A-Fa-f:]+/[0-9]{1,2}$',
  },
  check(v: unknown, at: At) {
    const text = stringValue(v, at, 'an IPv6 prefix such as "fd6d:7074:756e::/48"');
    const p = checkPrefix(text, at);
    if (p.family !== 6) at.fail(`${show(text)} is not an IPv6 prefix`);
    if (p.length > SOURCE_RANGE6_MAX_PREFIX) {
      at.fail(`${show(text)} is too small: the prefix length must be at most ${SOURCE_RANGE6_MAX_PREFIX}, to hold the tun's /64 and a /64 per path`);
    }
    if (p.length < SOURCE_RANGE6_MIN_PREFIX) {
      at.fail(`${show(text)} is too large: the prefix length must be at least ${SOURCE_RANGE6_MIN_PREFIX} (the paths' /64s are carved from its first /48)`);
    }
    return p.toString();
  },
};

// Unix socket paths hold at most sizeof(sun_path) - 1 = 107 bytes (unix(7)).
const SUN_PATH_MAX_BYTES = 107;

function absolutePathRule(maxBytes?: number): Rule<string> {
  const schema: JsonSchema = { type: 'string', pattern: '^/' };
  if (maxBytes !== undefined) schema.maxLength = maxBytes;
  return {
    schema,
    check(v: unknown, at: At) {
      const text = stringValue(v, at, 'an absolute path');
      if (!posix.isAbsolute(text)) at.fail(`must be an absolute path, not ${show(text)}`);
      if (text.includes('\0')) at.fail(`${show(text)} contains a NUL character`);
      const bytes = Buffer.byteLength(text, 'utf8');
      if (maxBytes !== undefined && bytes > maxBytes) {
        at.fail(`${show(text)} is ${bytes} bytes long; a Unix socket path holds at most ${maxBytes}`);
      }
      return text;
    },
  };
}

// --metrics: "ADDR:PORT", "PORT" or ":PORT" (the loopback: metrics are not for the network
// unless asked), an IPv6 address in brackets; the address one of this host's (unicast, or the
// unspecified 0.0.0.0 / :: for all of them).
const METRICS_DEFAULT_HOST = '127.0.0.1';

function checkMetrics(v: unknown, at: At): string {
  const text = typeof v === 'number' ? String(v) : stringValue(v, at, '"ADDR:PORT", "PORT" or ":PORT"');
  const m = /^(?:(\[[^\]]*\]|[^:[\]]*):)?([^:]*)$/.exec(text);
  if (m === null) at.fail(`${show(text)} is not ADDR:PORT, PORT or :PORT (an IPv6 address goes in brackets: "[::1]:9464")`);
  const portText = m[2]!;
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    at.fail(`${show(text)}: the port must be a number from 1 to 65535`);
  }
  let host = METRICS_DEFAULT_HOST;
  const addr = m[1];
  if (addr !== undefined && addr !== '') {
    const bare = addr.startsWith('[') ? addr.slice(1, -1) : addr;
    let bytes: Buffer;
    try {
      ({ bytes } = parseIpAddress(bare));
    } catch (e) {
      if (!(e instanceof IpAddressError)) throw e;
      at.fail(`${show(text)}: ${show(addr)} is not an IP address`);
    }
    if (!bytes.every((b) => b === 0) && !isUnicastAddress(bytes)) at.fail(`${show(text)}: ${show(bare)} is not an address of this host`);
    host = formatIpAddress(bytes);
  }
  return `${host.includes(':') ? `[${host}]` : host}:${Number(portText)}`;
}

const metricsRule: Rule<string | null> = {
  schema: {
    oneOf: [
      { type: 'null', description: 'Not served.' },
      { type: 'integer', minimum: 1, maximum: 65535, description: 'A port of the loopback address 127.0.0.1.' },
      {
        type: 'string',
        pattern: '^((\\[[0-9A-Fa-f:.]+\\]|[0-9.]+)?:)?[0-9]{1,5}$',
        description: '"ADDR:PORT", "PORT" or ":PORT" (the loopback 127.0.0.1); an IPv6 address in brackets ("[::1]:9464"); 0.0.0.0 or [::] for every address.',
      },
    ],
  },
  check(v: unknown, at: At) {
    return v === null ? null : checkMetrics(v, at);
  },
};


/** The concentrator's port when a server is given without one (as src/appliance/convert-client.ts). */
export const DEFAULT_SERVER_PORT = 7443;
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** 'HOST', 'HOST:PORT', '[IPV6]:PORT' or a bare IPv6 address: normalized to 'HOST:PORT' ('[IPV6]:PORT'). */
function checkServer(text: string, at: At): string {
  let host = text;
  let portText: string | null = null;
  const v6 = /^\[([^\]]*)\](?::(.*))?$/.exec(text);
  if (v6) {
    host = v6[1]!;
    portText = v6[2] ?? null;
  } else if ((text.match(/:/g) ?? []).length === 1) {
    [host, portText] = text.split(':') as [string, string];
  }
  let port = DEFAULT_SERVER_PORT;
  if (portText !== null) {
    if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) at.fail(`${show(text)}: the port must be a number from 1 to 65535`);
    port = Number(portText);
  }
  if (host === '') at.fail(`${show(text)} has no host: HOST[:PORT]`);
  try {
    const { family, bytes } = parseIpAddress(host);
    if (!isUnicastAddress(bytes)) at.fail(`${show(host)} is not a unicast address`);
    return family === 6 ? `[${formatIpAddress(bytes)}]:${port}` : `${formatIpAddress(bytes)}:${port}`;
  } catch (e) {
    if (!(e instanceof IpAddressError)) throw e;
  }
  if (v6 || host.includes(':')) at.fail(`${show(host)} is not an IPv6 address`);
  if (!HOSTNAME.test(host)) at.fail(`${show(host)} is neither an IP address nor a host name`);
  return `${host.toLowerCase()}:${port}`;
}

const serverRule: Rule<string | null> = {
  schema: {
    type: ['string', 'null'],
    description: `HOST[:PORT] (port ${DEFAULT_SERVER_PORT} when none; an IPv6 address in brackets: "[2001:db8::1]:7443"), or null for none.`,
  },
  check(v: unknown, at: At) {
    if (v === null) return null;
    return checkServer(stringValue(v, at, 'HOST[:PORT]'), at);
  },
};

function nullable(rule: Rule<string>): Rule<string | null> {
  return {
    schema: { ...rule.schema, type: ['string', 'null'] },
    check(v: unknown, at: At) {
      return v === null ? null : rule.check(v, at);
    },
  };
}

function listRule<T>(item: Rule<T>): Rule<T[]> {
  return {
    schema: { type: 'array', items: item.schema },
    check(v: unknown, at: At) {
      if (!Array.isArray(v)) at.fail(`must be a list, not ${show(v)}`);
      return v.map((x: unknown, i) => item.check(x, at.index(i)));
    },
  };
}

/** Refuses keys not in `known`, suggesting the field meant when only case or '-'/'_' differ. */
function refuseUnknown(obj: Record<string, unknown>, known: readonly string[], at: At): void {
  const loose = (s: string): string => s.toLowerCase().replace(/[-_]/g, '');
  for (const key of Object.keys(obj)) {
    if (known.includes(key)) continue;
    const meant = known.find((k) => loose(k) === loose(key));
    at.key(key).fail(`unknown field ${JSON.stringify(key)}${meant === undefined
      ? `; the fields are ${known.filter((k) => k !== SCHEMA_KEY).join(', ')}`
      : `; did you mean ${JSON.stringify(meant)}?`}`);
  }
}

/** 'IFACE' or 'IFACE:GATEWAY'; an interface name never holds ':', so the first one splits. */
function parsePathSpec(text: string, at: At): PathConfig {
  const colon = text.indexOf(':');
  const iface = checkIfname(colon < 0 ? text : text.slice(0, colon), at);
  if (colon < 0) return { iface, backup: false };
  const gw = text.slice(colon + 1);
  if (gw === '') at.fail(`${show(text)} has no gateway after the ":"`);
  return { iface, gateway: checkGateway(gw, at), backup: false };
}

const PATH_OBJECT_FIELDS = ['iface', 'gateway', 'backup'] as const;

const pathsRule: Rule<PathConfig[]> = {
  schema: {
    type: 'array',
    items: {
      oneOf: [
        {
          type: 'string',
          description: 'IFACE or IFACE:GATEWAY (an IPv6 gateway may be written in brackets: "wwan0:[fe80::1]").',
          pattern: `^(?!\\.\\.?(:|$))${IFNAME_CHAR_CLASS}{1,${IFNAME_MAX_BYTES}}(:.+)?$`,
        },
        {
          type: 'object',
          additionalProperties: false,
          required: ['iface'],
          properties: {
            iface: ifnameRule.schema,
            gateway: gatewayRule.schema,
            backup: { type: 'boolean', default: false, description: 'Use the path only when no other path works.' },
          },
        },
      ],
    },
  },
  check(v: unknown, at: At) {
    if (!Array.isArray(v)) at.fail(`must be a list, not ${show(v)}`);
    const seen = new Map<string, number>();
    return v.map((item: unknown, i): PathConfig => {
      const here = at.index(i);
      let path: PathConfig;
      let ifaceAt = here;
      if (typeof item === 'string') {
        path = parsePathSpec(item, here);
      } else if (isMapping(item)) {
        refuseUnknown(item, PATH_OBJECT_FIELDS, here);
        ifaceAt = here.key('iface');
        if (!Object.hasOwn(item, 'iface')) ifaceAt.fail('is missing: a path needs its interface');
        path = { iface: ifnameRule.check(item.iface, ifaceAt), backup: false };
        if (Object.hasOwn(item, 'gateway')) path.gateway = gatewayRule.check(item.gateway, here.key('gateway'));
        if (Object.hasOwn(item, 'backup')) path.backup = booleanRule.check(item.backup, here.key('backup'));
      } else {
        return here.fail(`must be "IFACE", "IFACE:GATEWAY" or a mapping with iface, gateway and backup, not ${show(item)}`);
      }
      const first = seen.get(path.iface);
      if (first !== undefined) ifaceAt.fail(`${show(path.iface)} is already ${at.field}[${first}]: each interface is one path`);
      seen.set(path.iface, i);
      return path;
    });
  },
};

const SCHEDULER_RULE_FIELDS = ['port', 'cidr', 'scheduler'] as const;

/** A port (1..65535) or a range "LOW-HIGH" (or [LOW, HIGH], as JSON gives it back). */
function checkPort(v: unknown, at: At): number | [number, number] {
  const bad = (): never => at.fail(`must be a port (1 to 65535) or a range "LOW-HIGH", not ${show(v)}`);
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 1 || v > 65535) bad();
    return v;
  }
  let lo: number;
  let hi: number;
  if (Array.isArray(v) && v.length === 2 && v.every((x) => Number.isInteger(x))) {
    [lo, hi] = v as [number, number];
  } else {
    if (typeof v !== 'string') return bad();
    const m = /^(\d{1,5})-(\d{1,5})$/.exec(v);
    if (m === null) return bad();
    lo = Number(m[1]);
    hi = Number(m[2]);
  }
  if (lo < 1 || hi > 65535 || lo > hi) bad();
  return [lo, hi];
}

const schedulerPolicyRule: Rule<SchedulerRule[]> = {
  schema: {
    type: 'array',
    items: {
      type: 'object',
      additionalProperties: false,
      required: ['scheduler'],
      properties: {
        port: {
          description: 'Destination port, or a range "LOW-HIGH"; absent: any port.',
          oneOf: [
            { type: 'integer', minimum: 1, maximum: 65535 },
            { type: 'string', pattern: '^[0-9]{1,5}-[0-9]{1,5}$' },
            { type: 'array', items: { type: 'integer', minimum: 1, maximum: 65535 }, minItems: 2, maxItems: 2 },
          ],
        },
        cidr: { ...prefixRule.schema, description: 'Destination prefix ("10.0.0.0/8", "2001:db8::/32"); absent: any address.' },
        scheduler: { enum: [...SCHEDULER_NAMES] },
      },
    },
  },
  check(v: unknown, at: At) {
    if (!Array.isArray(v)) at.fail(`must be a list of rules (port, cidr, scheduler), not ${show(v)}`);
    return v.map((item: unknown, i): SchedulerRule => {
      const here = at.index(i);
      if (!isMapping(item)) return here.fail(`must be a mapping with port, cidr and scheduler, not ${show(item)}`);
      refuseUnknown(item, SCHEDULER_RULE_FIELDS, here);
      if (!Object.hasOwn(item, 'scheduler')) here.key('scheduler').fail('is missing: a rule names the scheduler it chooses');
      const rule: SchedulerRule = { scheduler: enumRule(SCHEDULER_NAMES).check(item.scheduler, here.key('scheduler')) };
      if (Object.hasOwn(item, 'port')) rule.port = checkPort(item.port, here.key('port'));
      if (Object.hasOwn(item, 'cidr')) rule.cidr = prefixRule.check(item.cidr, here.key('cidr'));
      return rule;
    });
  },
};

// Routing tables 253, 254 and 255 are the kernel's default, main and local tables (rtnetlink.h).
const RESERVED_TABLES = [253, 254, 255] as const;
const TABLE_MAX = 0xfffffff0;

interface Field<T> {
  readonly description: string;
  readonly rule: Rule<T>;
}

/** The file's fields, in the order of ApplianceConfig and of the schema. */
const FIELDS: { readonly [K in keyof ApplianceConfig]: Field<ApplianceConfig[K]> } = {
  tun: { description: 'Name of the TUN device (a Linux interface name: 1 to 15 bytes, no "/", ":" or whitespace).', rule: ifnameRule },
  paths: {
    description: 'The paths, one per interface; empty means discover them when the appliance starts. Each interface may appear once.',
    rule: pathsRule,
  },
  backup: {
    description: 'Interfaces whose paths are backups (used only when no other path works). With explicit paths, each must be one of them.',
    rule: listRule(ifnameRule),
  },
  exclude: { description: 'Destinations that are not captured.', rule: listRule(prefixRule) },
  excludeLan: { description: 'Also exclude the connected prefixes of the path interfaces.', rule: booleanRule },
  sourceRange: {
    description: `IPv4 range (prefix length at most ${SOURCE_RANGE_MAX_PREFIX}) the tun address and the per-path private /24s are carved from.`,
    rule: sourceRangeRule,
  },
  sourceRange6: {
    description: `IPv6 range (prefix length ${SOURCE_RANGE6_MIN_PREFIX} to ${SOURCE_RANGE6_MAX_PREFIX}; a unique local address range, fc00::/7, is best) the tun's IPv6 address and the per-path private /64s (NAT66 to the path's address) are carved from; used for the paths that carry IPv6.`,
    rule: sourceRange6Rule,
  },
  table: {
    description: 'First routing table id: the capture table is `table`, path i uses `table + 1 + i`; 253 to 255 are the kernel\'s.',
    rule: integerRule(1, TABLE_MAX, RESERVED_TABLES, ' (the kernel\'s default, main and local tables are 253, 254 and 255)'),
  },
  rulePriority: { description: 'First routing rule preference: path rules, then exclusions, then the capture rule.', rule: integerRule(1, 32000) },
  mtu: { description: 'MTU of the TUN device.', rule: integerRule(576, 9000) },
  offload: { description: 'TUN virtio-net header with TSO/GSO.', rule: booleanRule },
  scheduler: { description: 'Which subflow sends next (src/mptcp/scheduler.ts): lowest-rtt, round-robin, blest, ecf, redundant (each segment on every subflow) or kernel (Linux\'s rule).', rule: enumRule(SCHEDULER_NAMES) },
  schedulerPolicy: {
    description: 'Per-connection scheduler by destination: rules of port (or "LOW-HIGH") and/or cidr, first match wins; a connection no rule matches uses `scheduler`.',
    rule: schedulerPolicyRule,
  },
  congestionControl: { description: 'Congestion control of the subflows (LIA is coupled, RFC 6356).', rule: enumRule(['lia', 'cubic'] as const) },
  fullmesh: { description: 'Open a subflow for every pair of local and remote addresses.', rule: booleanRule },
  maxSubflows: { description: 'Most subflows per MPTCP connection.', rule: integerRule(1, 32) },
  synBacklog: { description: 'The apps\' connections in SYN-RECEIVED at most (the SYN backlog); SYNs beyond it are dropped and counted (host synBacklogFull), as under a SYN flood.', rule: integerRule(16, 1 << 20) },
  maxPendingOpens: { description: 'The apps\' SYNs waiting for their upstream connection at most; SYNs beyond it are dropped and counted (relay flowsPendingFull), as under a SYN flood.', rule: integerRule(16, 1 << 20) },
  synRate: { description: 'New TCP connections (SYNs) let into the device per second at most; the kernel drops the rest before the device\'s queue (nft table inet mptun, chain synlimit), so that a SYN flood leaves the host\'s other connections their share.', rule: integerRule(100, 1_000_000) },
  controlSocket: { description: 'Unix socket `mptun status` talks to (absolute path).', rule: absolutePathRule(SUN_PATH_MAX_BYTES) },
  stateDir: { description: 'Directory for the appliance\'s runtime state (absolute path).', rule: absolutePathRule() },
  logLevel: { description: 'Least severe messages logged.', rule: enumRule(['error', 'warn', 'info', 'debug'] as const) },
  metrics: {
    description: 'Serve Prometheus metrics (text format 0.0.4) over HTTP at /metrics on this address; null: not served.',
    rule: metricsRule,
  },
  server: {
    description: 'The concentrator (`mptun server`): every captured connection goes there over MPTCP on all paths (an RFC 8803 Convert message names the destination), but for `direct` destinations. Null: none, MPTCP straight to the destinations.',
    rule: serverRule,
  },
  key: { description: 'The key file shared with the concentrator (`mptun server --genkey FILE`; absolute path). Needed with `server`.', rule: nullable(absolutePathRule()) },
  direct: { description: 'Destinations not sent to the concentrator (still captured; MPTCP straight to them).', rule: listRule(prefixRule) },
  serverPool: {
    description: 'Connections to the concentrator kept open ahead of the apps: an app\'s connection that takes one is established one round trip to the concentrator (plus its connect to the destination) after its SYN, not two. 0: none (the Convert message rides in each connection\'s own SYN).',
    rule: integerRule(0, 64),
  },
};

const FIELD_NAMES = Object.keys(FIELDS) as (keyof ApplianceConfig)[];

/** A file may name its schema (editors use it); the key is otherwise ignored. */
const SCHEMA_KEY = '$schema';

export const DEFAULT_CONFIG: Readonly<ApplianceConfig> = Object.freeze({
  tun: 'mptun0',
  paths: Object.freeze([]) as unknown as PathConfig[],
  backup: Object.freeze([]) as unknown as string[],
  exclude: Object.freeze([]) as unknown as string[],
  excludeLan: false,
  sourceRange: '198.18.0.0/16',
  sourceRange6: 'fd6d:7074:756e::/48',
  table: 7100,
  rulePriority: 9000,
  mtu: 1500,
  offload: true,
  scheduler: 'lowest-rtt',
  schedulerPolicy: Object.freeze([]) as unknown as SchedulerRule[],
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
  direct: Object.freeze([]) as unknown as string[],
  serverPool: 2,
});

/** A fresh, mutable copy of the defaults. */
function defaults(): ApplianceConfig {
  return { ...DEFAULT_CONFIG, paths: [], backup: [], exclude: [], direct: [], schedulerPolicy: [] };
}

/** A JSON Schema (draft 2020-12) of the configuration file. */
export function configSchema(): object {
  const properties: Record<string, unknown> = {
    [SCHEMA_KEY]: { type: 'string', description: 'The schema of this file (ignored by mptun).' },
  };
  for (const name of FIELD_NAMES) {
    const { description, rule } = FIELDS[name];
    properties[name] = { description, ...rule.schema, default: DEFAULT_CONFIG[name] };
  }
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'mptun appliance configuration',
    description: 'The configuration file of `mptun up` (YAML or JSON). Command-line flags override it: --path replaces paths, --exclude and --backup add to the lists.',
    type: 'object',
    additionalProperties: false,
    properties,
  };
}

// Checks across fields.

/** Marks the paths named in `names`; returns the index in `names` of one that is no path, if any. */
function markBackups(paths: PathConfig[], names: readonly string[]): number | undefined {
  for (let i = 0; i < names.length; i++) {
    const path = paths.find((p) => p.iface === names[i]);
    if (path !== undefined) path.backup = true;
    else if (paths.length > 0) return i;
  }
  return undefined;
}

function notAPath(name: string, paths: readonly PathConfig[]): string {
  return `${show(name)} is not one of the paths (${paths.map((p) => p.iface).join(', ')})`;
}

/** The backup list: `names` then the marked paths, each once. */
function backupList(names: readonly string[], paths: readonly PathConfig[]): string[] {
  return [...new Set([...names, ...paths.filter((p) => p.backup).map((p) => p.iface)])];
}

function tunIsAPath(cfg: ApplianceConfig): string | undefined {
  const i = cfg.paths.findIndex((p) => p.iface === cfg.tun);
  return i < 0 ? undefined : `${show(cfg.tun)} is also the interface of paths[${i}]: the tun device cannot be a path`;
}

/** Whether the known paths fit in the source range and the table ids: the field to blame and why. */
function pathsFit(cfg: ApplianceConfig): { field: 'sourceRange' | 'sourceRange6' | 'table'; reason: string } | undefined {
  const n = cfg.paths.length;
  const slots = 2 ** (24 - Number(cfg.sourceRange.split('/')[1]));
  if (1 + n > slots) {
    return { field: 'sourceRange', reason: `${cfg.sourceRange} holds ${slots} /24s, and the tun and ${n} paths need ${1 + n}` };
  }
  const slots6 = 2 ** (64 - Number(cfg.sourceRange6.split('/')[1]));
  if (1 + n > slots6) {
    return { field: 'sourceRange6', reason: `${cfg.sourceRange6} holds ${slots6} /64s, and the tun and ${n} paths need ${1 + n}` };
  }
  const last = cfg.table + n;
  if (last > TABLE_MAX) {
    return { field: 'table', reason: `tables ${cfg.table} to ${last} (capture and ${n} paths) go past ${TABLE_MAX}` };
  }
  const reserved = RESERVED_TABLES.find((t) => t >= cfg.table && t <= last);
  if (reserved !== undefined) {
    return { field: 'table', reason: `tables ${cfg.table} to ${last} (capture and ${n} paths) include ${reserved}, a table of the kernel` };
  }
  return undefined;
}

/** Validates a parsed file (a mapping of the ApplianceConfig fields); fills the defaults. */
export function validateConfig(raw: unknown, source: string): ApplianceConfig {
  const root: At = new At(source, '');
  if (!isMapping(raw)) root.fail(`must be a mapping of field names to values, not ${show(raw)}`);
  refuseUnknown(raw, [...FIELD_NAMES, SCHEMA_KEY], root);
  if (Object.hasOwn(raw, SCHEMA_KEY) && typeof raw[SCHEMA_KEY] !== 'string') {
    root.key(SCHEMA_KEY).fail(`must be a string, not ${show(raw[SCHEMA_KEY])}`);
  }
  const cfg = defaults();
  const take = <K extends keyof ApplianceConfig>(name: K): void => {
    if (Object.hasOwn(raw, name)) cfg[name] = FIELDS[name].rule.check(raw[name], root.key(name));
  };
  for (const name of FIELD_NAMES) take(name);

  const missing = markBackups(cfg.paths, cfg.backup);
  if (missing !== undefined) root.key('backup').index(missing).fail(notAPath(cfg.backup[missing], cfg.paths));
  cfg.backup = backupList(cfg.backup, cfg.paths);
  const tun = tunIsAPath(cfg);
  if (tun !== undefined) root.key('tun').fail(tun);
  const fit = pathsFit(cfg);
  if (fit !== undefined) root.key(fit.field).fail(fit.reason);
  if (cfg.server !== null && cfg.key === null && Object.hasOwn(raw, 'server')) root.key('key').fail('is missing: a server needs the key it shares with mptun (mptun server --genkey FILE writes one)');
  return cfg;
}

/** The JSON.parse message with the line and column of its position, when it gives one and not them. */
function jsonSyntaxError(e: Error, text: string): string {
  const m = /at position (\d+)/.exec(e.message);
  if (m === null || /line \d+/.test(e.message)) return e.message;
  const before = text.slice(0, Number(m[1]));
  const line = before.split('\n').length;
  const column = before.length - before.lastIndexOf('\n');
  return `${e.message} (line ${line}, column ${column})`;
}

/**
 * Parses and validates a file's text. `format` defaults to JSON for a source ending in ".json"
 * and YAML for any other; an empty YAML document is all defaults.
 */
export function parseConfigText(text: string, source: string, format?: 'json' | 'yaml'): ApplianceConfig {
  const fmt = format ?? (source.toLowerCase().endsWith('.json') ? 'json' : 'yaml');
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const file: At = new At(source, '');
  let raw: unknown;
  if (fmt === 'json') {
    try {
      raw = JSON.parse(body);
    } catch (e) {
      if (!(e instanceof SyntaxError)) throw e;
      file.fail(`not valid JSON: ${jsonSyntaxError(e, body)}`);
    }
  } else {
    const doc = parseDocument(body, { prettyErrors: true, uniqueKeys: true });
    const first = doc.errors[0];
    if (first !== undefined) file.fail(`not valid YAML: ${first.message.trimEnd()}`);
    try {
      raw = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      file.fail(`not valid YAML: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (raw === null || raw === undefined) raw = {};
  }
  return validateConfig(raw, source);
}

/** A `--path` value: 'IFACE' or 'IFACE:GATEWAY' (IPv4, or IPv6 bare or in brackets). */
export function parsePathFlag(s: string): PathConfig {
  return parsePathSpec(s, new At(COMMAND_LINE, '--path'));
}

/** A whole decimal number given to a flag. */
function integerFlag(text: string, at: At): number {
  if (!/^[0-9]{1,10}$/.test(text)) at.fail(`${show(text)} is not a whole number`);
  return Number(text);
}

/**
 * The configuration: the file named by `--config` (if any), then the flags over it. `--path`
 * replaces the file's paths (the file's backup marks stay on the interfaces that remain),
 * `--backup` marks paths, `--exclude` adds to the file's list, the other flags replace the value.
 */
export async function loadConfig(flags: CliFlags): Promise<ApplianceConfig> {
  let cfg = defaults();
  if (flags.config !== undefined) {
    let text: string;
    try {
      text = await readFile(flags.config, 'utf8');
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const why = err.code !== undefined ? err.message.replace(/, \w+ '.*'$/, '') : String(e);
      throw new ConfigError(flags.config, '(file)', `cannot be read: ${why}`);
    }
    cfg = parseConfigText(text, flags.config);
  }
  return applyFlags(cfg, flags);
}

function applyFlags(file: ApplianceConfig, flags: CliFlags): ApplianceConfig {
  const at = (flag: string): At => new At(COMMAND_LINE, flag);
  const cfg: ApplianceConfig = { ...file, paths: file.paths.map((p) => ({ ...p })), backup: [...file.backup], exclude: [...file.exclude], direct: [...file.direct] };

  if (flags.tun !== undefined) cfg.tun = ifnameRule.check(flags.tun, at('--tun'));
  if (flags.path !== undefined && flags.path.length > 0) {
    const seen = new Set<string>();
    cfg.paths = flags.path.map((s) => {
      const p = parsePathSpec(s, at('--path'));
      if (seen.has(p.iface)) at('--path').fail(`${show(p.iface)} is given twice: each interface is one path`);
      seen.add(p.iface);
      p.backup = file.backup.includes(p.iface);
      return p;
    });
    cfg.backup = cfg.backup.filter((name) => seen.has(name));
  }
  if (flags.backup !== undefined) {
    const names = flags.backup.map((name) => ifnameRule.check(name, at('--backup')));
    const missing = markBackups(cfg.paths, names);
    if (missing !== undefined) at('--backup').fail(notAPath(names[missing], cfg.paths));
    cfg.backup = backupList([...cfg.backup, ...names], cfg.paths);
  }
  if (flags.exclude !== undefined) {
    const added = flags.exclude.map((s) => prefixRule.check(s, at('--exclude')));
    cfg.exclude = [...new Set([...cfg.exclude, ...added])];
  }
  if (flags.excludeLan !== undefined) cfg.excludeLan = booleanRule.check(flags.excludeLan, at('--exclude-lan'));
  if (flags.offload !== undefined) cfg.offload = booleanRule.check(flags.offload, at('--offload'));
  if (flags.fullmesh !== undefined) cfg.fullmesh = booleanRule.check(flags.fullmesh, at('--fullmesh'));
  if (flags.mtu !== undefined) cfg.mtu = FIELDS.mtu.rule.check(integerFlag(flags.mtu, at('--mtu')), at('--mtu'));
  if (flags.maxSubflows !== undefined) {
    cfg.maxSubflows = FIELDS.maxSubflows.rule.check(integerFlag(flags.maxSubflows, at('--max-subflows')), at('--max-subflows'));
  }
  if (flags.scheduler !== undefined) cfg.scheduler = FIELDS.scheduler.rule.check(flags.scheduler, at('--scheduler'));
  if (flags.congestionControl !== undefined) {
    cfg.congestionControl = FIELDS.congestionControl.rule.check(flags.congestionControl, at('--congestion-control'));
  }
  if (flags.controlSocket !== undefined) cfg.controlSocket = FIELDS.controlSocket.rule.check(flags.controlSocket, at('--control-socket'));
  if (flags.stateDir !== undefined) cfg.stateDir = FIELDS.stateDir.rule.check(flags.stateDir, at('--state-dir'));
  if (flags.logLevel !== undefined) cfg.logLevel = FIELDS.logLevel.rule.check(flags.logLevel, at('--log-level'));
  if (flags.sourceRange6 !== undefined) cfg.sourceRange6 = FIELDS.sourceRange6.rule.check(flags.sourceRange6, at('--source-range6'));
  if (flags.metrics !== undefined) cfg.metrics = checkMetrics(flags.metrics, at('--metrics'));

  if (flags.server !== undefined) cfg.server = checkServer(flags.server, at('--server'));
  if (flags.key !== undefined) cfg.key = FIELDS.key.rule.check(posix.resolve(process.cwd(), flags.key), at('--key'));
  if (flags.direct !== undefined) {
    const added = flags.direct.map((s) => prefixRule.check(s, at('--direct')));
    cfg.direct = [...new Set([...cfg.direct, ...added])];
  }
  if (flags.serverPool !== undefined) cfg.serverPool = FIELDS.serverPool.rule.check(integerFlag(flags.serverPool, at('--server-pool')), at('--server-pool'));
  if (cfg.server !== null && cfg.key === null) at(flags.server !== undefined ? '--server' : '--key').fail('needs --key FILE: the key shared with the concentrator (mptun server --genkey FILE writes one)');

  // The file was coherent: a conflict now comes from --tun or --path.
  const tun = tunIsAPath(cfg);
  if (tun !== undefined) at(flags.tun !== undefined ? '--tun' : '--path').fail(tun);
  const fit = pathsFit(cfg);
  if (fit !== undefined) at('--path').fail(`${fit.field} ${fit.reason}`);
  return cfg;
}
