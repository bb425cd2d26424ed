import { createConnection } from 'node:net';
import calculateSlot from 'cluster-key-slot';
import { Cluster, Redis } from 'ioredis';
import { RedisCluster } from '../tools/redis-cluster.js';
import type { RedisServer } from '../tools/redis-server.js';
import { useRedisCluster } from './support/cluster.js';
import { probePid } from './support/pids.js';

/** Resolves once a TCP connection to `port` opens (and closes it), rejects if none can. */
function connectTo(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', reject);
  });
}

/** Runs `fn` with a plain (non-cluster) client to one node, disconnected afterwards. */
async function withNodeClient<T>(node: RedisServer, fn: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis({ host: node.host, port: node.port, maxRetriesPerRequest: 0 });
  try {
    return await fn(client);
  } finally {
    client.disconnect();
  }
}

/** CLUSTER NODES of one node, one line per member. */
async function clusterNodes(node: RedisServer): Promise<string[]> {
  return withNodeClient(node, async (client) => {
    const listing = (await client.call('CLUSTER', 'NODES')) as string;
    return listing.trim().split('\n');
  });
}

async function role(node: RedisServer): Promise<string> {
  return withNodeClient(node, async (client) => {
    const [name] = (await client.role()) as [string];
    return name;
  });
}

function keysInDistinctSlots(count: number): string[] {
  const keys: string[] = [];
  const slots = new Set<number>();
  for (let i = 0; keys.length < count; i++) {
    const key = `bed:key:${i}`;
    if (slots.has(calculateSlot(key))) continue;
    slots.add(calculateSlot(key));
    keys.push(key);
  }
  return keys;
}

describe('RedisCluster', () => {
  const bed = useRedisCluster();
  let client: Cluster;

  beforeAll(() => {
    client = new Cluster(bed.cluster.startupNodes);
  });
  bed.beforeStop(() => client.quit());

  it('starts 3 masters with 1 replica each, covering all 16384 slots, each node in its own dir', async () => {
    const { nodes } = bed.cluster;
    expect(nodes).toHaveLength(6);
    const roles = await Promise.all(nodes.map(role));
    expect(roles.filter((name) => name === 'master')).toHaveLength(3);
    expect(roles.filter((name) => name === 'slave')).toHaveLength(3);

    const lines = await clusterNodes(nodes[0]!);
    expect(lines).toHaveLength(6);
    let covered = 0;
    for (const line of lines) {
      for (const range of line.split(' ').slice(8)) {
        const [first, last = first] = range.split('-').map(Number);
        covered += last! - first! + 1;
      }
    }
    expect(covered).toBe(16384);

    const dirs = await Promise.all(
      nodes.map((node) =>
        withNodeClient(node, async (one) => ((await one.config('GET', 'dir')) as string[])[1]),
      ),
    );
    expect(new Set(dirs).size).toBe(6);
    expect(bed.cluster.startupNodes).toEqual(
      nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
    );
  });

  it('serves writes and reads in many slots through an ioredis Cluster client', async () => {
    const keys = keysInDistinctSlots(200);
    await Promise.all(keys.map((key) => client.set(key, `value of ${key}`)));
    const values = await Promise.all(keys.map((key) => client.get(key)));
    expect(values).toEqual(keys.map((key) => `value of ${key}`));
    const owners = new Set<RedisServer>();
    for (const key of keys.slice(0, 30)) owners.add(await bed.cluster.masterForKey(key));
    expect(owners.size).toBe(3);
  });

  it('masterForKey names the node that holds the key; the other masters answer MOVED', async () => {
    const key = 'bed:{placed}:key';
    await client.set(key, 'here');
    const owner = await bed.cluster.masterForKey(key);
    expect(await bed.cluster.masterForSlot(calculateSlot(key))).toBe(owner);
    await withNodeClient(owner, async (direct) => expect(await direct.get(key)).toBe('here'));

    const masters = [];
    for (const node of bed.cluster.nodes) if ((await role(node)) === 'master') masters.push(node);
    const others = masters.filter((node) => node !== owner);
    expect(others).toHaveLength(2);
    for (const other of others) {
      await withNodeClient(other, async (direct) => {
        await expect(direct.get(key)).rejects.toThrow(
          new RegExp(`^MOVED ${calculateSlot(key)} 127\\.0\\.0\\.1:${owner.port}$`),
        );
      });
    }
  });

  it('replicasOf names the replica that follows each master', async () => {
    const owner = await bed.cluster.masterForKey('bed:replicas');
    const replicas = await bed.cluster.replicasOf(owner);
    expect(replicas).toHaveLength(1);
    await withNodeClient(replicas[0]!, async (direct) => {
      const [name, host, port] = (await direct.role()) as [string, string, number];
      expect([name, host, port]).toEqual(['slave', '127.0.0.1', owner.port]);
    });
  });

  it('failover promotes the replica, every node agrees, and the Cluster client keeps working', async () => {
    const key = 'bed:{failover}:key';
    await client.set(key, 'before');
    const oldMaster = await bed.cluster.masterForKey(key);
    const [replica] = await bed.cluster.replicasOf(oldMaster);

    const promoted = await bed.cluster.failover(oldMaster);

    expect(promoted).toBe(replica);
    expect(await bed.cluster.masterForKey(key)).toBe(promoted);
    expect(await role(promoted)).toBe('master');
    expect(await role(oldMaster)).toBe('slave');
    expect(await bed.cluster.replicasOf(promoted)).toEqual([oldMaster]);
    for (const node of bed.cluster.nodes) {
      const ownerLine = (await clusterNodes(node)).find((line) =>
        line.includes(`:${promoted.port}@`),
      );
      expect(ownerLine?.split(' ')[2]).toMatch(/(^|,)master($|,)/);
    }

    expect(await client.get(key)).toBe('before');
    await client.set(key, 'after');
    await withNodeClient(promoted, async (direct) => expect(await direct.get(key)).toBe('after'));
  });

  it('failover forces the promotion when the master is paused; once resumed, it rejoins as a replica', async () => {
    const frozen = await bed.cluster.masterForKey('bed:{paused}:key');
    const [replica] = await bed.cluster.replicasOf(frozen);
    frozen.pause();
    let promoted: RedisServer;
    try {
      promoted = await bed.cluster.failover(frozen);
    } finally {
      frozen.resume();
    }
    expect(promoted).toBe(replica);
    await bed.cluster.settled();
    expect(await role(frozen)).toBe('slave');
    expect(await bed.cluster.replicasOf(promoted)).toEqual([frozen]);
    expect(await bed.cluster.masterForKey('bed:{paused}:key')).toBe(promoted);
  });

  it('settled waits for a failover after a master is killed, and the survivors then serve all slots', async () => {
    const key = 'bed:{killed}:key';
    await client.set(key, 'kept by the replica');
    const doomed = await bed.cluster.masterForKey(key);
    const [replica] = await bed.cluster.replicasOf(doomed);
    // WAIT makes sure the replica has the write before its master dies.
    await withNodeClient(doomed, async (direct) => expect(await direct.wait(1, 2000)).toBe(1));

    await doomed.kill();
    await bed.cluster.settled();

    expect(await bed.cluster.masterForKey(key)).toBe(replica);
    expect(await client.get(key)).toBe('kept by the replica');
    const keys = keysInDistinctSlots(50);
    await Promise.all(keys.map((one) => client.set(one, 'after kill')));
    expect(await Promise.all(keys.map((one) => client.get(one)))).toEqual(
      keys.map(() => 'after kill'),
    );
  });
});

describe('RedisCluster.stop', () => {
  it('stops every node by pid, and a second stop is a no-op', async () => {
    const cluster = await RedisCluster.start({ masters: 3, replicasPerMaster: 0 });
    const pids = cluster.nodes.map((node) => node.pid);
    try {
      expect(pids).toHaveLength(3);
      for (const pid of pids) expect(probePid(pid)).toBeUndefined();
    } finally {
      await cluster.stop();
    }
    for (const pid of pids) expect(probePid(pid)).toMatchObject({ code: 'ESRCH' });
    await cluster.stop();
  });

  it('refuses fewer masters than redis-cli can create a cluster from, starting nothing', async () => {
    await expect(RedisCluster.start({ masters: 2 })).rejects.toThrow(
      /masters must be .* at least 3/,
    );
  });

  it('gives a clear error, with the server output, when the nodes refuse to start', async () => {
    const start = RedisCluster.start({
      replicasPerMaster: 0,
      args: ['--no-such-directive', 'yes'],
    });
    await expect(start).rejects.toThrow(/exited before it was ready[\s\S]*no-such-directive/);
  });

  it('stops the nodes it started when redis-cli cannot form a cluster from them', async () => {
    // Later args win, so these nodes start fine but as plain servers.
    const start = RedisCluster.start({ replicasPerMaster: 0, args: ['--cluster-enabled', 'no'] });
    const error = (await start.catch((reason: unknown) => reason)) as Error;
    expect(error.message).toMatch(
      /redis-cli --cluster create[\s\S]*not configured as a cluster node/,
    );
    const ports = [...error.message.matchAll(/127\.0\.0\.1:(\d+)/g)].map((match) =>
      Number(match[1]),
    );
    expect(new Set(ports).size).toBe(3);
    for (const port of new Set(ports))
      await expect(connectTo(port)).rejects.toThrow(/ECONNREFUSED/);
  });
});
