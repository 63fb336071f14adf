/**
 * CPU time of processes from Linux's /proc (`utime`, `stime`, `cutime`, `cstime` of
 * /proc/<pid>/stat, in clock ticks), read synchronously so a snapshot can be taken at an exact
 * moment (inside the fake LLM's request handler).
 */
import { readFileSync, readdirSync } from 'node:fs';

// USER_HZ: 100 on every Linux architecture the runner targets (`getconf CLK_TCK`).
const CLOCK_TICKS_PER_SECOND = 100;

/** The fields of /proc/<pid>/stat the bench reads. */
export interface ProcessStat {
  pid: number;
  ppid: number;
  /** User plus system CPU of the process itself, in seconds. */
  ownSeconds: number;
  /** User plus system CPU of its children that exited and were waited for, in seconds. */
  reapedChildrenSeconds: number;
}

/** The stat of `pid`, undefined when there is no such process (or no /proc). */
export function processOf(pid: number): ProcessStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may contain spaces and parentheses: fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so field n is fields[n - 3].
  const tick = (field: number) => Number(fields[field - 3]) / CLOCK_TICKS_PER_SECOND;
  return { pid, ppid: Number(fields[1]), ownSeconds: tick(14) + tick(15), reapedChildrenSeconds: tick(16) + tick(17) };
}

/** CPU seconds `pid` has used so far (undefined when it is gone). */
export function cpuSeconds(pid: number): number | undefined {
  return processOf(pid)?.ownSeconds;
}

/**
 * CPU seconds of a whole PostgreSQL cluster so far: the postmaster, every live child (backends,
 * autovacuum, checkpointer, WAL writer…) and the children that already exited (reaped by the
 * postmaster, so counted in its `cutime`/`cstime`).
 */
export function postgresCpuSeconds(postmasterPid: number): number | undefined {
  const postmaster = processOf(postmasterPid);
  if (!postmaster) return undefined;
  let total = postmaster.ownSeconds + postmaster.reapedChildrenSeconds;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const child = processOf(Number(entry));
    if (child?.ppid === postmasterPid) total += child.ownSeconds;
  }
  return total;
}
