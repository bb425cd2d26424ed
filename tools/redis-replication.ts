// A master, its replicas and the Sentinels watching them, for tests of what
// happens when the master changes. Built from the same throwaway processes as
// RedisServer and RedisSentinel, and asked about its state over raw sockets,
// so it never relies on the client library under test.
import { setTimeout as sleep } from 'node:timers/promises';
import { ask, RedisSentinel, RedisServer, type Reply } from './redis-server.js';

const SETTLE_TIMEOUT_MS = 15_000;
const POLL_MS = 50;

export interface ReplicatedRedisOptions {
  /** Replicas of the first master. Default 1. */
  replicas?: number;
  /** Sentinels monitoring it; a majority of them is the quorum. Default 1; 0 for plain replication (`servers[0]` is the master). */
  sentinels?: number;
  /** Default 'mymaster'. */
  masterName?: string;
  /** How long a silent master takes to count as down. Default 1 000 ms. */
  downAfterMs?: number;
  /** Sentinel's failover-timeout; it also delays turning the old master into a replica. Default 2 000 ms. */
  failoverTimeoutMs?: number;
  /** Extra redis-server arguments for every data server. */
  args?: string[];
}

/** What ioredis needs to connect through the Sentinels: spread it into RedisOptions. */
export interface SentinelConnectionOptions {
  sentinels: { host: string; port: number }[];
  name: string;
}

/**
 * A replicated Redis behind Sentinel. `servers` never changes: a failover
 * only changes which of them is the master, which `master()` asks the
 * Sentinels about.
 */
export class ReplicatedRedis {
  private constructor(
    readonly name: string,
    readonly servers: readonly RedisServer[],
    readonly sentinels: readonly RedisSentinel[],
    private readonly failoverTimeoutMs: number,
  ) {}

  /** Starts everything and resolves once the replicas are in sync and every Sentinel knows them; stops what it started if any step fails. */
  static async start(options: ReplicatedRedisOptions = {}): Promise<ReplicatedRedis> {
    const { replicas = 1, sentinels = 1, masterName = 'mymaster' } = options;
    const { downAfterMs = 1_000, failoverTimeoutMs = 2_000 } = options;
    // A full sync otherwise waits 5 s for more replicas to join it.
    const args = ['--repl-diskless-sync-delay', '0', ...(options.args ?? [])];
    const servers: RedisServer[] = [];
    const watchers: RedisSentinel[] = [];
    try {
      const master = await RedisServer.start({ args });
      servers.push(master);
      const started = await Promise.allSettled(
        Array.from({ length: replicas }, () =>
          RedisServer.start({ args: [...args, '--replicaof', master.host, String(master.port)] }),
        ),
      );
      servers.push(...fulfilled(started));
      throwFirstFailure(started);
      await until('the replicas to finish their first sync', () => inSync(master, servers));

      const quorum = Math.floor(sentinels / 2) + 1;
      const sentinelStarts = await Promise.allSettled(
        Array.from({ length: sentinels }, () =>
          RedisSentinel.start(master, { masterName, quorum, downAfterMs, failoverTimeoutMs }),
        ),
      );
      watchers.push(...fulfilled(sentinelStarts));
      throwFirstFailure(sentinelStarts);
      const setup = new ReplicatedRedis(masterName, servers, watchers, failoverTimeoutMs);
      await until('every Sentinel to know the replicas and the other Sentinels', () =>
        setup.sentinelsSettled(replicas),
      );
      return setup;
    } catch (error) {
      await stopAll([...watchers, ...servers]);
      throw error;
    }
  }

  sentinelOptions(): SentinelConnectionOptions {
    return {
      sentinels: this.sentinels.map(({ host, port }) => ({ host, port })),
      name: this.name,
    };
  }

  /** The server every Sentinel names as the master; throws while they disagree. */
  async master(): Promise<RedisServer> {
    // Without Sentinel nothing fails over: the first server stays the master.
    if (this.sentinels.length === 0) return this.servers[0]!;
    const ports = await Promise.all(this.sentinels.map((s) => this.masterPortSeenBy(s)));
    if (new Set(ports).size !== 1) {
      throw new Error(`The Sentinels disagree on the master of ${this.name}: ports ${ports}`);
    }
    return this.serverOn(ports[0]!);
  }

  /** Every server that is not the master. */
  async replicas(): Promise<RedisServer[]> {
    const master = await this.master();
    return this.servers.filter((server) => server !== master);
  }

  /**
   * SENTINEL FAILOVER, then waits until the failover is complete: every
   * Sentinel names the new master, it answers ROLE as master, and every other
   * server (the old master included) replicates from it. Resolves with the
   * new master.
   */
  async failover(): Promise<RedisServer> {
    if (this.sentinels.length === 0) throw new Error('failover() needs at least one Sentinel');
    const previous = await this.master();
    const [sentinel] = this.sentinels;
    const reply = await ask(sentinel!.port, `SENTINEL FAILOVER ${this.name}`);
    if (reply instanceof Error) throw new Error(`SENTINEL FAILOVER refused: ${reply.message}`);
    await this.switchedFrom(previous);
    return this.settled();
  }

  /**
   * Waits until every Sentinel names a master other than `previous` and it
   * answers ROLE as master (however the failover began: SENTINEL FAILOVER,
   * or `previous` frozen or killed past down-after). Resolves with it.
   */
  async switchedFrom(previous: RedisServer, timeoutMs = SETTLE_TIMEOUT_MS): Promise<RedisServer> {
    let next: RedisServer | undefined;
    await until(
      `${this.name} to switch away from port ${previous.port}`,
      async () => {
        next = await this.master().catch(() => undefined);
        return next !== undefined && next !== previous && (await role(next.port))[0] === 'master';
      },
      timeoutMs,
    );
    return next!;
  }

  /**
   * Waits until every server other than the master Sentinels name replicates
   * from it, and resolves with that master. Sentinel tells its clients about
   * a switch on pub/sub and the servers announce nothing, so their state is
   * asked for until it reads as done. An old master is turned into a replica
   * only after failover-timeout and Sentinel's next 10 s INFO round, hence
   * the long deadline.
   */
  async settled(): Promise<RedisServer> {
    let master: RedisServer | undefined;
    await until(
      `every server of ${this.name} to replicate from the master`,
      async () => {
        master = await this.master();
        if ((await role(master.port))[0] !== 'master') return false;
        const others = this.servers.filter((server) => server !== master);
        const roles = await Promise.all(others.map((server) => role(server.port)));
        return roles.every((r) => isReplicaOf(r, master!));
      },
      this.failoverTimeoutMs + 20_000,
    );
    return master!;
  }

  /** Stops every Sentinel first (so none reacts to a server going away), then every server. */
  async stop(): Promise<void> {
    await stopAll(this.sentinels);
    await stopAll(this.servers);
  }

  private async masterPortSeenBy(sentinel: RedisSentinel): Promise<number> {
    const address = await ask(sentinel.port, `SENTINEL get-master-addr-by-name ${this.name}`);
    if (!Array.isArray(address)) {
      throw new Error(`Sentinel on ${sentinel.port} does not know ${this.name}`);
    }
    return Number(address[1]);
  }

  private serverOn(port: number): RedisServer {
    const server = this.servers.find((s) => s.port === port);
    if (!server) throw new Error(`No server of ${this.name} listens on port ${port}`);
    return server;
  }

  /** Each Sentinel lists every replica as a healthy, linked replica and has met all the other Sentinels. */
  private async sentinelsSettled(replicas: number): Promise<boolean> {
    for (const sentinel of this.sentinels) {
      const known = await ask(sentinel.port, `SENTINEL replicas ${this.name}`);
      if (!Array.isArray(known) || known.length !== replicas) return false;
      for (const entry of known) {
        const fields = pairs(entry);
        if (fields['flags'] !== 'slave' || fields['master-link-status'] !== 'ok') return false;
      }
      const peers = await ask(sentinel.port, `SENTINEL sentinels ${this.name}`);
      if (!Array.isArray(peers) || peers.length !== this.sentinels.length - 1) return false;
    }
    return true;
  }
}

/** The master counts every replica as connected, and each replica's link to it is up. */
async function inSync(master: RedisServer, servers: readonly RedisServer[]): Promise<boolean> {
  const replicas = servers.filter((server) => server !== master);
  const info = await replicationInfo(master.port);
  if (Number(info['connected_slaves']) !== replicas.length) return false;
  for (const replica of replicas) {
    if ((await replicationInfo(replica.port))['master_link_status'] !== 'up') return false;
  }
  return true;
}

async function replicationInfo(port: number): Promise<Record<string, string>> {
  const reply = await ask(port, 'INFO replication');
  if (typeof reply !== 'string') throw new Error(`INFO on port ${port} answered ${String(reply)}`);
  return Object.fromEntries(
    reply
      .split('\r\n')
      .filter((line) => line.includes(':'))
      .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1)]),
  );
}

async function role(port: number): Promise<Reply[]> {
  const reply = await ask(port, 'ROLE');
  return Array.isArray(reply) ? reply : [];
}

/** ROLE of a replica: ['slave', host, port, state, offset]. */
function isReplicaOf(reply: Reply[], master: RedisServer): boolean {
  const [kind, , port, state] = reply;
  return kind === 'slave' && Number(port) === master.port && state === 'connected';
}

/** A flat [field, value, field, value, …] reply as an object. */
function pairs(reply: Reply): Record<string, string> {
  const fields: Record<string, string> = {};
  if (!Array.isArray(reply)) return fields;
  for (let i = 0; i + 1 < reply.length; i += 2) fields[String(reply[i])] = String(reply[i + 1]);
  return fields;
}

/** Asks `check` until it answers true, for at most `timeoutMs`; a throwing check counts as "not yet". */
async function until(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = SETTLE_TIMEOUT_MS,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  while (performance.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      lastError = error;
    }
    await sleep(POLL_MS);
  }
  const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
  throw new Error(`Gave up after ${timeoutMs} ms waiting for ${what}${why}`);
}

function fulfilled<T>(results: PromiseSettledResult<T>[]): T[] {
  return results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
}

function throwFirstFailure(results: PromiseSettledResult<unknown>[]): void {
  const failure = results.find((result) => result.status === 'rejected');
  if (failure) throw failure.reason;
}

async function stopAll(processes: readonly { stop(): Promise<void> }[]): Promise<void> {
  await Promise.all(processes.map((process) => process.stop()));
}
