import { execFileSync } from 'node:child_process';

/**
 * Imports `entry` in a fresh Node process whose module loader refuses
 * `refused` (and its subpaths), as in an app that has not installed that
 * optional peer. Returns 'loaded', or the message of the import's error,
 * which is `${refused} was loaded` when `entry` needed it.
 */
export function importWithout(entry: string, refused: string): string {
  const hooks = `export async function resolve(specifier, context, next) {
      if (specifier === ${JSON.stringify(refused)} || specifier.startsWith(${JSON.stringify(`${refused}/`)}))
        throw new Error(${JSON.stringify(`${refused} was loaded`)});
      return next(specifier, context);
    }`;
  const register = `import { register } from 'node:module';
      register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hooks)}`)});`;
  const script = `try { await import(${JSON.stringify(entry)}); console.log('loaded'); }
      catch (error) { console.log(error.message); }`;
  return execFileSync(
    process.execPath,
    [
      '--import',
      `data:text/javascript,${encodeURIComponent(register)}`,
      '--input-type=module',
      '-e',
      script,
    ],
    { encoding: 'utf8' },
  ).trim();
}
