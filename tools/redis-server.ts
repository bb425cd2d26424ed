// Starts and stops real redis-server processes on free loopback ports, for the
// tests, the sample app and the benchmarks. It only ever signals processes it
// started itself, by pid, and never touches a Redis it did not start.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const host = '127.0.0.1';
const readyTimeoutMs = 10_000;
const live = new Set<ChildProcess>();

// A crashed run must not leave servers behind.
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** A loopback port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.unref();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const address = probe.address();
      probe.close(() =>
        typeof address === 'object' && address
          ? resolve(address.port)
          : reject(new Error('no port')),
      );
    });
  });
}

/** Sends one inline command over a raw socket and resolves with the first reply line. */
export function ask(port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host, port });
    let reply = '';
    socket.setTimeout(2_000, () => socket.destroy(new Error(`no reply to ${command} on ${port}`)));
    socket.once('error', reject);
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) {
        socket.end();
        resolve(reply);
      }
    });
    socket.write(`${command}\r\n`);
  });
}

interface Launch {
  args: string[];
  /** Resolves once the server has said it is ready and answered. */
  ready: (port: number) => Promise<void>;
  readyLine: RegExp;
}

/** One redis-server process: spawn, wait for readiness by asking it, stop by pid. */
class ServerProcess {
  private child?: ChildProcess;
  private exited?: Promise<void>;

  constructor(
    readonly port: number,
    private readonly launch: Launch,
  ) {}

  get pid(): number {
    const pid = this.child?.pid;
    if (pid === undefined) throw new Error(`redis-server on ${this.port} is not running`);
    return pid;
  }

  async start(): Promise<void> {
    const child = spawn('redis-server', this.launch.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    live.add(child);
    this.exited = new Promise((resolve) =>
      child.once('exit', () => {
        live.delete(child);
        resolve();
      }),
    );
    const output: string[] = [];
    let announced!: () => void;
    const readyLineSeen = new Promise<void>((resolve) => (announced = resolve));
    const collect = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        output.push(line);
        if (this.launch.readyLine.test(line)) announced();
      }
      output.splice(0, Math.max(0, output.length - 20));
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    const died = this.exited.then(() => {
      throw new Error(
        `redis-server on port ${this.port} exited before it was ready:\n${output.join('\n')}`,
      );
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(`redis-server on port ${this.port} not ready after ${readyTimeoutMs} ms`),
          ),
        readyTimeoutMs,
      );
    });
    try {
      await Promise.race([readyLineSeen.then(() => this.launch.ready(this.port)), died, timedOut]);
    } catch (error) {
      await this.kill();
      throw error;
    } finally {
      clearTimeout(timer);
      died.catch(() => undefined);
    }
  }

  signal(name: NodeJS.Signals): void {
    this.child?.kill(name);
  }

  async stop(): Promise<void> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGCONT');
    this.child.kill('SIGTERM');
    const escalate = setTimeout(() => this.child?.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(escalate);
  }

  async kill(): Promise<void> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

export interface RedisServerOptions {
  /** Extra redis-server arguments, e.g. `['--enable-debug-command', 'yes']`. */
  args?: string[];
  port?: number;
}

/** A throwaway redis-server on a free loopback port that keeps nothing on disk. */
export class RedisServer {
  readonly host = host;
  private constructor(
    private readonly process: ServerProcess,
    private readonly dir: string,
  ) {}

  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const port = options.port ?? (await freePort());
    const dir = mkdtempSync(join(tmpdir(), 'redis-tx-'));
    const args = ['--port', String(port), '--bind', host, '--save', '', '--appendonly', 'no'];
    const launch: Launch = {
      args: [...args, '--dir', dir, ...(options.args ?? [])],
      readyLine: /Ready to accept connections/,
      ready: async (p) => {
        const reply = await ask(p, 'PING');
        if (!reply.startsWith('+PONG')) throw new Error(`PING on ${p} answered ${reply.trim()}`);
      },
    };
    const server = new RedisServer(new ServerProcess(port, launch), dir);
    await server.process.start();
    return server;
  }

  get port(): number {
    return this.process.port;
  }
  get url(): string {
    return `redis://${host}:${this.port}`;
  }
  get pid(): number {
    return this.process.pid;
  }

  async ping(): Promise<void> {
    const reply = await ask(this.port, 'PING');
    if (!reply.startsWith('+PONG')) throw new Error(`PING answered ${reply.trim()}`);
  }

  /** Freezes the process (SIGSTOP): connections stay open, nothing is answered. */
  pause(): void {
    this.process.signal('SIGSTOP');
  }
  resume(): void {
    this.process.signal('SIGCONT');
  }

  /** Crashes the server (SIGKILL); data is gone, the port is free. */
  kill(): Promise<void> {
    return this.process.kill();
  }

  /** Starts it again on the same port, empty, after kill() or stop(). */
  async restart(): Promise<void> {
    await this.process.kill();
    await this.process.start();
  }

  async stop(): Promise<void> {
    await this.process.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A Sentinel watching one master, so clients can connect through `sentinels`. */
export class RedisSentinel {
  readonly host = host;
  private constructor(
    private readonly process: ServerProcess,
    private readonly dir: string,
    readonly masterName: string,
  ) {}

  static async start(
    master: RedisServer,
    options: { masterName?: string } = {},
  ): Promise<RedisSentinel> {
    const masterName = options.masterName ?? 'mymaster';
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'redis-tx-sentinel-'));
    const config = join(dir, 'sentinel.conf');
    writeFileSync(
      config,
      [
        `port ${port}`,
        `bind ${host}`,
        `dir ${dir}`,
        `sentinel monitor ${masterName} ${master.host} ${master.port} 1`,
        `sentinel down-after-milliseconds ${masterName} 1000`,
        `sentinel failover-timeout ${masterName} 5000`,
      ].join('\n') + '\n',
    );
    const launch: Launch = {
      args: [config, '--sentinel'],
      readyLine: /Sentinel ID is|monitor master/,
      ready: async (p) => {
        // A Sentinel answers PING before it knows its master: ask until it names it.
        for (;;) {
          const reply = await ask(p, `SENTINEL get-master-addr-by-name ${masterName}`);
          if (reply.startsWith('*2')) return;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      },
    };
    const sentinel = new RedisSentinel(new ServerProcess(port, launch), dir, masterName);
    await sentinel.process.start();
    return sentinel;
  }

  get port(): number {
    return this.process.port;
  }
  get pid(): number {
    return this.process.pid;
  }

  async stop(): Promise<void> {
    await this.process.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
