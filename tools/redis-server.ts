// Throwaway redis-server processes on free loopback ports, for the tests, the
// sample app and the benchmarks. Only processes started here are ever
// signalled, through their own child handle, so a Redis someone else runs
// (say the system one on 6379) is never touched.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runInThisContext } from 'node:vm';

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 5_000;
const REPLY_TIMEOUT_MS = 2_000;
const OUTPUT_LINES_KEPT = 20;

// Jest gives every test file its own copy of `process`, whose 'exit' never
// fires; the exit hook has to go on the real one, which the main context holds.
const hostProcess = runInThisContext('process') as NodeJS.Process;

/** Children not yet reaped, with the temp dir each one owns. */
const live = new Map<ChildProcess, string>();
/** Dirs of crashed servers, kept for a restart from their files (see RedisServer.crash). */
const kept = new Set<string>();

// Runs synchronously as the host exits, so a crashed run leaves no server behind.
function killLeftovers(): void {
  for (const [child, dir] of live) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A loopback port that nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, HOST, () => {
      const { port } = probe.address() as AddressInfo;
      probe.close((error) => (error ? reject(error) : resolve(port)));
    });
  });
}

/** A parsed RESP2 reply; an error reply is an Error value, not a rejection. */
export type Reply = string | number | null | Error | Reply[];

/** Parses one RESP2 reply starting at `at`: the value and where it ends, or undefined while incomplete. */
function parseReply(text: string, at: number): [Reply, number] | undefined {
  const eol = text.indexOf('\r\n', at);
  if (eol < 0) return undefined;
  const line = text.slice(at + 1, eol);
  const next = eol + 2;
  switch (text[at]) {
    case '+':
      return [line, next];
    case '-':
      return [new Error(line), next];
    case ':':
      return [Number(line), next];
    case '$': {
      const length = Number(line);
      if (length < 0) return [null, next];
      const end = next + length;
      return text.length >= end + 2 ? [text.slice(next, end), end + 2] : undefined;
    }
    case '*': {
      const items: Reply[] = [];
      let position = next;
      for (let i = 0; i < Number(line); i++) {
        const item = parseReply(text, position);
        if (!item) return undefined;
        [items[i], position] = item;
      }
      return [Number(line) < 0 ? null : items, position];
    }
    default:
      throw new Error(`Not a RESP reply: ${JSON.stringify(text)}`);
  }
}

/**
 * Sends one inline command on a fresh raw connection and resolves with the
 * parsed reply. A raw socket rather than a client library, so that the test
 * bed does not depend on the code under test behaving.
 */
export function ask(port: number, command: string, timeoutMs = REPLY_TIMEOUT_MS): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: HOST, port });
    let received = '';
    socket.setTimeout(timeoutMs, () =>
      socket.destroy(new Error(`${HOST}:${port} did not answer ${command}`)),
    );
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`${HOST}:${port} hung up on ${command}`)));
    socket.on('data', (chunk) => {
      // latin1 keeps one character per byte, so bulk lengths count right.
      received += chunk.toString('latin1');
      const reply = parseReply(received, 0);
      if (reply) {
        resolve(reply[0]);
        socket.destroy();
      }
    });
    socket.write(`${command}\r\n`);
  });
}

async function ping(port: number): Promise<void> {
  const reply = await ask(port, 'PING');
  if (reply !== 'PONG') throw new Error(`PING on ${HOST}:${port} answered ${String(reply)}`);
}

interface Launch {
  args: string[];
  /** Owned by the process: removed once it has exited. */
  dir: string;
  /** A line the process prints when it starts listening, awaited before `ready`. */
  readyLine?: RegExp;
  /** Asks the process whether it is ready; throws if not (or not yet). */
  ready: (signal: AbortSignal) => Promise<void>;
  /** In a process group of its own (see RedisServerOptions.ownProcessGroup). */
  ownProcessGroup?: boolean;
}

/** One redis-server process, the part RedisServer and RedisSentinel share. */
class RedisProcess {
  private constructor(
    private readonly child: ChildProcess,
    readonly pid: number,
    private readonly exited: Promise<void>,
    readonly dir: string,
  ) {}

  private get running(): boolean {
    return live.has(this.child);
  }

  static async launch({
    args,
    dir,
    readyLine,
    ready,
    ownProcessGroup = false,
  }: Launch): Promise<RedisProcess> {
    const child = spawn('redis-server', args, { stdio: 'pipe', detached: ownProcessGroup });
    if (live.size === 0) hostProcess.on('exit', killLeftovers);
    live.set(child, dir);
    // 'close' rather than 'exit': by then all of its output has been read.
    const exited = new Promise<void>((resolve) =>
      child.once('close', () => {
        live.delete(child);
        if (live.size === 0) hostProcess.off('exit', killLeftovers);
        if (!kept.has(dir)) rmSync(dir, { recursive: true, force: true });
        resolve();
      }),
    );

    const lastLines: string[] = [];
    let partialLine = '';
    let sawReadyLine!: () => void;
    const readyLineSeen = new Promise<void>((resolve) => (sawReadyLine = resolve));
    const collect = (chunk: Buffer): void => {
      const lines = (partialLine + chunk.toString()).split('\n');
      partialLine = lines.pop() ?? '';
      for (const line of lines) {
        if (readyLine?.test(line)) sawReadyLine();
        lastLines.push(line);
      }
      lastLines.splice(0, lastLines.length - OUTPUT_LINES_KEPT);
    };
    // Always drained: a full pipe would block the server.
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);

    const command = `redis-server ${args.join(' ')}`;
    const output = (): string => [...lastLines, partialLine].join('\n').trim();
    let timer: NodeJS.Timeout | undefined;
    const failed = new Promise<never>((_, reject) => {
      child.once('error', reject);
      void exited.then(() =>
        reject(new Error(`${command} exited before it was ready:\n${output()}`)),
      );
      timer = setTimeout(
        () => reject(new Error(`${command} not ready after ${READY_TIMEOUT_MS} ms:\n${output()}`)),
        READY_TIMEOUT_MS,
      );
    });
    const abort = new AbortController();
    try {
      await Promise.race([
        (readyLine ? readyLineSeen : Promise.resolve()).then(() => ready(abort.signal)),
        failed,
      ]);
    } catch (error) {
      abort.abort();
      child.kill('SIGKILL');
      await exited;
      throw error;
    } finally {
      clearTimeout(timer);
    }
    return new RedisProcess(child, child.pid as number, exited, dir);
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    // A paused server would keep the SIGTERM pending forever.
    this.child.kill('SIGCONT');
    const escalate = setTimeout(() => this.child.kill('SIGKILL'), STOP_GRACE_MS);
    await this.exited;
    clearTimeout(escalate);
  }

  async kill(): Promise<void> {
    this.signal('SIGKILL');
    await this.exited;
  }
}

export interface RedisServerOptions {
  /** Extra redis-server arguments, e.g. `['--enable-debug-command', 'yes']`. */
  args?: string[];
  /** Defaults to a free port. */
  port?: number;
  /**
   * Starts it in a process group of its own, so that a signal to the
   * caller's group (Ctrl-C in a terminal) reaches the caller only, which
   * then stops the server in its own time, after its clients have closed.
   * It is still stopped, by pid, when the caller's process exits.
   */
  ownProcessGroup?: boolean;
}

function launchServer(
  port: number,
  extraArgs: string[],
  ownProcessGroup: boolean,
  // A fresh dir each time, so a restart never finds the previous run's files.
  dir = mkdtempSync(join(tmpdir(), 'redis-tx-')),
): Promise<RedisProcess> {
  const args = ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no'];
  return RedisProcess.launch({
    args: [...args, '--dir', dir, ...extraArgs],
    dir,
    readyLine: /Ready to accept connections/,
    ready: () => ping(port),
    ownProcessGroup,
  });
}

/** A redis-server on a loopback port that keeps nothing on disk. */
export class RedisServer {
  readonly host = HOST;
  readonly url: string;

  private constructor(
    readonly port: number,
    private readonly args: string[],
    private readonly ownProcessGroup: boolean,
    private proc: RedisProcess,
  ) {
    this.url = `redis://${HOST}:${port}`;
  }

  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const port = options.port ?? (await freePort());
    const args = options.args ?? [];
    const ownProcessGroup = options.ownProcessGroup ?? false;
    return new RedisServer(
      port,
      args,
      ownProcessGroup,
      await launchServer(port, args, ownProcessGroup),
    );
  }

  get pid(): number {
    return this.proc.pid;
  }

  /** Resolves once the server answers PING, rejects otherwise. */
  ping(): Promise<void> {
    return ping(this.port);
  }

  /** Freezes the server (SIGSTOP): connections stay open but nothing is answered. */
  pause(): void {
    this.proc.signal('SIGSTOP');
  }

  resume(): void {
    this.proc.signal('SIGCONT');
  }

  /** Crashes the server (SIGKILL): its data is gone and the port is free again. */
  kill(): Promise<void> {
    return this.proc.kill();
  }

  /**
   * Crashes the server (SIGKILL) but keeps its files, so that
   * restartFromFiles() brings it back as it was: a Cluster node keeps its
   * identity and slots (nodes.conf), though not its data (nothing is saved).
   */
  async crash(): Promise<void> {
    kept.add(this.proc.dir);
    await this.proc.kill();
  }

  /** Starts a crashed server again on the same port, from the files it left. */
  async restartFromFiles(): Promise<void> {
    const { dir } = this.proc;
    if (!kept.delete(dir)) throw new Error('RedisServer: restartFromFiles() follows crash()');
    this.proc = await launchServer(this.port, this.args, this.ownProcessGroup, dir);
  }

  /** Shuts down with SIGTERM, or SIGKILL if that takes over 5 s. Idempotent. */
  async stop(): Promise<void> {
    await this.proc.stop();
    // A crashed server never restarted: its kept files go now.
    if (kept.delete(this.proc.dir)) rmSync(this.proc.dir, { recursive: true, force: true });
  }

  /** Starts an empty server again on the same port and with the same args, stopping the old one first. */
  async restart(): Promise<void> {
    await this.proc.stop();
    this.proc = await launchServer(this.port, this.args, this.ownProcessGroup);
  }
}

export interface RedisSentinelOptions {
  /** Defaults to 'mymaster'. */
  masterName?: string;
  /** Sentinels that must agree the master is down before a failover. Default 1. */
  quorum?: number;
  /** How long the master may stay silent before it counts as down. Default 1 000 ms. */
  downAfterMs?: number;
  /** Sentinel's failover-timeout. Default 5 000 ms. */
  failoverTimeoutMs?: number;
}

/** A Sentinel monitoring one master, for clients that connect through `sentinels`. */
export class RedisSentinel {
  readonly host = HOST;

  private constructor(
    readonly port: number,
    readonly masterName: string,
    private readonly proc: RedisProcess,
  ) {}

  static async start(
    master: RedisServer,
    options: RedisSentinelOptions = {},
  ): Promise<RedisSentinel> {
    const masterName = options.masterName ?? 'mymaster';
    const { quorum = 1, downAfterMs = 1000, failoverTimeoutMs = 5000 } = options;
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'redis-tx-sentinel-'));
    // Sentinel insists on a config file it can rewrite, so the setup goes there.
    const config = join(dir, 'sentinel.conf');
    const settings = [
      `port ${port}`,
      `bind ${HOST}`,
      `dir ${dir}`,
      `sentinel monitor ${masterName} ${master.host} ${master.port} ${quorum}`,
      `sentinel down-after-milliseconds ${masterName} ${downAfterMs}`,
      `sentinel failover-timeout ${masterName} ${failoverTimeoutMs}`,
    ];
    writeFileSync(config, settings.join('\n') + '\n');
    const proc = await RedisProcess.launch({
      args: [config, '--sentinel'],
      dir,
      // Sentinel prints no "ready" line of its own, so keep asking until it
      // listens and names the master (connection refused until then).
      ready: async (signal) => {
        for (;;) {
          try {
            await ping(port);
            const address = await ask(port, `SENTINEL get-master-addr-by-name ${masterName}`);
            const [host, masterPort] = Array.isArray(address) ? address : [];
            if (host === master.host && masterPort === String(master.port)) return;
          } catch {
            // Not listening yet.
          }
          await sleep(20, undefined, { signal });
        }
      },
    });
    return new RedisSentinel(port, masterName, proc);
  }

  get pid(): number {
    return this.proc.pid;
  }

  stop(): Promise<void> {
    return this.proc.stop();
  }
}
