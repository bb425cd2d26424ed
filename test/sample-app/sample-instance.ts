import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface SampleInstanceOptions {
  /** REDIS_URL; without it the sample starts a throwaway redis-server of its own. */
  redisUrl?: string;
  /** INSTANCE_ID. */
  instanceId?: string;
  /** REPORT_CRON. */
  reportCron?: string;
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
const LISTENING = /Listening on (http:\/\/127\.0\.0\.1:\d+)/;
const THROWAWAY = /started a throwaway redis-server at (redis:\/\/\S+) \(pid (\d+)\)/;
const REPORT = /\[ReportService\] report (ran|skipped) (\{.*\})/;

/**
 * One `node main.js` of the built sample app on a free loopback port,
 * as `npm run sample` runs it. What it logs is read line by line, so a test
 * can wait for what the app says (listening, a report run) instead of
 * sleeping.
 */
export class SampleInstance {
  readonly reports: ReportEvent[] = [];
  /** The last lines of its output, for failure messages. */
  readonly output: string[] = [];
  readonly exited: Promise<number | null>;
  private readonly listeners = new Set<() => void>();
  private url?: string;
  private throwawayRedis?: { url: string; pid: number };

  private constructor(private readonly child: ChildProcess) {
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => this.take(line));
    }
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null) resolve(child.exitCode);
      // 'close': all of its output has been read by then.
      child.once('close', (code) => resolve(code));
    });
  }

  /** Starts `main` and resolves once it listens. */
  static async start(main: string, options: SampleInstanceOptions): Promise<SampleInstance> {
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', PORT: '0' };
    delete env.REDIS_URL;
    if (options.redisUrl) env.REDIS_URL = options.redisUrl;
    if (options.instanceId) env.INSTANCE_ID = options.instanceId;
    if (options.reportCron) env.REPORT_CRON = options.reportCron;
    const instance = new SampleInstance(
      spawn(process.execPath, [main], { env, stdio: ['ignore', 'pipe', 'pipe'] }),
    );
    try {
      await instance.until(() => instance.url !== undefined, START_TIMEOUT_MS, 'listening');
    } catch (error) {
      await instance.kill();
      throw error;
    }
    return instance;
  }

  get pid(): number {
    return this.child.pid!;
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

  /** SIGTERM, as Ctrl-C or an orchestrator stops it; resolves with its exit code. Idempotent. */
  async stop(): Promise<number | null> {
    if (this.running) this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.exited,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            this.child.kill('SIGKILL');
            reject(
              new Error(
                `sample app still running ${STOP_TIMEOUT_MS} ms after SIGTERM:\n${this.lastOutput()}`,
              ),
            );
          }, STOP_TIMEOUT_MS);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILL, for cleaning up after a failed test. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }

  private get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  private take(line: string): void {
    this.output.push(line);
    this.output.splice(0, this.output.length - LINES_KEPT);
    this.url ??= LISTENING.exec(line)?.[1];
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
