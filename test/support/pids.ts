/** What `process.kill(pid, 0)` throws (ESRCH once the process is gone), or undefined while the pid exists. */
export function probePid(pid: number): unknown {
  try {
    process.kill(pid, 0);
    return undefined;
  } catch (error) {
    return error;
  }
}
