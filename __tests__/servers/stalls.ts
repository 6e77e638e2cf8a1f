/**
 * Servers that stop answering, one for each way a frozen process or a stuck proxy stalls a
 * request (issue 12). They are raw TCP, not node:http: node:http closes its side when the client
 * half-closes, which is exactly what hid the bug, while a frozen process closes nothing. No server
 * software behaves like this on purpose, so there is no source to cite; what each one does is what
 * the kernel does for a process that stopped running its event loop at that point:
 *
 * - `never-reads`: accepts (the kernel completes the handshake) and never reads or writes.
 * - `never-answers`: reads the request and never answers.
 * - `headers-then-stalls`: answers 200 with its headers and the start of a JSON body, then nothing.
 * - `dribbles`: answers 200 and then one byte every 100 ms, for ever (below any idle timeout).
 * - `redirect-chain`: two same-origin 307s (method and body kept, so POSTs follow too), and the
 *   request they lead to is never answered.
 *
 * Erasable TypeScript only: the benchmark (scripts/bench/stalls.mjs) runs this file on Node 24.
 */
import { createServer, type AddressInfo, type Socket } from 'node:net';

export const STALLS = [
  'never-reads',
  'never-answers',
  'headers-then-stalls',
  'dribbles',
  'redirect-chain',
] as const;

export type Stall = (typeof STALLS)[number];

/** Same-origin redirects before the chain's last request stalls. */
export const REDIRECT_HOPS = 2;
const DRIBBLE_INTERVAL_MS = 100;
/** Announced by `dribbles`: far more than it sends in a test, far less than the 1 MiB cap. */
const DRIBBLE_LENGTH = 500_000;

export interface StallServer {
  url: string;
  stall: Stall;
  /** When the first connection was accepted (`never-reads`) or the first byte read (the others). */
  readonly firstByteAt: number | undefined;
  /** Request lines read (`GET /path HTTP/1.1`), in order; empty for `never-reads`. */
  readonly requests: string[];
  /** Connections accepted. */
  readonly connections: number;
  /** Connections this side still holds open (it closes none of its own accord). */
  readonly openSockets: number;
  /** Resolves once `count` connections have been accepted. */
  connected(count?: number): Promise<void>;
  /** Destroys every connection and stops listening. */
  close(): Promise<void>;
}

export async function startStallServer(stall: Stall): Promise<StallServer> {
  const sockets = new Set<Socket>();
  const timers = new Set<ReturnType<typeof setInterval>>();
  const requests: string[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  let firstByteAt: number | undefined;
  let connections = 0;

  // allowHalfOpen: a client's FIN leaves this side open, as it does in a process that stopped.
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    // The client destroying its socket shows up here as a reset; that is the behaviour wanted.
    socket.on('error', () => undefined);
    for (const waiter of waiters.filter((w) => connections >= w.count)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
    if (stall === 'never-reads') {
      firstByteAt ??= Date.now();
      socket.pause();
      return;
    }
    let head = '';
    let answered = false;
    socket.on('data', (chunk: Buffer) => {
      firstByteAt ??= Date.now();
      if (answered) return;
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      answered = true;
      const requestLine = head.slice(0, head.indexOf('\r\n'));
      requests.push(requestLine);
      answer(socket, requestLine);
    });
  });

  function answer(socket: Socket, requestLine: string): void {
    switch (stall) {
      case 'never-answers':
        return;
      case 'headers-then-stalls':
        socket.write(
          'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 4096\r\n\r\n{"id":"',
        );
        return;
      case 'dribbles': {
        socket.write(
          `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${DRIBBLE_LENGTH}\r\n\r\n{"id":"`,
        );
        const timer = setInterval(() => {
          if (socket.destroyed || !socket.writable) return clearTimer();
          socket.write('1');
        }, DRIBBLE_INTERVAL_MS);
        const clearTimer = (): void => {
          clearInterval(timer);
          timers.delete(timer);
        };
        timers.add(timer);
        socket.on('close', clearTimer);
        return;
      }
      case 'redirect-chain': {
        // Counted in the path, so every attempt follows the whole chain.
        const path = requestLine.split(' ')[1] ?? '/';
        const hop = /^\/hop\/(\d+)(\/.*)$/.exec(path);
        const done = Number(hop?.[1] ?? 0);
        if (done >= REDIRECT_HOPS) return;
        socket.write(
          `HTTP/1.1 307 Temporary Redirect\r\nlocation: /hop/${done + 1}${hop?.[2] ?? path}\r\n` +
            'content-length: 0\r\nconnection: close\r\n\r\n',
        );
        socket.end();
        return;
      }
      case 'never-reads':
        return;
    }
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stall,
    get firstByteAt() {
      return firstByteAt;
    },
    requests,
    get connections() {
      return connections;
    },
    get openSockets() {
      return sockets.size;
    },
    connected: (count = 1) =>
      new Promise<void>((resolve) => {
        if (connections >= count) resolve();
        else waiters.push({ count, resolve });
      }),
    close: async () => {
      for (const timer of timers) clearInterval(timer);
      // Resolved once every socket is closed, not only the listener: a test that counts open
      // sockets next must not see this server's.
      const closed = [...sockets].map(
        (socket) => new Promise<void>((resolve) => socket.once('close', () => resolve())),
      );
      for (const socket of sockets) socket.destroy();
      await Promise.all([...closed, new Promise<void>((resolve) => server.close(() => resolve()))]);
    },
  };
}
