/**
 * Exiting without losing output. When stdout or stderr is a pipe, Node writes
 * to it asynchronously, and `process.exit()` right after a large write drops
 * whatever is still queued (`cascaded plan --json | jq` received 65,536 of
 * 1.35 MB). Writes on one stream complete in order, so the callback of an
 * empty write on each stream fires only once everything before it is out.
 */
export function exitWhenFlushed(code: number): void {
  process.exitCode = code;
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}
