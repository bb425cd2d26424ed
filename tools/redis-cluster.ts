// A throwaway Redis Cluster (redis-server processes in cluster mode on free
// loopback ports), for tests of the library against cluster clients. Every
// question about the cluster's state is asked of the nodes themselves over raw
// sockets, so the test bed never depends on a client library behaving.
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import calculateSlot from 'cluster-key-slot';
import { RedisServer, ask, freePort, type Reply } from './redis-server.js';

const HOST = '127.0.0.1';
const SLOT_COUNT = 16_384;
const CREATE_TIMEOUT_MS = 30_000;
const SETTLE_TIMEOUT_MS = 15_000;
const POLL_INTERVAL_MS = 50;
/** A node that does not answer this fast while we poll counts as down (paused, or busy). */
const PROBE_TIMEOUT_MS = 500;
const START_ATTEMPTS = 3;
/** redis-cli's own minimum for `--cluster create`. */
const MIN_MASTERS = 3;

export interface RedisClusterOptions {
  /** Default 3, the least `redis-cli --cluster create` accepts. */
  masters?: number;
  /** Default 1. */
  replicasPerMaster?: number;
  /** Extra redis-server arguments for every node. */
  args?: string[];
  /** cluster-node-timeout. Default 1 000 ms, so failure detection and failovers are quick. */
  nodeTimeoutMs?: number;
}

export interface SettleOptions {
  /** Default 15 000 ms. */
  timeoutMs?: number;
}

/** One line of CLUSTER NODES: how one node sees one member of the cluster. */
interface MemberView {
  id: string;
  port: number;
  flags: Set<string>;
  masterId: string | undefined;
  configEpoch: number;
  connected: boolean;
  /** Inclusive [first, last] slot ranges; only masters have any. */
  slots: [number, number][];
}

/** What one live node says about the cluster's members. */
interface MembersView {
  server: RedisServer;
  myself: MemberView;
  members: MemberView[];
}

/** The members, plus the node's cluster state and, for a replica, its replication link. */
interface Observation extends MembersView {
  state: string;
  /** For a replica: whether its link to the master is up and synced. */
  linkUp: boolean;
}

const FAILING_FLAGS = ['fail', 'fail?', 'handshake', 'noaddr'];

function parseMember(line: string): MemberView {
  const [id, address, flags, master, , , epoch, link, ...slots] = line.split(' ');
  // "127.0.0.1:30001@40001" (optionally ",hostname" after the bus port).
  const port = Number(/:(\d+)@/.exec(address ?? '')?.[1]);
  return {
    id: id ?? '',
    port,
    flags: new Set((flags ?? '').split(',')),
    masterId: master === '-' ? undefined : master,
    configEpoch: Number(epoch),
    connected: link === 'connected',
    // Bracketed entries are slots being migrated, which have no settled owner.
    slots: slots
      .filter((slot) => !slot.startsWith('['))
      .map((slot) => {
        const [first, last = first] = slot.split('-').map(Number);
        return [first!, last!];
      }),
  };
}

function text(reply: Reply, command: string, port: number): string {
  if (typeof reply === 'string') return reply;
  const detail = reply instanceof Error ? reply.message : JSON.stringify(reply);
  throw new Error(`${command} on ${HOST}:${port} answered ${detail}`);
}

/** Reads one `field:value` line of an INFO-style reply. */
function infoField(info: string, field: string): string | undefined {
  return new RegExp(`^${field}:(.*)$`, 'm').exec(info)?.[1]?.trim();
}

async function readMembers(server: RedisServer): Promise<MembersView> {
  const port = server.port;
  const nodes = text(await ask(port, 'CLUSTER NODES', PROBE_TIMEOUT_MS), 'CLUSTER NODES', port);
  const members = nodes
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map(parseMember);
  const myself = members.find((member) => member.flags.has('myself'));
  if (!myself) throw new Error(`CLUSTER NODES on ${HOST}:${port} names no "myself"`);
  return { server, myself, members };
}

async function observe(server: RedisServer): Promise<Observation> {
  const port = server.port;
  const view = await readMembers(server);
  const info = text(await ask(port, 'CLUSTER INFO', PROBE_TIMEOUT_MS), 'CLUSTER INFO', port);
  let linkUp = false;
  if (view.myself.flags.has('slave')) {
    const replication = text(
      await ask(port, 'INFO replication', PROBE_TIMEOUT_MS),
      'INFO replication',
      port,
    );
    linkUp = infoField(replication, 'master_link_status') === 'up';
  }
  return { ...view, state: infoField(info, 'cluster_state') ?? '', linkUp };
}

/** "first-last=owner" for every slot range, in slot order: equal strings mean the same slot map. */
function slotMap(members: MemberView[]): string {
  return members
    .filter((member) => member.flags.has('master'))
    .flatMap((member) => member.slots.map(([first, last]) => ({ first, last, id: member.id })))
    .sort((a, b) => a.first - b.first)
    .map(({ first, last, id }) => `${first}-${last}=${id}`)
    .join(' ');
}

function role(member: MemberView): string {
  return member.flags.has('master') ? 'master' : `replica of ${member.masterId ?? '?'}`;
}

/**
 * Why the live nodes do not yet form one settled cluster, or undefined when
 * they do: all say cluster_state:ok, see each other as healthy, agree on the
 * roles and on the owner of every slot, every owner is live, and every
 * replica's link to its master is up.
 */
function unsettled(observations: Observation[]): string | undefined {
  if (observations.length === 0) return 'no node answers';
  const liveIds = new Set(observations.map(({ myself }) => myself.id));
  const reference = observations[0]!;
  const referenceMap = slotMap(reference.members);
  for (const { server, state, myself, members, linkUp } of observations) {
    const name = `${HOST}:${server.port}`;
    if (state !== 'ok') return `${name} reports cluster_state:${state}`;
    for (const id of liveIds) {
      const member = members.find((candidate) => candidate.id === id);
      if (!member) return `${name} does not know node ${id} yet`;
      const failing = FAILING_FLAGS.find((flag) => member.flags.has(flag));
      if (failing) return `${name} sees node ${id} as ${failing}`;
      if (member !== myself && !member.connected) return `${name} is not connected to node ${id}`;
      const own = observations.find((observation) => observation.myself.id === id)!.myself;
      if (role(member) !== role(own)) {
        return `${name} sees node ${id} as ${role(member)}, but it is ${role(own)}`;
      }
    }
    const map = slotMap(members);
    if (map !== referenceMap) {
      return `${name} and ${HOST}:${reference.server.port} disagree on slot owners`;
    }
    if (myself.flags.has('slave') && !linkUp) return `replica ${name} has not synced yet`;
  }
  const covered = reference.members.reduce(
    (sum, member) =>
      sum + member.slots.reduce((count, [first, last]) => count + last - first + 1, 0),
    0,
  );
  if (covered !== SLOT_COUNT) return `only ${covered} of ${SLOT_COUNT} slots have an owner`;
  const deadOwner = reference.members.find(
    (member) => member.slots.length > 0 && !liveIds.has(member.id),
  );
  if (deadOwner)
    return `slots ${slotMap([deadOwner])} belong to node ${deadOwner.id}, which is down`;
  return undefined;
}

/** Starts one cluster node, on a fresh pair of ports if another process grabbed the first pair. */
async function startNode(args: string[], nodeTimeoutMs: number): Promise<RedisServer> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const busPort = await freePort();
    try {
      if (busPort === port) throw new Error(`address already in use: ${port} twice`);
      return await RedisServer.start({
        port,
        args: [
          '--cluster-enabled',
          'yes',
          // Relative to the node's own temp dir (redis-server changes into
          // --dir before it reads the cluster config), so nodes never share it.
          '--cluster-config-file',
          'nodes.conf',
          // Set explicitly, because the default (port + 10 000) may be taken or above 65 535.
          '--cluster-port',
          String(busPort),
          '--cluster-node-timeout',
          String(nodeTimeoutMs),
          ...args,
        ],
      });
    } catch (error) {
      const portTaken = error instanceof Error && /already in use/i.test(error.message);
      if (!portTaken || attempt === START_ATTEMPTS) throw error;
    }
  }
}

/** Runs `redis-cli --cluster create`, rejecting with its output if it fails. */
function createCluster(nodes: RedisServer[], replicasPerMaster: number): Promise<void> {
  const args = [
    '--cluster',
    'create',
    ...nodes.map((node) => `${node.host}:${node.port}`),
    '--cluster-replicas',
    String(replicasPerMaster),
    '--cluster-yes',
  ];
  return new Promise((resolve, reject) => {
    const cli = spawn('redis-cli', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const collect = (chunk: Buffer): void => {
      output += chunk.toString();
    };
    cli.stdout.on('data', collect);
    cli.stderr.on('data', collect);
    const timer = setTimeout(() => cli.kill('SIGKILL'), CREATE_TIMEOUT_MS);
    cli.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    cli.once('close', (code, signal) => {
      clearTimeout(timer);
      // eslint-disable-next-line no-control-regex -- redis-cli colours its output
      const plain = output.replace(/\x1b\[[0-9;]*m/g, '').trim();
      if (code === 0 && !/\[ERR\]/.test(plain)) resolve();
      else reject(new Error(`redis-cli ${args.join(' ')} failed (${signal ?? code}):\n${plain}`));
    });
  });
}

/** A local Redis Cluster: `masters` masters with `replicasPerMaster` replicas each. */
export class RedisCluster {
  private constructor(readonly nodes: readonly RedisServer[]) {}

  /** Where a cluster client (`new Cluster(cluster.startupNodes)`) can start: every node. */
  get startupNodes(): { host: string; port: number }[] {
    return this.nodes.map((node) => ({ host: node.host, port: node.port }));
  }

  /** Starts the nodes, joins them into a cluster, and resolves once every replica has synced. */
  static async start(options: RedisClusterOptions = {}): Promise<RedisCluster> {
    const { masters = 3, replicasPerMaster = 1, args = [], nodeTimeoutMs = 1000 } = options;
    if (!Number.isInteger(masters) || masters < MIN_MASTERS) {
      throw new Error(`RedisCluster: masters must be an integer of at least ${MIN_MASTERS}`);
    }
    if (!Number.isInteger(replicasPerMaster) || replicasPerMaster < 0) {
      throw new Error('RedisCluster: replicasPerMaster must be a non-negative integer');
    }
    if (!Number.isInteger(nodeTimeoutMs) || nodeTimeoutMs <= 0) {
      throw new Error('RedisCluster: nodeTimeoutMs must be a positive integer');
    }

    const count = masters * (1 + replicasPerMaster);
    const results = await Promise.allSettled(
      Array.from({ length: count }, () => startNode(args, nodeTimeoutMs)),
    );
    const started = results.flatMap((result) =>
      result.status === 'fulfilled' ? [result.value] : [],
    );
    const cluster = new RedisCluster(started);
    try {
      const failure = results.find((result) => result.status === 'rejected');
      if (failure) throw failure.reason;
      await createCluster(started, replicasPerMaster);
      await cluster.waitUntil(SETTLE_TIMEOUT_MS, (observations) => {
        if (observations.length < count)
          return `only ${observations.length} of ${count} nodes answer`;
        const problem = unsettled(observations);
        if (problem) return problem;
        const owners = observations.filter(({ myself }) => myself.slots.length > 0);
        if (owners.length !== masters) return `${owners.length} of ${masters} masters own slots`;
        return undefined;
      });
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** The master that owns `slot` right now, by its own account (the newest claim wins mid-failover). */
  async masterForSlot(slot: number): Promise<RedisServer> {
    if (!Number.isInteger(slot) || slot < 0 || slot >= SLOT_COUNT) {
      throw new Error(`RedisCluster: slot must be an integer from 0 to ${SLOT_COUNT - 1}`);
    }
    const claims = (await this.askLive(readMembers)).filter(
      ({ myself }) =>
        myself.flags.has('master') &&
        myself.slots.some(([first, last]) => first <= slot && slot <= last),
    );
    const newest = claims.sort((a, b) => b.myself.configEpoch - a.myself.configEpoch)[0];
    if (!newest) throw new Error(`RedisCluster: no live node owns slot ${slot}`);
    return newest.server;
  }

  /** The master that owns the slot `key` hashes to (hash tags included). */
  masterForKey(key: string): Promise<RedisServer> {
    return this.masterForSlot(calculateSlot(key));
  }

  /** The live replicas that follow `master`, in node order. */
  async replicasOf(master: RedisServer): Promise<RedisServer[]> {
    const observations = await this.askLive(readMembers);
    const masterId = this.idOf(master, observations);
    return observations
      .filter(({ myself }) => myself.flags.has('slave') && myself.masterId === masterId)
      .map(({ server }) => server);
  }

  /**
   * Promotes a replica of `master` with CLUSTER FAILOVER, run on the replica
   * (with FORCE when the master does not answer), and resolves with it once
   * every live node agrees it owns the master's slots and the cluster has settled.
   */
  async failover(master: RedisServer, options: SettleOptions = {}): Promise<RedisServer> {
    const observations = await this.askLive(observe);
    const masterId = this.idOf(master, observations);
    const slots = observations
      .flatMap(({ members }) => members)
      .find((member) => member.id === masterId)!.slots;
    const replica = observations.find(
      ({ myself, linkUp }) =>
        myself.masterId === masterId && (linkUp || !this.isLive(master, observations)),
    );
    if (!replica) {
      throw new Error(
        `RedisCluster: ${HOST}:${master.port} has no live, synced replica to promote`,
      );
    }
    const command = this.isLive(master, observations)
      ? 'CLUSTER FAILOVER'
      : 'CLUSTER FAILOVER FORCE';
    const reply = await ask(replica.server.port, command);
    if (reply !== 'OK') text(reply, command, replica.server.port);

    const promotedId = replica.myself.id;
    await this.waitUntil(options.timeoutMs ?? SETTLE_TIMEOUT_MS, (current) => {
      const problem = unsettled(current);
      if (problem) return problem;
      const promoted = current.find(({ myself }) => myself.id === promotedId);
      if (!promoted?.myself.flags.has('master'))
        return `${HOST}:${replica.server.port} is not a master yet`;
      const owned = slotMap([{ ...promoted.myself, slots }]);
      if (slotMap([promoted.myself]) !== owned) {
        return `${HOST}:${replica.server.port} does not own the slots of ${HOST}:${master.port} yet`;
      }
      return undefined;
    });
    return replica.server;
  }

  /**
   * Waits until every live node (one that answers) reports cluster_state:ok,
   * all agree on roles and on which node serves every slot, every slot's
   * owner is live, and every live replica has synced. Rejects, saying what is
   * still off, after `timeoutMs`.
   */
  settled(options: SettleOptions = {}): Promise<void> {
    return this.waitUntil(options.timeoutMs ?? SETTLE_TIMEOUT_MS, unsettled);
  }

  /** Stops every node by its pid. Idempotent. */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.stop()));
  }

  /** What every node that answers says; killed and paused nodes are left out. */
  private async askLive<T>(read: (server: RedisServer) => Promise<T>): Promise<T[]> {
    const results = await Promise.allSettled(this.nodes.map(read));
    return results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  }

  private isLive(server: RedisServer, observations: MembersView[]): boolean {
    return observations.some((observation) => observation.server === server);
  }

  /** The cluster id of `server`, from its own account or, if it is down, from the others'. */
  private idOf(server: RedisServer, observations: MembersView[]): string {
    const member = observations
      .flatMap(({ server: observer, myself, members }) =>
        observer === server ? [myself] : members,
      )
      .find((candidate) => candidate.port === server.port);
    if (!member) throw new Error(`RedisCluster: no node knows ${HOST}:${server.port}`);
    return member.id;
  }

  /**
   * Polls the nodes until `problem` finds nothing wrong. A bounded poll,
   * because a cluster announces no event when its nodes come to agree.
   */
  private async waitUntil(
    timeoutMs: number,
    problem: (observations: Observation[]) => string | undefined,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = problem(await this.askLive(observe));
      if (!found) return;
      if (Date.now() >= deadline) {
        throw new Error(`RedisCluster did not settle within ${timeoutMs} ms: ${found}`);
      }
      await sleep(POLL_INTERVAL_MS);
    }
  }
}
