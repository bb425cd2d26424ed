// Runs `npm test` several times in a row beside CPU-bound processes, to show
// that the suite does not depend on having the machine to itself.
//
//   node tools/test-under-load.mjs [--hogs N] [--runs K] [-- extra args for npm test]
//
// N busy loops (default 1) run for the whole time and are stopped by pid
// however the runs end (failure, Ctrl-C, SIGTERM); K runs (default 3) go one
// after another, each to the end. Prints one summary line and exits with 0
// only if every run passed.
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';

const HOG = 'for(;;){}';

function parse(argv) {
  const options = { hogs: 1, runs: 3, extra: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      options.extra = argv.slice(i + 1);
      break;
    }
    const value = Number(argv[i + 1]);
    if ((arg === '--hogs' || arg === '--runs') && Number.isSafeInteger(value) && value >= 0) {
      options[arg.slice(2)] = value;
      i++;
    } else {
      throw new Error(
        `unknown or invalid argument ${arg}; usage: node tools/test-under-load.mjs [--hogs N] [--runs K] [-- args]`,
      );
    }
  }
  return options;
}

const { hogs: hogCount, runs, extra } = parse(process.argv.slice(2));
const hogs = Array.from({ length: hogCount }, () =>
  spawn(process.execPath, ['-e', HOG], { stdio: 'ignore' }),
);
let current;

function stopHogs() {
  for (const hog of hogs) if (hog.exitCode === null && hog.signalCode === null) hog.kill('SIGKILL');
}
// Whatever ends this process, the hogs go with it.
process.on('exit', stopHogs);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    current?.kill(signal);
    stopHogs();
    process.exit(130);
  });
}

function npmTest() {
  return new Promise((resolve) => {
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    current = spawn(npm, ['test', ...(extra.length ? ['--', ...extra] : [])], {
      stdio: 'inherit',
    });
    current.once('error', () => resolve(1));
    current.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

const results = [];
const started = performance.now();
try {
  for (let run = 1; run <= runs; run++) {
    console.log(`\n=== npm test, run ${run} of ${runs}, beside ${hogCount} CPU hog(s)`);
    const runStarted = performance.now();
    const code = await npmTest();
    results.push({ code, seconds: Math.round((performance.now() - runStarted) / 1000) });
  }
} finally {
  stopHogs();
}

const passed = results.filter((result) => result.code === 0).length;
const each = results
  .map((r, i) => `run ${i + 1} ${r.code === 0 ? 'passed' : `failed (${r.code})`} in ${r.seconds} s`)
  .join(', ');
const minutes = ((performance.now() - started) / 60_000).toFixed(1);
console.log(
  `\ntest-under-load: ${passed} of ${runs} runs passed beside ${hogCount} CPU hog(s) in ${minutes} min: ${each}`,
);
process.exitCode = passed === runs ? 0 : 1;
