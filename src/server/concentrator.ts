// The concentrator (`mptun server`): terminates MPTCP with the Linux kernel's own MPTCP (a
// listening IPPROTO_MPTCP socket from the addon, handed to Node as an fd), reads the RFC 8803
// Convert message at the start of each connection (in the SYN's payload when the client used
// TCP Fast Open), checks the client's cookie, the destination and the client's share, connects
// to the destination with plain kernel TCP, answers with a Convert header (and an Error TLV when
// it failed), and relays both ways with back-pressure, half-close and resets mirrored.
//
//   client ══MPTCP (or TCP)══▶ [Convert msg][app data...]  ──▶  concentrator ──TCP──▶ destination
//          ◀══════════════════ [Convert hdr (+Error)][server data...]
//
// RFC 8803 (the Transport Converter's side): the Converter reads the Connect TLV (§4.2.5), opens
// the connection to the destination, and returns a Convert message at the start of its
// bytestream; when it cannot, an Error TLV (§4.2.8) says why and the connection is closed. A
// destination that answers with a RST is Connection Reset (96, Value zero); an ICMP unreachable
// is Destination Unreachable (97), whose "Value field MUST echo the Code field of the received
// ICMP message".
//
// Deliberate deviations, each because the kernel's TCP is what carries both sides here:
// - The RFC's Converter answers the client's SYN once the destination has answered its own
//   (the Convert reply rides on the SYN+ACK). Linux's listener completes the client's handshake
//   at once, so the reply (or the Error TLV) comes in the first data segment instead.
// - No Extended TCP Header TLV (§4.2.6) in the reply: the kernel does not hand the destination's
//   SYN+ACK options to the application. The bare header says the destination accepted.
// - The ICMP Code of Error 97 is the one the kernel's errno stands for (`unreachableCode`): Node
//   sees the errno, not the ICMP message.
// - Missing Cookie (3) carries no cookie (§4.2.8 wants the Converter's cookie for this client in
//   the Value): mptun's cookie proves that the client holds the shared key (src/convert/cookie.ts),
//   so the concentrator cannot hand one to a client that does not.
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { isIP } from 'node:net';
import {
  CONVERT_DROP_REASONS,
  CONVERT_ERR_CONNECTION_RESET,
  CONVERT_ERR_DESTINATION_UNREACHABLE,
  CONVERT_ERR_MALFORMED_MESSAGE,
  CONVERT_ERR_NETWORK_FAILURE,
  CONVERT_ERR_RESOURCE_EXCEEDED,
  CONVERT_ERR_UNSUPPORTED_MESSAGE,
  CONVERT_ERR_UNSUPPORTED_TCP_OPTION,
  CONVERT_TLV_CONNECT,
  CONVERT_TLV_INFO,
  CONVERT_TLV_SUPPORTED_TCP_EXTENSIONS,
  CONVERT_IDLE_TIMEOUT_MS,
  CONVERT_VERSION,
  ConvertCounters,
  connectRequest,
  convertErrorName,
  encodeConvert,
  encodeReply,
  errorEcho,
  parseConvert,
} from '../convert/message.js';
import { COOKIE_COUNTER_NAMES, CookieVerifier } from '../convert/cookie.js';
import { CounterSet } from '../ip/counters.js';
import { type IpFamily, type IpPrefix, parseIpAddress } from '../ip/address.js';
import { mptcpInfo, type MptcpInfo, mptcpListen } from '../tun/mptcp.js';
import { ClientLimits, cookieError, DESTINATION_REFUSALS, destinationError, DestinationPolicy, LIMIT_REFUSALS, RETRY_DELAY_S } from './policy.js';
import { hostAddresses } from './system.js';

/** TCP option Kind of MPTCP (RFC 8684): what the concentrator answers to an Info TLV. */
const TCP_OPTION_MPTCP = 30;
/** TCP option Kinds that Linux puts in its SYN by itself: MSS (2), Window Scale (3), SACK Permitted (4), Timestamps (8). */
const KERNEL_SYN_OPTION_KINDS: ReadonlySet<number> = new Set([2, 3, 4, 8]);

export const SERVER_COUNTER_NAMES = [
  /** Connections accepted, MPTCP and fallen back to (or plain) TCP. */
  'accepted', 'acceptedMptcp', 'acceptedTcp',
  /** A Convert message arrived whole / whole in the first read (always so when it came in the SYN with TFO; the kernel's TcpExtTCPFastOpenPassive says which did). */
  'convertRead', 'convertInFirstRead',
  /** The client sent no whole Convert message in time, or closed first. */
  'convertTimeout', 'clientClosedEarly',
  /** A connection that sent nothing (a client's pool opens them ahead of its apps): closed by its client, or after CONVERT_IDLE_TIMEOUT_MS. */
  'idleClosed', 'idleTimeout',
  /** Info TLVs answered with Supported TCP Extensions. */
  'infoAnswered',
  ...CONVERT_DROP_REASONS,
  /** No Connect TLV (or two, or two Cookies, or a malformed TCP Options field): Malformed Message; a TLV a client does not send: Unsupported Message. */
  'convertNoConnect', 'convertUnsupportedTlv',
  /** A Connect TLV asked for TCP options the kernel's SYN cannot carry: Unsupported TCP Option (33). */
  'tcpOptionRefused',
  ...COOKIE_COUNTER_NAMES,
  ...DESTINATION_REFUSALS,
  ...LIMIT_REFUSALS,
  /** Outcome of the connect to the destination. */
  'connected', 'connectRefused', 'connectUnreachable', 'connectTimeout', 'connectFailed',
  /** After the relay started: resets mirrored each way, connections finished. */
  'dstReset', 'clientReset', 'relayClosed',
  /** Error TLVs sent, all codes together (by code: `errorsByCode`). */
  'errorsSent',
  /** Connections reset without a reply (a Total Length of zero). */
  'resetSent',
] as const;
export type ServerCounterName = (typeof SERVER_COUNTER_NAMES)[number];

export class ServerCounters extends CounterSet<ServerCounterName> {
  constructor() {
    super(SERVER_COUNTER_NAMES);
  }
}

export interface Logger {
  info(line: string): void;
  warn(line: string): void;
  debug(line: string): void;
}

export interface ConcentratorOptions {
  /** Address to listen on ('' = every address, IPv4 and IPv6). */
  host: string;
  port: number;
  key: Uint8Array;
  allow?: readonly IpPrefix[];
  /** Per client (by address): connections waiting for their destination. Default 64. */
  maxPending?: number;
  /** Per client: connections pending and open together. Default 1024. */
  maxOpen?: number;
  /** Time to get a whole Convert message once its first byte came, and to connect to the destination (ms). Default 10 s. */
  readTimeoutMs?: number;
  /** Time to wait for a connection's first byte (ms). Default CONVERT_IDLE_TIMEOUT_MS. */
  idleTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** TFO queue length on the listener (0: no TCP Fast Open). Default 1024. */
  tfoQueue?: number;
  log: Logger;
  /** Unix seconds (a parameter for tests). */
  nowS?: () => number;
}

export interface ConnectionStatus {
  id: number;
  client: string;
  destination: string;
  state: 'reading' | 'connecting' | 'relaying' | 'closing';
  startedAt: string;
  bytesUp: number;
  bytesDown: number;
  mptcp: MptcpInfo | null;
}

export interface ServerStatus {
  listen: string;
  pid: number;
  uptimeS: number;
  clients: Array<{ client: string; pending: number; open: number }>;
  connections: ConnectionStatus[];
  bytesUp: number;
  bytesDown: number;
  errorsByCode: Record<string, number>;
  counters: Partial<Record<ServerCounterName, number>>;
  convert: Record<string, number>;
}

interface Conn {
  id: number;
  client: string;
  sock: Socket;
  dst: Socket | null;
  destination: string;
  state: ConnectionStatus['state'];
  startedAt: Date;
  admitted: boolean;
  opened: boolean;
  /** The client's Convert message (what an Error 1 or 2 echoes). */
  received: Uint8Array;
}

/** The ICMP Code RFC 8803 wants in Error 97's Value, from the errno the kernel made of the ICMP error. */
function unreachableCode(code: string, family: IpFamily): number | null {
  // IPv4 (RFC 792): 0 net unreachable, 1 host unreachable, 13 administratively prohibited.
  // IPv6 (RFC 4443): 0 no route, 1 administratively prohibited, 3 address unreachable.
  if (code === 'ENETUNREACH') return 0;
  if (code === 'EHOSTUNREACH' || code === 'EHOSTDOWN') return family === 4 ? 1 : 3;
  if (code === 'EACCES' || code === 'EPERM') return family === 4 ? 13 : 1;
  return null;
}

export class Concentrator {
  readonly counters = new ServerCounters();
  readonly convertCounters = new ConvertCounters();
  readonly errorsByCode = new Map<number, number>();
  private readonly cookies: CookieVerifier;
  private readonly policy: DestinationPolicy;
  private readonly limits: ClientLimits;
  private readonly conns = new Map<number, Conn>();
  private server: Server | null = null;
  private nextId = 1;
  private bytesUpClosed = 0;
  private bytesDownClosed = 0;
  private readonly started = new Date();
  private ownCache: { at: number; list: Array<{ family: IpFamily; bytes: Uint8Array }> } = { at: -Infinity, list: [] };

  constructor(private readonly opts: ConcentratorOptions) {
    this.cookies = new CookieVerifier(opts.key);
    this.limits = new ClientLimits(opts.maxPending ?? 64, opts.maxOpen ?? 1024);
    this.policy = new DestinationPolicy({ allow: opts.allow ?? [], ownAddresses: () => this.ownAddresses() });
  }

  private nowS(): number {
    return this.opts.nowS ? this.opts.nowS() : Date.now() / 1000;
  }

  /** The host's addresses (refreshed at most once a second). */
  private ownAddresses(): Array<{ family: IpFamily; bytes: Uint8Array }> {
    const now = Date.now();
    if (now - this.ownCache.at > 1000) {
      const list = hostAddresses().map((a) => parseIpAddress(a));
      this.ownCache = { at: now, list };
    }
    return this.ownCache.list;
  }

  /** Opens the kernel's MPTCP listener and starts serving. */
  async start(): Promise<void> {
    const fd = mptcpListen(this.opts.host, this.opts.port, 511, this.opts.tfoQueue ?? 1024);
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: false }, (sock) => this.accept(sock));
    server.on('error', (e) => this.opts.log.warn(`listener: ${e.message}`));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ fd }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
  }

  /** The port it listens on (useful with port 0). */
  get port(): number {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : this.opts.port;
  }

  /** Stops listening and closes every connection. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const c of this.conns.values()) {
      c.dst?.destroy();
      c.sock.destroy();
    }
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(sock: Socket): void {
    const id = this.nextId++;
    const client = (sock.remoteAddress ?? '?').replace(/^::ffff:/, '');
    const conn: Conn = { id, client, sock, dst: null, destination: '-', state: 'reading', startedAt: new Date(), admitted: false, opened: false, received: new Uint8Array(0) };
    this.conns.set(id, conn);
    this.counters.increment('accepted');
    const fd = this.fdOf(sock);
    let isMptcp = false;
    try {
      isMptcp = fd !== null && mptcpInfo(fd) !== null;
    } catch {
      isMptcp = false;
    }
    this.counters.increment(isMptcp ? 'acceptedMptcp' : 'acceptedTcp');
    sock.setNoDelay(true);
    sock.on('error', () => undefined);
    sock.on('close', () => this.closed(conn));
    let buf: Buffer = Buffer.alloc(0);
    let reads = 0;
    // a client's pool opens connections ahead of its apps: the first byte may take a while
    // (CONVERT_IDLE_TIMEOUT_MS); once it came, the whole message must follow soon
    const idleMs = this.opts.idleTimeoutMs ?? CONVERT_IDLE_TIMEOUT_MS;
    const readMs = this.opts.readTimeoutMs ?? 10_000;
    sock.setTimeout(idleMs);
    sock.on('timeout', () => {
      if (conn.state !== 'reading') return;
      if (reads === 0) {
        this.counters.increment('idleTimeout');
        this.opts.log.debug(`client ${client}: nothing within ${idleMs} ms: closed`);
      } else {
        this.counters.increment('convertTimeout');
        this.opts.log.info(`client ${client}: no whole Convert message within ${readMs} ms: closed`);
      }
      sock.destroy();
    });
    const onData = (chunk: Buffer): void => {
      if (reads++ === 0) sock.setTimeout(readMs);
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const p = parseConvert(buf, this.convertCounters);
      // Total Length is 8 bits of words: `need` is at most CONVERT_MAX_LEN, so this waits for a bounded amount.
      if (p.kind === 'incomplete') return;
      sock.off('data', onData);
      sock.off('end', onEnd);
      sock.setTimeout(0);
      sock.pause();
      // The message as it came (Total Length's worth, or what there is), for the echo of Errors 1 and 2.
      conn.received = buf.subarray(0, p.kind === 'message' ? p.length : Math.min(buf.length, buf[1] * 4));
      if (p.kind === 'drop') {
        this.counters.increment(p.reason);
        // RFC 8803 §4.1: "A Total Length of zero is invalid and the connection MUST be reset upon
        // reception of a header with such total length." No Error TLV, no FIN: a RST.
        if (p.error === null) return this.reset(conn, p.reason);
        return this.refuse(conn, p.error, p.error === 0 ? CONVERT_VERSION : 0, p.reason);
      }
      this.counters.increment('convertRead');
      if (reads === 1) this.counters.increment('convertInFirstRead');
      this.handleMessage(conn, p.message.tlvs, buf.subarray(p.length));
    };
    const onEnd = (): void => {
      // a pooled connection its client retired unused, or one that stopped mid-message
      this.counters.increment(reads === 0 ? 'idleClosed' : 'clientClosedEarly');
      sock.destroy();
    };
    sock.on('data', onData);
    sock.on('end', onEnd);
  }

  private fdOf(sock: Socket): number | null {
    const h = (sock as unknown as { _handle?: { fd?: number } })._handle;
    return typeof h?.fd === 'number' && h.fd >= 0 ? h.fd : null;
  }

  /** The header and a Supported TCP Extensions TLV: MPTCP, the one extension the concentrator converts. */
  private supportedExtensions(): Buffer {
    this.counters.increment('infoAnswered');
    return encodeConvert({ version: CONVERT_VERSION, tlvs: [{ type: CONVERT_TLV_SUPPORTED_TCP_EXTENSIONS, kinds: [TCP_OPTION_MPTCP] }] }, this.convertCounters);
  }

  private handleMessage(conn: Conn, tlvs: Parameters<typeof encodeConvert>[0]['tlvs'], rest: Buffer): void {
    // RFC 8803 §4.2.3: a client sends the Info TLV to learn which TCP extensions the Converter
    // supports; the answer is a Supported TCP Extensions TLV. Alone, it asks for nothing else.
    // The RFC answers it "Assuming a Client is entitled to invoke the Transport Converter"; here
    // it is answered without a cookie (mptun's cookie names a destination, an Info alone has
    // none), which tells a stranger only that MPTCP is converted.
    if (tlvs.some((t) => t.type === CONVERT_TLV_INFO) && !tlvs.some((t) => t.type === CONVERT_TLV_CONNECT)) {
      conn.sock.end(this.supportedExtensions());
      return;
    }
    const req = connectRequest({ version: CONVERT_VERSION, tlvs });
    if ('error' in req) {
      const reason = req.error === CONVERT_ERR_MALFORMED_MESSAGE ? 'convertNoConnect' : 'convertUnsupportedTlv';
      this.counters.increment(reason);
      return this.refuse(conn, req.error, 0, reason);
    }
    conn.destination = req.family === 6 ? `[${req.text}]:${req.port}` : `${req.text}:${req.port}`;
    // Not an open proxy: the cookie first, then the destination, then the client's share.
    const bad = this.cookies.verify(this.nowS(), req.cookie, req.address, req.port);
    if (bad) {
      this.counters.increment(bad);
      return this.refuse(conn, cookieError(bad), bad === 'cookieReplayCacheFull' ? RETRY_DELAY_S : 0, bad);
    }
    this.counters.increment('cookieAccepted');
    const forbidden = this.policy.check(req.family, req.address, req.port);
    if (forbidden) {
      this.counters.increment(forbidden);
      return this.refuse(conn, destinationError(forbidden), 0, forbidden);
    }
    // RFC 8803 §4.2.5: with TCP Options in the Connect TLV, the Converter "MUST include the options
    // of the 'TCP Options' subfield in the SYN sent to the Server"; one listed without a value it
    // generates itself, one with a value it copies. The kernel's connect() puts MSS, Window Scale,
    // SACK Permitted and Timestamps (Kinds 2, 3, 4, 8) in its SYN of its own accord (with Linux's
    // default sysctls), so those are honoured when asked for without a value; nothing else can be
    // put in, or copied into, the kernel's SYN, so anything else is refused with §4.2.8's
    // Unsupported TCP Option (33): "A TCP option that the Client requested to advertise to the
    // final Server cannot be safely used", its Value the Kinds, one octet each.
    const unsupported = req.tcpOptionList.filter((o) => !(o.length === 2 && KERNEL_SYN_OPTION_KINDS.has(o.kind))).map((o) => o.kind);
    if (unsupported.length > 0) {
      this.counters.increment('tcpOptionRefused');
      return this.refuse(conn, CONVERT_ERR_UNSUPPORTED_TCP_OPTION, Uint8Array.from(new Set(unsupported)), `TCP option Kinds ${[...new Set(unsupported)].join(', ')}`);
    }
    const over = this.limits.admit(conn.client);
    if (over) {
      this.counters.increment(over);
      // RFC 8803 §4.2.8, Resource Exceeded: the Value is the delay (s) the client should wait.
      return this.refuse(conn, CONVERT_ERR_RESOURCE_EXCEEDED, RETRY_DELAY_S, over);
    }
    conn.admitted = true;
    this.connectDestination(conn, req.text, req.port, req.family, rest, req.info);
  }

  private connectDestination(conn: Conn, host: string, port: number, family: IpFamily, rest: Buffer, info: boolean): void {
    conn.state = 'connecting';
    const dst = tcpConnect({ host, port, family, allowHalfOpen: true, noDelay: true });
    conn.dst = dst;
    const timer = setTimeout(() => {
      this.counters.increment('connectTimeout');
      dst.destroy();
      // RFC 8803 §4.2.8, Network Failure (65): the Value is the delay the client SHOULD wait before
      // asking the Converter again, and "A Value of zero corresponds to a default delay of at least
      // 30 seconds"; one destination that does not answer is no reason for that, so the same short
      // delay as Resource Exceeded's.
      this.refuse(conn, CONVERT_ERR_NETWORK_FAILURE, RETRY_DELAY_S, 'connectTimeout');
    }, this.opts.connectTimeoutMs ?? 10_000);
    const onError = (e: NodeJS.ErrnoException): void => {
      clearTimeout(timer);
      const code = e.code ?? 'EIO';
      if (code === 'ECONNREFUSED') {
        // RFC 8803 §4.2.8, Connection Reset (96): "the final destination responded with a RST
        // segment. The Value field MUST be set to zero."
        this.counters.increment('connectRefused');
        return this.refuse(conn, CONVERT_ERR_CONNECTION_RESET, 0, code);
      }
      const icmp = unreachableCode(code, family);
      if (icmp !== null) {
        // Destination Unreachable (97): "The Value field MUST echo the Code field of the received ICMP message."
        this.counters.increment('connectUnreachable');
        return this.refuse(conn, CONVERT_ERR_DESTINATION_UNREACHABLE, icmp, code);
      }
      this.counters.increment('connectFailed');
      this.refuse(conn, CONVERT_ERR_NETWORK_FAILURE, RETRY_DELAY_S, code);
    };
    dst.once('error', onError);
    // The client left while we were connecting.
    conn.sock.once('close', () => {
      if (conn.state === 'connecting') dst.destroy();
    });
    dst.once('connect', () => {
      clearTimeout(timer);
      dst.off('error', onError);
      if (conn.sock.destroyed) return dst.destroy();
      this.counters.increment('connected');
      this.limits.opened(conn.client);
      conn.opened = true;
      conn.state = 'relaying';
      this.opts.log.debug(`#${conn.id} ${conn.client} -> ${conn.destination}: connected`);
      // The reply first: the header alone says the destination accepted; an Info TLV that came
      // with the Connect is answered in it (RFC 8803 §4.2.3: the Converter "replies with the
      // Supported TCP Extensions TLV").
      conn.sock.write(info ? this.supportedExtensions() : encodeReply());
      if (rest.length > 0) dst.write(rest);
      this.relay(conn.sock, dst);
    });
  }

  /** Both ways, with back-pressure (pipe pauses the reader when the writer is full), FIN after FIN, and RST for RST. */
  private relay(sock: Socket, dst: Socket): void {
    sock.pipe(dst);
    dst.pipe(sock);
    sock.resume();
    dst.on('error', (e: NodeJS.ErrnoException) => {
      // A reset by the destination after the reply: the bytestream has no room for a Convert
      // message any more, so the reset itself is mirrored (the kernel sends MP_FASTCLOSE/RST).
      if (e.code === 'ECONNRESET') this.counters.increment('dstReset');
      if (!sock.destroyed) sock.resetAndDestroy();
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNRESET') this.counters.increment('clientReset');
      if (!dst.destroyed) dst.resetAndDestroy();
    });
    const done = (): void => {
      if (sock.destroyed && dst.destroyed) return;
      // Both halves closed: let the sockets go.
      if (sock.writableEnded && dst.writableEnded && sock.readableEnded && dst.readableEnded) {
        sock.destroy();
        dst.destroy();
      }
    };
    sock.on('end', done);
    dst.on('end', done);
    sock.on('finish', done);
    dst.on('finish', done);
    dst.on('close', () => {
      if (!sock.destroyed && !sock.writableEnded) sock.end();
    });
  }

  /** Answers with the Error TLV, logs client and destination, counts the code, and closes. */
  private refuse(conn: Conn, code: number, value: number | Uint8Array, why: string): void {
    if (conn.state === 'closing') return;
    conn.state = 'closing';
    this.counters.increment('errorsSent');
    this.errorsByCode.set(code, (this.errorsByCode.get(code) ?? 0) + 1);
    this.opts.log.info(`refused client ${conn.client} -> ${conn.destination}: Error ${code} ${convertErrorName(code)}${code === CONVERT_ERR_DESTINATION_UNREACHABLE ? ` (ICMP code ${value})` : ''} (${why})`);
    if (conn.sock.destroyed) return;
    // RFC 8803 §4.2.8, Malformed Message and Unsupported Message: "the Value field MUST echo the
    // received message shifted by one byte to keep to original alignment of the message".
    const echo = code === CONVERT_ERR_MALFORMED_MESSAGE || code === CONVERT_ERR_UNSUPPORTED_MESSAGE;
    conn.sock.end(encodeReply({ code, value: echo ? errorEcho(conn.received) : value }));
    // Whatever the client still sends is not read; do not wait for it forever.
    conn.sock.setTimeout(5000, () => conn.sock.destroy());
    conn.sock.resume();
    conn.sock.on('data', () => undefined);
    conn.sock.on('end', () => conn.sock.destroy());
  }

  /** Resets the client's connection without a reply (a malformed header the RFC says to reset on). */
  private reset(conn: Conn, why: string): void {
    if (conn.state === 'closing') return;
    conn.state = 'closing';
    this.counters.increment('resetSent');
    this.opts.log.info(`reset client ${conn.client}: ${why}`);
    if (!conn.sock.destroyed) conn.sock.resetAndDestroy();
  }

  private closed(conn: Conn): void {
    if (!this.conns.delete(conn.id)) return;
    if (conn.admitted) this.limits.release(conn.client, conn.opened);
    if (conn.opened) this.counters.increment('relayClosed');
    if (conn.dst) {
      this.bytesUpClosed += conn.dst.bytesWritten;
      this.bytesDownClosed += conn.dst.bytesRead;
      // The client's side is gone (both halves, or reset): nothing more can reach it.
      if (!conn.dst.destroyed) conn.dst.destroy();
    }
  }

  status(): ServerStatus {
    const connections: ConnectionStatus[] = [];
    let up = this.bytesUpClosed;
    let down = this.bytesDownClosed;
    for (const c of this.conns.values()) {
      const bytesUp = c.dst?.bytesWritten ?? 0;
      const bytesDown = c.dst?.bytesRead ?? 0;
      up += bytesUp;
      down += bytesDown;
      const fd = this.fdOf(c.sock);
      let mptcp: MptcpInfo | null = null;
      try {
        mptcp = fd !== null ? mptcpInfo(fd) : null;
      } catch {
        mptcp = null;
      }
      connections.push({ id: c.id, client: c.client, destination: c.destination, state: c.state, startedAt: c.startedAt.toISOString(), bytesUp, bytesDown, mptcp });
    }
    const errorsByCode: Record<string, number> = {};
    for (const [code, n] of [...this.errorsByCode].sort((a, b) => a[0] - b[0])) errorsByCode[`${code} ${convertErrorName(code)}`] = n;
    const host = this.opts.host === '' ? '*' : isIP(this.opts.host) === 6 ? `[${this.opts.host}]` : this.opts.host;
    return {
      listen: `${host}:${this.port}`,
      pid: process.pid,
      uptimeS: Math.round((Date.now() - this.started.getTime()) / 1000),
      clients: this.limits.snapshot(),
      connections,
      bytesUp: up,
      bytesDown: down,
      errorsByCode,
      counters: this.counters.nonZero(),
      convert: this.convertCounters.nonZero() as Record<string, number>,
    };
  }
}
