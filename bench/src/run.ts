import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { RedisServer } from '../../tools/redis-server.js';
import { ours, peers, rawIoredis, type Contender } from './contenders.js';
import {
  contended,
  inFlightCycles,
  pingRoundTrip,
  sequentialCycle,
  soak,
  type Sizes,
} from './lock-workloads.js';
import { fmt, median, table } from './stats.js';
import { transactional, watchTransfers } from './tx-workloads.js';

const quick = process.argv.includes('--quick');
const sizes: Sizes = quick
  ? {
      sequentialCycles: 1_000,
      inFlightCycles: 6_400,
      contendedSections: 160,
      soakCycles: 20_000,
      soakSeconds: 20,
      repetitions: 3,
    }
  : {
      sequentialCycles: 5_000,
      inFlightCycles: 32_000,
      contendedSections: 800,
      soakCycles: 1_000_000,
      soakSeconds: 120,
      repetitions: 3,
    };

const out: string[] = [];
const say = (text = '') => {
  console.log(text);
  out.push(text);
};
const checks: { pass: boolean; line: string }[] = [];
const target = (pass: boolean, what: string, measured: string) => {
  checks.push({ pass, line: `${pass ? 'PASS' : 'MISS'} ${what}: ${measured}` });
};

const version = (name: string) =>
  (
    JSON.parse(
      readFileSync(
        new URL(`../../../../node_modules/${name}/package.json`, import.meta.url),
        'utf8',
      ),
    ) as { version: string }
  ).version;

const lockServer = await RedisServer.start();
const dataServer = await RedisServer.start();
try {
  const redisVersion = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim();
  say(`# nestjs-redis-tx benchmark${quick ? ' (quick)' : ''}`);
  say();
  say(
    `- machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB`,
  );
  say(`- node ${process.version}; ${redisVersion}`);
  say(
    `- ioredis ${version('ioredis')}, @sesamecare-oss/redlock ${version('@sesamecare-oss/redlock')}, redis-semaphore ${version('redis-semaphore')}, @anchan828/nest-redlock ${version('@anchan828/nest-redlock')} (redlock ${version('redlock')})`,
  );
  say(
    `- every figure is the median of ${sizes.repetitions} runs; ratios are taken within this run`,
  );
  say();

  const ping = await pingRoundTrip(lockServer.url, 5_000);
  say(`PING round trip: ${fmt(ping)} µs`);
  say();

  // 1 and 2: uncontended
  const contenders: Contender[] = [rawIoredis, ours, ...peers];
  // Contenders take turns within each repetition, after a warm-up of all of
  // them, so that neither JIT warm-up nor a noisy moment favours one.
  const runs = new Map(
    contenders.map((c) => [
      c.name,
      [] as { meanUs: number; p99Us: number; cyclesPerSecond: number }[],
    ]),
  );
  for (const contender of contenders) await sequentialCycle(contender, lockServer.url, sizes);
  for (let repetition = 0; repetition < sizes.repetitions; repetition++) {
    for (const contender of contenders) {
      const { meanUs, p99Us } = await sequentialCycle(contender, lockServer.url, sizes);
      const { cyclesPerSecond } = await inFlightCycles(contender, lockServer.url, sizes);
      runs.get(contender.name)!.push({ meanUs, p99Us, cyclesPerSecond });
    }
  }
  const sequential = new Map(
    contenders.map((c) => {
      const r = runs.get(c.name)!;
      return [
        c.name,
        { meanUs: median(r.map((x) => x.meanUs)), p99Us: median(r.map((x) => x.p99Us)) },
      ];
    }),
  );
  const inFlight = new Map(
    contenders.map((c) => [c.name, median(runs.get(c.name)!.map((x) => x.cyclesPerSecond))]),
  );
  const rawSeq = sequential.get(rawIoredis.name)!.meanUs;
  const rawFlight = inFlight.get(rawIoredis.name)!;
  say('## 1. Uncontended lock + unlock, sequential');
  say();
  say(
    table(
      ['library', 'mean µs', 'p99 µs', 'PING round trips', '× raw'],
      contenders.map((c) => {
        const r = sequential.get(c.name)!;
        return [c.name, r.meanUs, r.p99Us, r.meanUs / ping, (r.meanUs / rawSeq).toFixed(2)];
      }),
    ),
  );
  say();
  say('## 2. Uncontended, 64 in flight on distinct keys');
  say();
  say(
    table(
      ['library', 'cycles/s', '× raw'],
      contenders.map((c) => [
        c.name,
        inFlight.get(c.name)!,
        (inFlight.get(c.name)! / rawFlight).toFixed(2),
      ]),
    ),
  );
  say();
  const oursSeq = sequential.get(ours.name)!.meanUs;
  target(
    oursSeq <= rawSeq * 1.1,
    'uncontended cycle within 1.10× raw ioredis',
    `${(oursSeq / rawSeq).toFixed(2)}×`,
  );
  target(
    inFlight.get(ours.name)! >= rawFlight * 0.9,
    '64-in-flight cycles/s at least 0.9× raw',
    `${(inFlight.get(ours.name)! / rawFlight).toFixed(2)}×`,
  );

  // 3: contended
  const contendedResults = new Map<string, Awaited<ReturnType<typeof contended>>>();
  for (const contender of contenders) {
    contendedResults.set(
      contender.name,
      await contended(contender, lockServer.url, dataServer.url, sizes),
    );
  }
  say(
    `## 3. Contended: 16 workers × ${Math.round(sizes.contendedSections / 16)} critical sections on one key`,
  );
  say();
  say(
    table(
      [
        'library',
        'wall ms',
        'sections/s',
        'p50 wait ms',
        'p99 wait ms',
        'p50 hand-off µs',
        'hand-offs to another worker %',
        'p50 gap to another worker µs',
        'Redis commands / section',
        'counter exact',
      ],
      contenders.map((c) => {
        const r = contendedResults.get(c.name)!;
        return [
          c.name,
          r.wallMs,
          r.sectionsPerSecond,
          r.p50WaitMs,
          r.p99WaitMs,
          r.p50GapUs,
          r.otherWorkerHandoffsPct,
          r.p50OtherWorkerGapUs,
          r.commandsPerSection,
          r.counterExact,
        ];
      }),
    ),
  );
  say();
  const mine = contendedResults.get(ours.name)!;
  const peerResults = peers.map((p) => contendedResults.get(p.name)!);
  const tunedPeers = peers
    .filter((p) => p.name.includes('tuned'))
    .map((p) => contendedResults.get(p.name)!);
  target(mine.counterExact, 'contended counter exact', String(mine.counterExact));
  target(
    mine.p50OtherWorkerGapUs <= 3 * ping,
    'p50 hand-off gap to another worker within 3 PING round trips',
    `${fmt(mine.p50OtherWorkerGapUs)} µs vs ${fmt(3 * ping)} µs`,
  );
  const bestPeerP99 = Math.min(...peerResults.map((r) => r.p99WaitMs));
  target(
    mine.p99WaitMs < bestPeerP99,
    'p99 wait below every peer',
    `${fmt(mine.p99WaitMs)} ms vs best peer ${fmt(bestPeerP99)} ms`,
  );
  const bestTunedCommands = Math.min(...tunedPeers.map((r) => r.commandsPerSection));
  target(
    mine.commandsPerSection <= 0.25 * bestTunedCommands,
    'Redis commands per section at most 0.25× the best tuned peer',
    `${fmt(mine.commandsPerSection)} vs ${fmt(bestTunedCommands)} (${(mine.commandsPerSection / bestTunedCommands).toFixed(2)}×)`,
  );

  // 4 and 5: transactions
  const tx = await transactional(lockServer.url, sizes);
  say('## 4. `@Transactional` method with three commands vs raw `multi().exec()`');
  say();
  say(
    table(
      ['', 'raw tx/s', 'nestjs-redis-tx tx/s', '× raw'],
      [
        [
          'sequential',
          tx.rawSequential,
          tx.oursSequential,
          (tx.oursSequential / tx.rawSequential).toFixed(2),
        ],
        [
          '64 in flight',
          tx.rawInFlight,
          tx.oursInFlight,
          (tx.oursInFlight / tx.rawInFlight).toFixed(2),
        ],
      ],
    ),
  );
  say();
  target(
    tx.oursSequential >= 0.9 * tx.rawSequential && tx.oursInFlight >= 0.9 * tx.rawInFlight,
    '@Transactional at least 0.9× raw multi/exec',
    `sequential ${(tx.oursSequential / tx.rawSequential).toFixed(2)}×, 64 in flight ${(tx.oursInFlight / tx.rawInFlight).toFixed(2)}×`,
  );

  const transfers = await watchTransfers(lockServer.url, sizes);
  say('## 5. WATCH transfers: 16 workers, 10 accounts, 400 transfers');
  say();
  say(
    table(
      ['', 'transfers/s', 'retries', 'total unchanged'],
      [
        [
          'raw WATCH on dedicated connections',
          transfers.rawPerSecond,
          transfers.rawRetries,
          transfers.rawConserved,
        ],
        [
          'nestjs-redis-tx `watch`',
          transfers.oursPerSecond,
          transfers.oursRetries,
          transfers.oursConserved,
        ],
      ],
    ),
  );
  say();
  target(
    transfers.oursConserved && transfers.oursPerSecond >= 0.9 * transfers.rawPerSecond,
    'WATCH transfers at least 0.9× raw, total unchanged',
    `${(transfers.oursPerSecond / transfers.rawPerSecond).toFixed(2)}×, conserved ${transfers.oursConserved}`,
  );

  // 6: soak
  const soaked = await soak(ours, lockServer.url, sizes);
  say(`## 6. Soak: ${soaked.cycles.toLocaleString('en-US')} lock cycles`);
  say();
  say(
    table(
      ['heap growth MB', 'timers', 'sockets', 'Redis connections', 'heap measured after gc'],
      [
        [
          soaked.heapGrowthMb,
          soaked.timerGrowth,
          soaked.socketGrowth,
          soaked.connectionGrowth,
          soaked.measuredGc,
        ],
      ],
    ),
  );
  say();
  target(
    soaked.heapGrowthMb < 5 &&
      soaked.timerGrowth <= 0 &&
      soaked.socketGrowth <= 0 &&
      soaked.connectionGrowth <= 0,
    'soak: heap growth under 5 MB, no growth in timers, sockets or connections',
    `${fmt(soaked.heapGrowthMb, 2)} MB, timers ${soaked.timerGrowth}, sockets ${soaked.socketGrowth}, connections ${soaked.connectionGrowth}`,
  );

  say('## Targets');
  say();
  for (const check of checks) say(`- ${check.line}`);
} finally {
  await Promise.all([lockServer.stop(), dataServer.stop()]);
}

const results = new URL('../../../results/', import.meta.url);
mkdirSync(results, { recursive: true });
writeFileSync(new URL('latest.md', results), `${out.join('\n')}\n`);
