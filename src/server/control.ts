// The concentrator's control socket (src/control/socket.ts), where `mptun server status` asks
// for the status, as `mptun status` does with `mptun up`.
import { queryControlSocket } from '../control/socket.js';

export { ControlError, startControlSocket, stopControlSocket } from '../control/socket.js';

export const DEFAULT_SERVER_CONTROL_SOCKET = '/run/mptun/server.sock';

/** Asks a running `mptun server` for its status. */
export function queryServerStatus(path: string, timeoutMs = 5000): Promise<unknown> {
  return queryControlSocket(path, 'mptun server', timeoutMs);
}
