import { Cluster, type Redis } from 'ioredis';
import { ConnectionLostError, type ConnectionLossReason } from '../errors/connection-lost.error.js';
import { messages } from '../redis-tx.messages.js';
import { InFlightCommands } from './in-flight-commands.js';
import type { RedisClient } from './redis-client.js';

/** What the guard reads of an ioredis Command. */
interface SentCommand {
  name: string;
  /** Set by ioredis on MULTI and the commands queued after it, not on their EXEC. */
  inTransaction?: boolean;
  /** ioredis 6 marks both outcomes; ioredis 5 marks only a resolve, so the guard marks rejects itself. */
  isSettled?: boolean;
  isResolved?: boolean;
  reject(error: Error): void;
  /** Set once the guard watches the command, so a command sent again (a redirect, a resend) is watched once. */
  [watched]?: true;
}

const watched = Symbol('nestjs-redis-tx watched');

/** The queues ioredis keeps on a connection: written and unanswered, and not yet written. */
interface Queues {
  commandQueue: CommandDeque;
  offlineQueue: CommandDeque;
  stream?: { destroy(): void } | null;
}

interface CommandDeque {
  length: number;
  peekAt(index: number): { command: SentCommand } | undefined;
  remove(index: number, count: number): unknown;
}

/** ioredis's `sendCommand(command, stream)`, and a Cluster's `sendCommand(command, stream, node)`. */
type SendCommand = (command: SentCommand, stream?: unknown, node?: unknown) => Promise<unknown>;

/** How often, per deadline, in-flight commands are looked at: a silent server is caught within 1.25 deadlines. */
const SWEEPS_PER_DEADLINE = 4;

/**
 * Makes every command sent on one of the library's own connections settle
 * within a bound, whatever happens to the connection:
 * - when the connection closes, every unanswered command fails at once
 *   (ioredis, with automatic resend off, would leave them pending forever);
 * - when the connection is dropped on purpose (a Sentinel failover, a
 *   READONLY reply), the socket is destroyed at once, so no reply the old
 *   server sends later is read, and unanswered commands fail;
 * - when a command has had no answer for `deadlineMs`, the server is taken
 *   for silent: its connection is dropped (and on a Cluster the slot map is
 *   refreshed, so the next call finds a promoted replica), failing every
 *   command on it; one never written is withdrawn and fails unsent.
 *
 * Costs one slot per command in flight (see InFlightCommands), and one timer per connection
 * only while commands are in flight. On a connection without an offline
 * queue, a MULTI block is tracked by its EXEC alone (see `tracksWholeBlocks`).
 */
export class CommandGuard {
  private readonly inFlight = new InFlightCommands<SentCommand>();
  private sweeps = 0;
  private timer?: NodeJS.Timeout;
  private readonly sweepMs: number;
  /** ioredis 5 leaves `isSettled` unset: track rejections by hand there. */
  private markRejects?: boolean;
  /**
   * Whether a MULTI block is watched through its EXEC alone, which spares a
   * transaction all but one of its Map entries. Its commands are written in
   * one piece and answered in order, so while EXEC is unanswered every
   * unanswered command of its block sits in the written queue with it, where
   * a close or a silent server fails them together (see `failAll`,
   * `overdue`). Not so where a block can wait unwritten (an offline queue, a
   * Cluster's queues): a command left behind there could be written later,
   * so each is tracked.
   */
  private readonly tracksWholeBlocks: boolean;

  constructor(
    private readonly client: RedisClient,
    private readonly deadlineMs: number,
    private readonly onSilent: (node: string) => void = () => undefined,
  ) {
    this.sweepMs = Math.max(1, Math.ceil(deadlineMs / SWEEPS_PER_DEADLINE));
    this.tracksWholeBlocks =
      !(client instanceof Cluster) && client.options.enableOfflineQueue === false;
    const send = client.sendCommand as unknown as SendCommand;
    // Named parameters rather than a rest array: this runs for every command.
    const guarded: SendCommand = (command, stream, node) => {
      // The handshake (HELLO, AUTH, the ready check…) is ioredis's own: a
      // silent server there is bounded by the wait for 'ready'
      // (readyTimeoutMs), and failing one of its commands would surface as
      // an error nobody catches.
      if (client.status === 'connect') return send.call(client, command, stream, node);
      // Before sending: a command can be refused, and settled, inside the call.
      if ((this.markRejects ??= command.isSettled === undefined)) markRejects(command);
      const reply = send.call(client, command, stream, node);
      if (command.inTransaction !== true || !this.tracksWholeBlocks) this.track(command);
      return reply;
    };
    (client as unknown as { sendCommand: SendCommand }).sendCommand = guarded;
    if (!(client instanceof Cluster)) {
      client.on('close', () => this.failAll('closed'));
      dropAtOnceOnFailover(client, () => this.failAll('closed'));
    }
    client.on('end', () => this.stopSweeping());
  }

  private track(command: SentCommand): void {
    if (settled(command) || command[watched]) return;
    command[watched] = true;
    // Replies come in the order commands were sent: the answered ones are at
    // the front. Emptying their slots now keeps the ring about as large as
    // what is in flight, rather than holding every command sent since the
    // last sweep (and its reply) alive until then.
    this.inFlight.dropAnsweredFront(settled);
    this.inFlight.add(command, this.sweeps);
    if (!this.timer) {
      this.timer = setInterval(() => this.sweep(), this.sweepMs);
      this.timer.unref();
    }
  }

  private sweep(): void {
    this.sweeps++;
    const overdue: SentCommand[] = [];
    this.inFlight.retain((command, sentIn) => {
      if (settled(command)) return false;
      if (this.sweeps - sentIn > SWEEPS_PER_DEADLINE) overdue.push(command);
      return true;
    });
    if (this.inFlight.isEmpty) this.stopSweeping();
    if (overdue.length > 0) this.overdue(overdue);
  }

  /** Commands unanswered past the deadline: the server holding each is silent, or it was never written. */
  private overdue(commands: SentCommand[]): void {
    const silent = new Set<Redis>();
    const connections = connectionsOf(this.client);
    for (const command of commands) {
      const connection = connections.find((c) => holds(queuesOf(c).commandQueue, command));
      if (connection) {
        silent.add(connection);
      } else if (connections.some((c) => withdraw(queuesOf(c).offlineQueue, command))) {
        this.fail(command, 'unreachable');
      } else if (this.client instanceof Cluster && withdraw(clusterQueue(this.client), command)) {
        this.fail(command, 'unreachable');
      }
    }
    for (const connection of silent) {
      for (const command of queued(queuesOf(connection).commandQueue)) this.fail(command, 'silent');
      queuesOf(connection).stream?.destroy();
      const { host, port } = connection.options;
      this.onSilent(`${host ?? 'localhost'}:${port ?? 6379}`);
    }
  }

  private failAll(reason: ConnectionLossReason): void {
    for (const command of this.inFlight.takeAll()) this.fail(command, reason);
    this.stopSweeping();
    // The untracked part of each MULTI block (see `tracksWholeBlocks`): its
    // EXEC has failed above, and the block settles only once all of it has.
    if (this.tracksWholeBlocks) {
      for (const command of queued(queuesOf(this.client as Redis).commandQueue)) {
        if (command.inTransaction === true) this.fail(command, reason);
      }
    }
  }

  private fail(command: SentCommand, reason: ConnectionLossReason): void {
    this.inFlight.delete(command);
    if (settled(command)) return;
    command.reject(
      new ConnectionLostError(
        messages.connectionLost(command.name, reason, this.deadlineMs),
        reason,
      ),
    );
  }

  private stopSweeping(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

/**
 * When Sentinel announces a new master (+switch-master), ioredis's failover
 * detector ends the socket to the old one half-way and destroys it only
 * after `disconnectTimeout` (2 s by default), reading every reply the old
 * master sends meanwhile: a master frozen past the switch and then resumed
 * would have its late replies taken for successes. Destroy the socket at
 * once instead, and fail what it carried (`onDrop`): from the moment the
 * switch is known, nothing the old master says is believed.
 *
 * A drop for a READONLY reply keeps ioredis's way: a replica refuses every
 * write, so its late replies cannot be mistaken for applied writes, and a
 * transaction it refused still gets its EXECABORT read.
 */
export function dropAtOnceOnFailover(client: Redis, onDrop: () => void = () => undefined): void {
  const connector = (client as unknown as { connector?: Connector }).connector;
  if (!connector || !client.options.sentinels?.length) return;
  const disconnect = connector.disconnect.bind(connector);
  connector.disconnect = () => {
    // The detector marks itself before it asks for the disconnect.
    const switched = connector.failoverDetector?.isDisconnected === true;
    const { stream } = connector;
    disconnect();
    if (!switched) return;
    onDrop();
    stream?.destroy();
  };
}

interface Connector {
  stream?: { destroy(): void };
  failoverDetector?: { isDisconnected: boolean } | null;
  disconnect(): void;
}

function settled(command: SentCommand): boolean {
  return command.isSettled === true || command.isResolved === true;
}

function connectionsOf(client: RedisClient): Redis[] {
  return client instanceof Cluster ? client.nodes('all') : [client];
}

function queuesOf(connection: Redis): Queues {
  return connection as unknown as Queues;
}

function clusterQueue(cluster: Cluster): CommandDeque {
  return (cluster as unknown as Queues).offlineQueue;
}

function holds(queue: CommandDeque | undefined, command: SentCommand): boolean {
  if (!queue) return false;
  for (let i = 0; i < queue.length; i++) if (queue.peekAt(i)?.command === command) return true;
  return false;
}

/** Takes a command that was never written out of its queue, so it cannot be written later. */
function withdraw(queue: CommandDeque | undefined, command: SentCommand): boolean {
  if (!queue) return false;
  for (let i = 0; i < queue.length; i++) {
    if (queue.peekAt(i)?.command === command) {
      queue.remove(i, 1);
      return true;
    }
  }
  return false;
}

function queued(queue: CommandDeque): SentCommand[] {
  const commands: SentCommand[] = [];
  for (let i = 0; i < queue.length; i++) {
    const item = queue.peekAt(i);
    if (item) commands.push(item.command);
  }
  return commands;
}

function markRejects(command: SentCommand): void {
  const reject = command.reject.bind(command);
  command.reject = (error) => {
    command.isSettled = true;
    reject(error);
  };
}
