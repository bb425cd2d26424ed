import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

/**
 * A forked Node process that speaks in lines: the test waits for what it
 * says (`ready`, `held 12`, `result {…}`) and tells it what to do next.
 * Its stderr is passed through, so a crash shows in the test output.
 */
export class ForkedWorker {
  private readonly said: string[] = [];
  /** performance.now() when it last said anything. */
  private lastHeard = performance.now();
  private readonly waiting: { prefix: string; resolve: (line: string) => void }[] = [];
  readonly exited: Promise<number | null>;

  private constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      this.lastHeard = performance.now();
      const index = this.waiting.findIndex(({ prefix }) => line.startsWith(prefix));
      if (index < 0) this.said.push(line);
      else this.waiting.splice(index, 1)[0]!.resolve(line);
    });
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null) resolve(child.exitCode);
      child.once('exit', (code) => resolve(code));
    });
  }

  static start(script: string, args: string[]): ForkedWorker {
    const child = spawn(process.execPath, [script, ...args], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    return new ForkedWorker(child);
  }

  get pid(): number {
    return this.child.pid!;
  }

  /**
   * The next line starting with `prefix` (without it); rejects if the
   * process exits first, or says nothing at all for `silentMs`. A worker
   * with long work to do says how it is getting on (any line), so that a
   * slow machine is told apart from a stuck worker by what it says, not by
   * how long the whole takes.
   */
  async line(prefix: string, silentMs = 30_000): Promise<string> {
    const earlier = this.said.findIndex((line) => line.startsWith(prefix));
    if (earlier >= 0) return this.said.splice(earlier, 1)[0]!.slice(prefix.length).trim();
    let entry: { prefix: string; resolve: (line: string) => void } | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      const line = await Promise.race([
        new Promise<string>((resolve) => {
          entry = { prefix, resolve };
          this.waiting.push(entry);
        }),
        this.exited.then((code) => {
          throw new Error(`worker ${this.pid} exited (${code}) before saying "${prefix}"`);
        }),
        new Promise<never>((_, reject) => {
          // Silence counts from the later of its last line and this wait's start.
          const waitingSince = performance.now();
          const check = () => {
            const silent = performance.now() - Math.max(this.lastHeard, waitingSince);
            if (silent < silentMs) timer = setTimeout(check, silentMs - silent);
            else
              reject(
                new Error(
                  `worker ${this.pid} said nothing for ${Math.round(silent)} ms, waiting for "${prefix}"`,
                ),
              );
          };
          timer = setTimeout(check, silentMs);
        }),
      ]);
      return line.slice(prefix.length).trim();
    } finally {
      clearTimeout(timer);
      const index = entry ? this.waiting.indexOf(entry) : -1;
      if (index >= 0) this.waiting.splice(index, 1);
    }
  }

  /** The JSON the worker ends with. */
  async result<T>(silentMs?: number): Promise<T> {
    return JSON.parse(await this.line('result ', silentMs)) as T;
  }

  tell(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  /** Exit code once it has exited by itself. */
  async exitCode(): Promise<number | null> {
    return this.exited;
  }

  /** SIGKILLs the process if it is still running, and waits for it to go (a stopped one is continued so it can die). */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGKILL');
    await once(this.child, 'exit').catch(() => undefined);
  }
}
