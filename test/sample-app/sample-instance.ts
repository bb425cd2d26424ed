import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface SampleInstanceOptions {
  /** REDIS_URL; without it the sample starts a throwaway redis-server of its own. */
  redisUrl?: string;
  /** INSTANCE_ID. */
  instanceId?: string;
  /** REPORT_CRON. */
  reportCron?: string;
  /** PORT; a free one (0) unless given. */
  port?: number;
}

export interface SampleCommandOptions extends SampleInstanceOptions {
  cwd?: string;
  /** Starts the command as the leader of a process group of its own, as a terminal runs it; see {@link SampleInstance.stop}. */
  processGroup?: boolean;
  /** How long it may take to listen, building included. */
  startTimeoutMs?: number;
}

/** What the report job said it did on one tick. */
export interface ReportEvent {
  outcome: 'ran' | 'skipped';
  tick: string;
  instance: string;
  fencingToken?: number;
}

const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;
const LINES_KEPT = 200;
const LISTENING = /Listening on (http:\/\/127\.0\.0\.1:\d+) \(pid (\d+)/;
const THROWAWAY = /started a throwaway redis-server at (redis:\/\/\S+) \(pid (\d+)\)/;
const REPORT = /\[ReportService\] report (ran|skipped) (\{.*\})/;

/**
 * One `node main.js` of the built sample app on a free loopback port,
 * as `npm run sample` runs it, or a command that runs it (`npm run sample`
 * itself). What it logs is read line by line, so a test can wait for what
 * the app says (listening, a report run) instead of sleeping.
 */
export class SampleInstance {
  readonly reports: ReportEvent[] = [];
  /** The last lines of its output, for failure messages. */
  readonly output: string[] = [];
  readonly exited: Promise<number | null>;
  private readonly listeners = new Set<() => void>();
  private url?: string;
  private nodePid?: number;
  private throwawayRedis?: { url: string; pid: number };

  private constructor(
    private readonly child: ChildProcess,
    private readonly processGroup = false,
  ) {
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => this.take(line));
    }
    // 'close': all of its output has been read by then, and every process
    // that inherited its output (the app under `npm run sample`) has exited.
    this.exited = new Promise((resolve) => child.once('close', (code) => resolve(code)));
  }

  /** Starts `main` and resolves once it listens. */
  static start(main: string, options: SampleInstanceOptions): Promise<SampleInstance> {
    return SampleInstance.run(process.execPath, [main], options);
  }

  /** Runs `command` (which starts the sample app) and resolves once the app listens. */
  static async run(
    command: string,
    args: string[],
    options: SampleCommandOptions,
  ): Promise<SampleInstance> {
    const instance = SampleInstance.launch(command, args, options);
    try {
      await instance.until(
        () => instance.url !== undefined,
        options.startTimeoutMs ?? START_TIMEOUT_MS,
        'listening',
      );
    } catch (error) {
      await instance.kill();
      throw error;
    }
    return instance;
  }

  /** Runs `command` (which starts the sample app), without waiting for anything. */
  static launch(command: string, args: string[], options: SampleCommandOptions): SampleInstance {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      NO_COLOR: '1',
      PORT: String(options.port ?? 0),
    };
    delete env.REDIS_URL;
    if (options.redisUrl) env.REDIS_URL = options.redisUrl;
    if (options.instanceId) env.INSTANCE_ID = options.instanceId;
    if (options.reportCron) env.REPORT_CRON = options.reportCron;
    return new SampleInstance(
      spawn(command, args, {
        cwd: options.cwd,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: options.processGroup ?? false,
      }),
      options.processGroup,
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The pid of the node process that serves HTTP: {@link pid} itself, unless a command started it. */
  get appPid(): number {
    return this.nodePid!;
  }

  /** Its base URL, `http://127.0.0.1:<port>`. */
  get baseUrl(): string {
    return this.url!;
  }

  /** The redis-server it started itself when given no REDIS_URL. */
  get throwaway(): { url: string; pid: number } | undefined {
    return this.throwawayRedis;
  }

  /** Resolves once `condition` holds, checked again on every line the app writes; rejects if it exits or `timeoutMs` passes first. */
  until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return SampleInstance.until([this], condition, timeoutMs, what);
  }

  /** As {@link until}, on the lines of several instances. */
  static async until(
    instances: readonly SampleInstance[],
    condition: () => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<void> {
    if (condition()) return;
    let check!: () => void;
    let timer: NodeJS.Timeout | undefined;
    const describe = (why: string) =>
      new Error(
        [`sample app ${why}; their last output:`, ...instances.map((i) => i.lastOutput())].join(
          '\n',
        ),
      );
    try {
      await Promise.race([
        new Promise<void>((resolve) => {
          check = () => condition() && resolve();
          for (const instance of instances) instance.listeners.add(check);
        }),
        ...instances.map((instance) =>
          instance.exited.then((code) => {
            throw describe(`pid ${instance.pid} exited (${code}) before ${what}`);
          }),
        ),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(describe(`not ${what} within ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
      for (const instance of instances) instance.listeners.delete(check);
    }
  }

  /**
   * SIGTERM, as an orchestrator stops it, or another signal (SIGINT: Ctrl-C),
   * to the process it started, or to its whole process group as a terminal
   * sends Ctrl-C (with `processGroup`). Resolves with its exit code once it
   * and every process that shares its output have exited. Idempotent.
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.running) this.signal(signal);
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.exited,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            this.signal('SIGKILL');
            reject(
              new Error(
                `sample app still running ${STOP_TIMEOUT_MS} ms after ${signal}:\n${this.lastOutput()}`,
              ),
            );
          }, STOP_TIMEOUT_MS);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves with its exit code once it has exited by itself (see {@link stop}), or rejects after `timeoutMs`. */
  async exit(timeoutMs: number): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.exited,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new Error(`sample app still running after ${timeoutMs} ms:\n${this.lastOutput()}`),
              ),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILL (to its process group, with `processGroup`), for cleaning up after a failed test; resolves once it has exited. */
  async kill(): Promise<void> {
    if (!this.running) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.signal('SIGKILL');
    await exited;
  }

  private signal(signal: NodeJS.Signals): void {
    if (this.processGroup) process.kill(-this.child.pid!, signal);
    else this.child.kill(signal);
  }

  private get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  private take(line: string): void {
    this.output.push(line);
    this.output.splice(0, this.output.length - LINES_KEPT);
    const listening = LISTENING.exec(line);
    if (listening && !this.url) [this.url, this.nodePid] = [listening[1], Number(listening[2])];
    const throwaway = THROWAWAY.exec(line);
    if (throwaway) this.throwawayRedis = { url: throwaway[1]!, pid: Number(throwaway[2]) };
    const report = REPORT.exec(line);
    if (report) {
      this.reports.push({
        outcome: report[1] as ReportEvent['outcome'],
        ...(JSON.parse(report[2]!) as Omit<ReportEvent, 'outcome'>),
      });
    }
    for (const check of this.listeners) check();
  }

  private lastOutput(): string {
    return [`--- pid ${this.pid}:`, ...this.output.slice(-30)].join('\n');
  }
}
