import { runInThisContext } from 'node:vm';
import { writeFileSync } from 'node:fs';
it('x', () => {
  const real = runInThisContext('process') as NodeJS.Process;
  console.log(
    real === process,
    typeof real.on,
    real.listenerCount('exit'),
    process.listenerCount('exit'),
    real.pid === process.pid,
  );
  real.on('exit', () => writeFileSync('/tmp/exit-fired', 'yes'));
  process.on('exit', () => writeFileSync('/tmp/exit-fired-sandbox', 'yes'));
});
