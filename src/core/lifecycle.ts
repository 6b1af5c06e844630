/** Every long-lived object: `close()` is idempotent and resolves when released. */
export interface Closeable {
  close(): Promise<void>;
}

/**
 * Wrap a close routine so that every call after the first returns the same
 * promise: callers may close concurrently or repeatedly without re-running it.
 */
export function onceClose(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  return () => {
    p ??= fn();
    return p;
  };
}
