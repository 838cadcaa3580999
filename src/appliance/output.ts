// Output that can fail without consequence. mptun's standard output and error may be pipes
// that close under it (`mptun up | head -1`, a log pipeline that dies): a write then fails with
// EPIPE, which Node reports as an 'error' event on process.stdout/stderr — uncaught, it killed
// the process before it undid its routing, or (the handler of uncaught exceptions logging
// again to the same closed pipe) spun forever. Here a broken stream is noticed once; from then
// on, log lines go to a file in the state directory (mode 600) when one is set, else nowhere.
import { closeSync, fchmodSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

type StreamName = 'stdout' | 'stderr';

export class GuardedOutput {
  private readonly broken = new Set<StreamName>();
  private installed = false;
  private logFile: string | null = null;
  private fd: number | null = null;
  private noticed = false;
  /** Log lines dropped: stderr broken and no file (or the file failed too). */
  dropped = 0;

  /** Listens for errors on process.stdout and process.stderr (once per process). */
  install(): void {
    if (this.installed) return;
    this.installed = true;
    process.stdout.on('error', (e) => this.onError('stdout', e));
    process.stderr.on('error', (e) => this.onError('stderr', e));
  }

  /** Where log lines go once stderr is broken (e.g. `${stateDir}/mptun.log`); null: nowhere. */
  setLogFile(path: string | null): void {
    this.logFile = path;
  }

  /** True when `name` failed (its reader went away). */
  isBroken(name: StreamName): boolean {
    return this.broken.has(name);
  }

  private onError(name: StreamName, e: Error): void {
    if (this.broken.has(name)) return;
    this.broken.add(name);
    if (this.noticed) return;
    this.noticed = true;
    const code = (e as NodeJS.ErrnoException).code ?? e.message;
    const where = this.logFile ?? 'nowhere (no state directory yet)';
    this.toFile(`${new Date().toISOString()} mptun warn: ${name} is closed (${code}); log lines go to ${where} from now on\n`);
  }

  /** A log line: to stderr while it works, then to the log file. Never throws. */
  writeLog(line: string): void {
    if (!this.broken.has('stderr')) {
      try {
        process.stderr.write(line);
        return;
      } catch (e) {
        this.onError('stderr', e as Error);
      }
    }
    this.toFile(line);
  }

  /** A line of output for the user (stdout): dropped once stdout is broken. Never throws. */
  writeOut(line: string): void {
    if (this.broken.has('stdout')) return;
    try {
      process.stdout.write(line);
    } catch (e) {
      this.onError('stdout', e as Error);
    }
  }

  private toFile(line: string): void {
    if (this.logFile === null) {
      this.dropped++;
      return;
    }
    try {
      if (this.fd === null) {
        mkdirSync(dirname(this.logFile), { recursive: true, mode: 0o700 });
        this.fd = openSync(this.logFile, 'a', 0o600);
        // an older file of another umask or owner: 600 all the same
        fchmodSync(this.fd, 0o600);
      }
      writeSync(this.fd, line);
    } catch {
      // the file fails too: logging stops, nothing else does
      this.dropped++;
      this.logFile = null;
      if (this.fd !== null) {
        try {
          closeSync(this.fd);
        } catch {
          // already unusable
        }
        this.fd = null;
      }
    }
  }
}

/** The process's one guarded output. */
export const output = new GuardedOutput();
