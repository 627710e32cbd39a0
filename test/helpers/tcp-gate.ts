import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP forwarder that holds every connection until open(): a
 * client's first request (e.g. an informer's list through the API stand-in)
 * gets no answer — not an error, just nothing — until the test lets it
 * through. Bytes are forwarded untouched, so TLS is end to end.
 */
export class TcpGate {
  readonly #server: Server;
  readonly #target: { host: string; port: number };
  readonly #held: Socket[] = [];
  readonly #sockets = new Set<Socket>();
  #open = false;
  port = 0;

  private constructor(target: { host: string; port: number }) {
    this.#target = target;
    this.#server = createServer((client) => {
      this.#track(client);
      client.on('error', () => client.destroy());
      if (this.#open) this.#forward(client);
      else this.#held.push(client); // paused: what it sends waits in its buffer
    });
  }

  static async start(target: { host: string; port: number }): Promise<TcpGate> {
    const g = new TcpGate(target);
    await new Promise<void>((resolve, reject) => {
      g.#server.once('error', reject);
      g.#server.listen(0, '127.0.0.1', () => resolve());
    });
    g.port = (g.#server.address() as { port: number }).port;
    return g;
  }

  /** Connections waiting for open(). */
  get held(): number {
    return this.#held.filter((s) => !s.destroyed).length;
  }

  /** Forward the held connections and every later one. */
  open(): void {
    this.#open = true;
    for (const c of this.#held.splice(0)) if (!c.destroyed) this.#forward(c);
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const s of this.#sockets) s.destroy();
    await closed;
  }

  #forward(client: Socket): void {
    const up = connect(this.#target.port, this.#target.host);
    this.#track(up);
    up.on('error', () => client.destroy());
    client.on('close', () => up.destroy());
    up.on('close', () => client.destroy());
    client.pipe(up);
    up.pipe(client);
  }

  #track(s: Socket): void {
    this.#sockets.add(s);
    s.on('close', () => this.#sockets.delete(s));
  }
}
