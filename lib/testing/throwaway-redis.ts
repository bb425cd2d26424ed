import { spawn, type ChildProcess } from 'node:child_process';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { runInThisContext } from 'node:vm';
import { messages } from '../redis-tx.messages.js';
import { RedisServerError } from './errors/redis-server.error.js';

const HOST = '127.0.0.1';
const OUTPUT_LINES_KEPT = 20;

/** How to start a throwaway redis-server. */
export interface ThrowawayRedisOptions {
  /** The executable: a name looked up on the PATH, or a path. Default `redis-server`. */
  command?: string;
  /** Extra redis-server arguments, e.g. `['--maxmemory', '10mb']`. */
  args?: string[];
  /** How long to wait for the server to accept connections. Default 10 000 ms. */
  readyTimeoutMs?: number;
  /** How long `stop()` waits after SIGTERM before SIGKILL. Default 5 000 ms. */
  stopGraceMs?: number;
}

// Under Jest every test file gets its own copy of `process`, whose 'exit'
// never fires: the hook that kills leftovers goes on the real one.
const hostProcess = runInThisContext('process') as NodeJS.Process;
/** Pids of servers started here and not yet stopped. */
const running = new Set<number>();

/** Runs synchronously as the process exits: no server outlives it, even when a test failed before closing its app. */
function killLeftovers(): void {
  for (const pid of running) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
}

/**
 * A redis-server of its own on a free loopback port, keeping nothing on
 * disk, for one test file or one application. Signalled only by its own pid,
 * so a Redis someone else runs is never touched. Nothing of it keeps the
 * process alive, and it is killed when the process exits if nobody stopped it.
 */
export class ThrowawayRedis {
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
  readonly host = HOST;

  private constructor(
    readonly port: number,
    readonly pid: number,
    private readonly exited: Promise<void>,
    private readonly stopGraceMs: number,
  ) {
    this.url = `redis://${HOST}:${port}`;
  }

  /** Starts a server and resolves once it answers PING; throws RedisServerError when it cannot. */
  static async start(options: ThrowawayRedisOptions = {}): Promise<ThrowawayRedis> {
    const { command = 'redis-server', readyTimeoutMs = 10_000, stopGraceMs = 5_000 } = options;
    const port = await freePort();
    const args = ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no'];
    const child = spawn(command, [...args, '--dir', tmpdir(), ...(options.args ?? [])], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output = new OutputTail();
    child.stdout.on('data', (chunk: Buffer) => output.add(chunk));
    child.stderr.on('data', (chunk: Buffer) => output.add(chunk));
    const exited = new Promise<void>((resolve) =>
      child.once('close', () => {
        forget(child.pid);
        resolve();
      }),
    );
    try {
      await ready(child, port, output, command, readyTimeoutMs);
    } catch (error) {
      if (child.pid !== undefined) child.kill('SIGKILL');
      await exited;
      throw error;
    }
    const pid = child.pid!;
    remember(pid);
    // Neither the process nor its pipes (still drained) keep the event loop alive.
    child.unref();
    for (const stream of [child.stdout, child.stderr]) unrefStream(stream);
    return new ThrowawayRedis(port, pid, exited, stopGraceMs);
  }

  /** Whether the server's process is still running. */
  get running(): boolean {
    return running.has(this.pid);
  }

  /** Stops the server by its pid: SIGTERM, then SIGKILL after the grace period. Resolves once it is gone; idempotent. */
  async stop(): Promise<void> {
    if (!this.running) return this.exited;
    signal(this.pid, 'SIGTERM');
    // A paused server would keep the SIGTERM pending forever.
    signal(this.pid, 'SIGCONT');
    const escalate = setTimeout(() => signal(this.pid, 'SIGKILL'), this.stopGraceMs);
    try {
      await this.exited;
    } finally {
      clearTimeout(escalate);
    }
  }
}

/** Resolves once the server prints that it accepts connections and answers PING. */
async function ready(
  child: ChildProcess,
  port: number,
  output: OutputTail,
  command: string,
  timeoutMs: number,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'ENOENT'
          ? new RedisServerError(messages.redisServerNotFound(command), { cause: error })
          : error,
      ),
    );
    child.once('close', (code) =>
      reject(
        new RedisServerError(
          messages.redisServerNotReady(
            command,
            `exited (${code}) before it was ready`,
            output.text,
          ),
        ),
      ),
    );
    timer = setTimeout(
      () =>
        reject(
          new RedisServerError(
            messages.redisServerNotReady(
              command,
              `was not ready after ${timeoutMs} ms`,
              output.text,
            ),
          ),
        ),
      timeoutMs,
    );
  });
  try {
    await Promise.race([output.sawReady.then(() => ping(port)), failed]);
  } finally {
    clearTimeout(timer);
  }
}

/** The last lines a server printed, for error messages, and whether it said it is ready. */
class OutputTail {
  private readonly lines: string[] = [];
  private partial = '';
  private readyNow!: () => void;
  readonly sawReady = new Promise<void>((resolve) => (this.readyNow = resolve));

  add(chunk: Buffer): void {
    const lines = (this.partial + chunk.toString()).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      if (/Ready to accept connections/.test(line)) this.readyNow();
      this.lines.push(line);
    }
    this.lines.splice(0, this.lines.length - OUTPUT_LINES_KEPT);
  }

  get text(): string {
    return [...this.lines, this.partial].join('\n').trim();
  }
}

/** Asks the server for PONG on a raw connection. */
function ping(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: HOST, port });
    let received = '';
    socket.on('error', reject);
    socket.on('data', (chunk) => {
      received += chunk.toString();
      if (!received.includes('\r\n')) return;
      socket.destroy();
      if (received.startsWith('+PONG')) resolve();
      else reject(new RedisServerError(`PING on ${HOST}:${port} answered ${received.trim()}`));
    });
    socket.write('PING\r\n');
  });
}

/** A loopback port that nothing listens on right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, HOST, () => {
      const { port } = probe.address() as AddressInfo;
      probe.close((error) => (error ? reject(error) : resolve(port)));
    });
  });
}

function remember(pid: number): void {
  if (running.size === 0) hostProcess.on('exit', killLeftovers);
  running.add(pid);
}

function forget(pid: number | undefined): void {
  if (pid === undefined || !running.delete(pid)) return;
  if (running.size === 0) hostProcess.off('exit', killLeftovers);
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Gone already.
  }
}

function unrefStream(stream: unknown): void {
  (stream as { unref?: () => void }).unref?.();
}
