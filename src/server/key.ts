// The concentrator's key file: 32 random bytes as 64 hex digits and a newline, readable by its
// owner only. `mptun server --genkey FILE` writes one; server and clients read the same file.
import { randomBytes } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import { COOKIE_KEY_LEN } from '../convert/cookie.js';

export class KeyFileError extends Error {
  constructor(readonly path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = 'KeyFileError';
  }
}

/** Writes a new key to `path` (mode 0600); refuses to overwrite an existing file. */
export async function generateKeyFile(path: string): Promise<void> {
  let fh;
  try {
    fh = await open(path, 'wx', 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new KeyFileError(path, 'exists already; remove it first if you mean to replace the key (every client needs the new one)');
    throw new KeyFileError(path, (e as Error).message);
  }
  try {
    await fh.chmod(0o600); // whatever the umask
    await fh.writeFile(`${randomBytes(COOKIE_KEY_LEN).toString('hex')}\n`);
  } finally {
    await fh.close();
  }
}

/** Reads a key file. A file that group or others may read is refused. */
export async function readKeyFile(path: string): Promise<Buffer> {
  let text: string;
  try {
    const st = await stat(path);
    if ((st.mode & 0o077) !== 0) throw new KeyFileError(path, `mode ${(st.mode & 0o777).toString(8)} lets others read the key: chmod 600 ${path}`);
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (e instanceof KeyFileError) throw e;
    throw new KeyFileError(path, (e as Error).message);
  }
  const hex = text.trim();
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new KeyFileError(path, `a key file holds ${COOKIE_KEY_LEN * 2} hex digits (mptun server --genkey FILE writes one)`);
  return Buffer.from(hex, 'hex');
}
