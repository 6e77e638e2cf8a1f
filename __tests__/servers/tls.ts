/**
 * HTTPS for host names that do not resolve, served from loopback: a TLS front holding a throwaway
 * self-signed certificate for those names, and an HTTP CONNECT proxy that tunnels every target to
 * the front. The action's HTTP client bypasses proxies for loopback hosts, so only a public-looking
 * name such as https://social.example makes it use one; a name that cannot resolve proves that
 * the proxy, not DNS, carried the request.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';

/**
 * A throwaway self-signed certificate and its key, committed so the tests need no `openssl` on the
 * machine (issue 9: Node and npm alone). Test-only: it guards nothing. It names social.example,
 * api.anyweb.cc, cdn.example, media2.example, localhost and 127.0.0.1, and runs to 2126; to add a
 * name, see __tests__/fixtures/tls/README.md.
 */
export const TEST_CERT_PATH = join(import.meta.dirname, '..', 'fixtures', 'tls', 'cert.pem');
export const TEST_KEY_PATH = join(import.meta.dirname, '..', 'fixtures', 'tls', 'key.pem');

export interface TlsFront {
  port: number;
  /** The certificate in PEM; the action trusts it through NODE_EXTRA_CA_CERTS. */
  certPath: string;
  close(): Promise<void>;
}

export interface ConnectProxy {
  /** For `https_proxy`. */
  url: string;
  /** Every CONNECT target in order, as `host:port`. */
  connects: string[];
  /** Requests that were not CONNECT (a plain-http request sent to the proxy), as `METHOD url`. */
  others: string[];
  close(): Promise<void>;
}

/**
 * Terminates TLS for each host name in `routes` and passes the decrypted bytes to the plain-HTTP
 * loopback server given for it. The bytes are piped rather than parsed so the loopback server sees
 * exactly what the action sent (its Host header included).
 */
export async function startTlsFront(routes: Record<string, string>): Promise<TlsFront> {
  const sockets = new Set<Socket>();
  const server = createTlsServer(
    { key: readFileSync(TEST_KEY_PATH), cert: readFileSync(TEST_CERT_PATH) },
    (socket) => {
      // The client names the host in SNI; an unknown name gets no answer, like a wrong vhost.
      // Clients send no SNI for an IP address: that is the '127.0.0.1' route.
      const name = typeof socket.servername === 'string' ? socket.servername : '127.0.0.1';
      const target = routes[name];
      if (!target) return socket.destroy();
      const { hostname, port } = new URL(target);
      splice(socket, connect(Number(port), hostname), sockets);
    },
  );
  track(server, sockets);
  // A client that gives up on the handshake is not a test failure.
  server.on('tlsClientError', () => {});
  await listenLoopback(server);
  return {
    port: (server.address() as AddressInfo).port,
    certPath: TEST_CERT_PATH,
    close: () => closeServer(server, sockets),
  };
}
/** A forward proxy that tunnels every CONNECT, whatever its target, to the TLS front's port. */
export async function startConnectProxy(front: { port: number }): Promise<ConnectProxy> {
  const connects: string[] = [];
  const others: string[] = [];
  const sockets = new Set<Socket>();
  const server = createHttpServer((req, res) => {
    others.push(`${req.method ?? ''} ${req.url ?? ''}`);
    res.writeHead(405, { 'content-type': 'text/plain' }).end('CONNECT only\n');
  });
  server.on('connect', (req, client: Socket, head: Buffer) => {
    connects.push(req.url ?? '');
    const upstream = connect(front.port, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      splice(client, upstream, sockets);
    });
    upstream.on('error', () => {
      if (client.writable) client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n');
    });
  });
  track(server, sockets);
  await listenLoopback(server);
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connects,
    others,
    close: () => closeServer(server, sockets),
  };
}

/** Pipes two sockets both ways; when either side fails or closes, both go. */
function splice(a: Socket, b: Socket, sockets: Set<Socket>): void {
  for (const socket of [a, b]) {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {
      a.destroy();
      b.destroy();
    });
  }
  a.pipe(b);
  b.pipe(a);
}

function track(server: Server, sockets: Set<Socket>): void {
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
}

function listenLoopback(server: Server): Promise<void> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
}

/** Destroys open tunnels too: a kept-alive connection would otherwise hold close() open. */
function closeServer(server: Server, sockets: Set<Socket>): Promise<void> {
  return new Promise((resolve) => {
    for (const socket of sockets) socket.destroy();
    server.close(() => resolve());
  });
}
