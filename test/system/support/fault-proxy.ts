import { type Server, type Socket, connect, createServer } from 'node:net';

/** A TCP proxy in front of Postgres that can drop every connection and refuse new ones for a while. */
export interface OutageProxy {
  /** The loopback port clients connect to (stable across outages). */
  readonly port: number;
  /** Connections opened through the proxy so far. */
  readonly connections: number;
  /**
   * Destroys every open connection and refuses new ones (ECONNREFUSED) for `ms`, then listens
   * again on the same port: what a database restart looks like to its clients.
   */
  outage(ms: number): Promise<void>;
  close(): Promise<void>;
}

/** Starts an {@link OutageProxy} to `host:port` on a free loopback port. */
export async function startOutageProxy(host: string, port: number): Promise<OutageProxy> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const onConnection = (client: Socket): void => {
    connections++;
    const upstream = connect(port, host);
    sockets.add(client).add(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  };
  let server: Server = createServer(onConnection);
  const listen = (onPort: number): Promise<number> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(onPort, '127.0.0.1', () => {
        server.off('error', reject);
        const address = server.address();
        resolve(typeof address === 'object' && address ? address.port : 0);
      });
    });
  const stopListening = (): Promise<void> => new Promise((resolve) => server.close(() => resolve()));
  const dropAll = (): void => {
    for (const socket of sockets) socket.destroy();
    sockets.clear();
  };
  const boundPort = await listen(0);
  return {
    port: boundPort,
    get connections() {
      return connections;
    },
    async outage(ms) {
      const closed = stopListening();
      dropAll();
      await closed;
      await new Promise((resolve) => setTimeout(resolve, ms));
      server = createServer(onConnection);
      await listen(boundPort);
    },
    async close() {
      const closed = stopListening();
      dropAll();
      await closed;
    },
  };
}
