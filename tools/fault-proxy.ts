// A TCP proxy in front of one Redis, for fault tests: it can delay, swallow or
// cut traffic, and cut a connection at an exact command (say, right before or
// right after EXEC reaches the server). It reads the client's RESP stream to
// find command boundaries, so faults land between commands, never inside one.
import { performance } from 'node:perf_hooks';
import {
  createConnection,
  createServer,
  type AddressInfo,
  type Server,
  type Socket,
} from 'node:net';

const HOST = '127.0.0.1';
const CR = 0x0d;
const LF = 0x0a;
const ASTERISK = 0x2a;
const DOLLAR = 0x24;

export type FaultAction = 'cut-before' | 'cut-after-send' | 'drop-reply';

type Mode =
  | { kind: 'pass' }
  | { kind: 'blackhole' }
  | { kind: 'delay'; ms: number }
  | { kind: 'drop-replies' };

/** A stretch of the client's stream: one whole command (named), or bytes that are not one. */
interface Segment {
  bytes: Buffer;
  /** Upper-cased command name; absent for empty commands and for unparseable bytes. */
  name?: string;
}

type Parsed = { end: number; name?: string } | { needed: number } | 'invalid';

function readInteger(buffer: Buffer, from: number, to: number): number {
  const digits = buffer.toString('latin1', from, to);
  return /^-?\d+$/.test(digits) ? Number(digits) : Number.NaN;
}

/** Parses the command starting at `at`, as redis-server would: a RESP array of bulk strings, or an inline line. */
function parseCommand(buffer: Buffer, at: number): Parsed {
  const needMore = { needed: buffer.length + 1 };
  if (buffer[at] !== ASTERISK) {
    const newline = buffer.indexOf(LF, at);
    if (newline < 0) return needMore;
    const line = buffer.toString('latin1', at, newline).trim();
    const name = line.split(/\s+/)[0];
    return { end: newline + 1, name: name ? name.toUpperCase() : undefined };
  }
  const headerEnd = buffer.indexOf('\r\n', at);
  if (headerEnd < 0) return needMore;
  const count = readInteger(buffer, at + 1, headerEnd);
  if (Number.isNaN(count)) return 'invalid';
  let position = headerEnd + 2;
  let name: string | undefined;
  for (let i = 0; i < count; i++) {
    if (position >= buffer.length) return needMore;
    if (buffer[position] !== DOLLAR) return 'invalid';
    const lengthEnd = buffer.indexOf('\r\n', position);
    if (lengthEnd < 0) return needMore;
    const length = readInteger(buffer, position + 1, lengthEnd);
    if (Number.isNaN(length) || length < 0) return 'invalid';
    const start = lengthEnd + 2;
    const end = start + length;
    if (buffer.length < end + 2) return { needed: end + 2 };
    if (buffer[end] !== CR || buffer[end + 1] !== LF) return 'invalid';
    if (i === 0) name = buffer.toString('latin1', start, end).toUpperCase();
    position = end + 2;
  }
  return { end: position, name };
}

/**
 * Splits a client's byte stream into whole commands, holding back a command
 * until all of its bytes have arrived. Bytes it cannot parse (which Redis
 * would reject anyway) are passed on unnamed, as is everything after them.
 */
class CommandSplitter {
  private held: Buffer[] = [];
  private heldLength = 0;
  private needed = 1;
  private lost = false;

  push(chunk: Buffer): Segment[] {
    if (this.lost) return [{ bytes: chunk }];
    this.held.push(chunk);
    this.heldLength += chunk.length;
    if (this.heldLength < this.needed) return [];
    const buffer = this.held.length === 1 ? this.held[0]! : Buffer.concat(this.held);
    const segments: Segment[] = [];
    let position = 0;
    while (position < buffer.length) {
      const parsed = parseCommand(buffer, position);
      if (parsed === 'invalid') {
        this.lost = true;
        segments.push({ bytes: buffer.subarray(position) });
        position = buffer.length;
        break;
      }
      if ('needed' in parsed) {
        this.needed = parsed.needed - position;
        break;
      }
      segments.push({ bytes: buffer.subarray(position, parsed.end), name: parsed.name });
      position = parsed.end;
    }
    const rest = buffer.subarray(position);
    this.held = rest.length > 0 ? [rest] : [];
    this.heldLength = rest.length;
    if (rest.length === 0) this.needed = 1;
    return segments;
  }
}

/** One direction of a connection: delivers bytes and actions in order, each no sooner than it is due. */
class Pipe {
  private readonly queue: { due: number; bytes?: Buffer; action?: () => void }[] = [];
  private lastDue = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly write: (bytes: Buffer) => void,
    /** Asked at delivery, so bytes already queued are dropped when the proxy starts dropping. */
    private readonly dropping: () => boolean,
  ) {}

  send(bytes: Buffer, delayMs: number): void {
    this.enqueue({ due: 0, bytes }, delayMs);
  }

  /** Runs `action` once everything queued before it has been delivered. */
  then(action: () => void, delayMs: number): void {
    this.enqueue({ due: 0, action }, delayMs);
  }

  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
  }

  private enqueue(
    item: { due: number; bytes?: Buffer; action?: () => void },
    delayMs: number,
  ): void {
    // Never earlier than what is already queued, so a shorter delay set later cannot reorder bytes.
    item.due = Math.max(performance.now() + delayMs, this.lastDue);
    this.lastDue = item.due;
    this.queue.push(item);
    if (!this.timer) this.flush();
  }

  private flush(): void {
    this.timer = undefined;
    while (this.queue.length > 0) {
      const wait = this.queue[0]!.due - performance.now();
      if (wait > 0) {
        // Rounded up: a timer may fire a fraction of a millisecond early.
        this.timer = setTimeout(() => this.flush(), Math.ceil(wait));
        return;
      }
      const { bytes, action } = this.queue.shift()!;
      if (action) action();
      else if (bytes && !this.dropping()) this.write(bytes);
    }
  }
}

interface ArmedFault {
  command: string;
  action: FaultAction;
  done: () => void;
  fail: (error: Error) => void;
}

/** One client connection and its own connection to the target. */
class ProxiedConnection {
  /** Set once the proxy has cut it or the client has gone: nothing more is forwarded either way. */
  severed = false;
  /** Set once the connection to the target has closed: nothing more can be forwarded to it. */
  serverGone = false;
  /** Set by a 'drop-reply' fault: the server's bytes are discarded from then on. */
  dropReplies = false;
  readonly split = new CommandSplitter();
  readonly toServer: Pipe;
  readonly toClient: Pipe;

  constructor(
    readonly id: number,
    readonly client: Socket,
    readonly server: Socket,
    isDropping: (direction: 'to-server' | 'to-client') => boolean,
  ) {
    this.toServer = new Pipe(
      (bytes) => server.write(bytes),
      () => isDropping('to-server'),
    );
    this.toClient = new Pipe(
      (bytes) => client.write(bytes),
      () => isDropping('to-client'),
    );
  }

  /**
   * Cuts both sides. The server side is ended rather than destroyed, so bytes
   * already forwarded still reach Redis (which runs them, then closes on EOF).
   */
  sever(): void {
    this.severed = true;
    this.toServer.clear();
    this.toClient.clear();
    this.client.destroy();
    this.server.end();
  }

  destroy(): void {
    this.severed = true;
    this.toServer.clear();
    this.toClient.clear();
    this.client.destroy();
    this.server.destroy();
  }
}

/** A TCP proxy on a free loopback port in front of one Redis. */
export class FaultProxy {
  readonly host = HOST;
  readonly url: string;
  private mode: Mode = { kind: 'pass' };
  private readonly open = new Set<ProxiedConnection>();
  private readonly listeners = new Set<(name: string, connectionId: number) => void>();
  private faults: ArmedFault[] = [];
  /** Commands still allowed through before `cutAfter` cuts; undefined when not armed. */
  private cutBudget: number | undefined;
  private nextId = 1;
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly listener: Server,
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {
    this.url = `redis://${HOST}:${port}`;
    listener.on('connection', (client) => this.accept(client));
  }

  static async start(target: { host: string; port: number }): Promise<FaultProxy> {
    const listener = createServer({ allowHalfOpen: true });
    // Port 0: the kernel picks a free port atomically, so no other process can race for it.
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(0, HOST, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    const { port } = listener.address() as AddressInfo;
    return new FaultProxy(listener, port, { host: target.host, port: target.port });
  }

  /** Client connections open right now. */
  get connections(): number {
    let count = 0;
    for (const connection of this.open) if (!connection.severed) count++;
    return count;
  }

  /** Forwards everything as it comes (the initial mode). */
  pass(): void {
    this.mode = { kind: 'pass' };
  }

  /** Keeps connections open, and accepts new ones, but forwards nothing either way: bytes are dropped, not buffered. */
  blackhole(): void {
    this.mode = { kind: 'blackhole' };
  }

  /** Forwards each chunk, both ways, `ms` after it arrived, in order. */
  delay(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) {
      throw new Error(`FaultProxy.delay: ms must be a non-negative number, got ${ms}`);
    }
    this.mode = { kind: 'delay', ms };
  }

  /** Forwards what clients send, and discards everything the server sends back. */
  dropReplies(): void {
    this.mode = { kind: 'drop-replies' };
  }

  /**
   * Calls `listener` with the upper-cased name of every command a client
   * sends, in order, including one a fault then stops. Returns a function that
   * removes the listener. A listener must not throw.
   */
  onCommand(listener: (name: string, connectionId: number) => void): () => void {
    const own = (name: string, connectionId: number): void => listener(name, connectionId);
    this.listeners.add(own);
    return () => void this.listeners.delete(own);
  }

  /**
   * The next time any client sends `command`, acts on that connection:
   * 'cut-before' cuts both sides without forwarding it; 'cut-after-send'
   * forwards it and cuts both sides before any reply can reach the client
   * (Redis still runs it: a lost reply); 'drop-reply' forwards it and discards
   * the server's bytes on that connection from then on, keeping the client's
   * socket open. Resolves once it has happened; rejects if the proxy stops
   * first. One-shot.
   */
  faultOn(command: string, action: FaultAction): Promise<void> {
    const happened = new Promise<void>((done, fail) => {
      this.faults.push({ command: command.toUpperCase(), action, done, fail });
    });
    // A test may arm a fault it expects never to fire: stopping must not leave an unhandled rejection.
    happened.catch(() => undefined);
    return happened;
  }

  /**
   * Lets `n` more commands through (counted over all connections), then cuts
   * every connection when the next one arrives, without forwarding it. One-shot.
   */
  cutAfter(n: number): void {
    if (!Number.isInteger(n) || n < 0) {
      throw new Error(`FaultProxy.cutAfter: n must be a non-negative integer, got ${n}`);
    }
    this.cutBudget = n;
  }

  /** Cuts every open connection now; clients that reconnect come through the proxy again. */
  cutAll(): void {
    for (const connection of this.open) connection.sever();
  }

  /** Back to 'pass', with no `cutAfter` armed; faults still armed are rejected. Open connections stay. */
  reset(): void {
    this.pass();
    this.cutBudget = undefined;
    this.disarmFaults('was reset');
  }

  /** Closes the listener and every connection, and rejects faults that never fired. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= new Promise<void>((resolve) => {
      this.disarmFaults('stopped');
      this.listener.close(() => resolve());
      for (const connection of this.open) connection.destroy();
    });
    return this.stopping;
  }

  private disarmFaults(why: string): void {
    const faults = this.faults;
    this.faults = [];
    for (const fault of faults) {
      fault.fail(new Error(`FaultProxy ${why} before any client sent ${fault.command}`));
    }
  }

  private accept(client: Socket): void {
    if (this.stopping) {
      client.destroy();
      return;
    }
    const server = createConnection({
      host: this.target.host,
      port: this.target.port,
      allowHalfOpen: true,
    });
    const connection = new ProxiedConnection(this.nextId++, client, server, (direction) =>
      this.isDropping(direction),
    );
    this.open.add(connection);
    client.setNoDelay(true);
    server.setNoDelay(true);

    let closed = 0;
    const forget = (): void => {
      if (++closed === 2) this.open.delete(connection);
    };
    // A failure on either side ends the whole connection, as a broken network would.
    const onError = (): void => connection.destroy();
    client.on('error', onError).on('close', () => {
      connection.severed = true;
      connection.toServer.clear();
      connection.toClient.clear();
      // Ended, not destroyed: bytes forwarded just before a cut must still reach Redis.
      server.end();
      forget();
    });
    server.on('error', onError).on('close', () => {
      connection.serverGone = true;
      connection.toServer.clear();
      // The client still gets what was queued for it (it may be delayed), then loses the connection.
      connection.toClient.then(() => client.destroy(), this.delayMs());
      forget();
    });

    client.on('data', (chunk: Buffer) => this.fromClient(connection, chunk));
    server.on('data', (chunk: Buffer) => {
      if (connection.severed || connection.dropReplies || this.isDropping('to-client')) return;
      connection.toClient.send(chunk, this.delayMs());
    });
    // A half-close travels on after the bytes queued before it.
    client.on('end', () => connection.toServer.then(() => server.end(), this.delayMs()));
    server.on('end', () => connection.toClient.then(() => client.end(), this.delayMs()));
  }

  private fromClient(connection: ProxiedConnection, chunk: Buffer): void {
    for (const segment of connection.split.push(chunk)) {
      if (connection.severed) return;
      const { bytes, name } = segment;
      if (name !== undefined) {
        for (const listener of this.listeners) listener(name, connection.id);
        if (this.cutBudget !== undefined && this.cutBudget-- === 0) {
          this.cutBudget = undefined;
          // Whatever was forwarded before still goes first (it may be delayed).
          connection.toServer.then(() => this.cutAll(), this.delayMs());
          connection.severed = true;
          return;
        }
        const index = this.faults.findIndex((fault) => fault.command === name);
        if (index >= 0) {
          const [fault] = this.faults.splice(index, 1) as [ArmedFault];
          this.applyFault(connection, fault, bytes);
          if (fault.action !== 'drop-reply') return;
          continue;
        }
      }
      this.forward(connection, bytes);
    }
  }

  private applyFault(connection: ProxiedConnection, fault: ArmedFault, command: Buffer): void {
    if (fault.action !== 'cut-before') this.forward(connection, command);
    const delayMs = this.delayMs();
    if (fault.action === 'drop-reply') {
      connection.toServer.then(() => {
        connection.dropReplies = true;
        fault.done();
      }, delayMs);
      return;
    }
    // Nothing more from this client is forwarded, though the cut itself waits its turn.
    connection.toServer.then(() => {
      connection.sever();
      fault.done();
    }, delayMs);
    connection.severed = true;
  }

  private forward(connection: ProxiedConnection, bytes: Buffer): void {
    if (connection.serverGone || this.isDropping('to-server')) return;
    connection.toServer.send(bytes, this.delayMs());
  }

  private isDropping(direction: 'to-server' | 'to-client'): boolean {
    if (this.mode.kind === 'blackhole') return true;
    return direction === 'to-client' && this.mode.kind === 'drop-replies';
  }

  private delayMs(): number {
    return this.mode.kind === 'delay' ? this.mode.ms : 0;
  }
}
