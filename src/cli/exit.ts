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

/**
 * A reader that goes away early (`cascaded plan --json | head`) closes the pipe, and the next write fails with
 * EPIPE: an 'error' event on stdout that nothing handled crashed the command with a stack trace. Node ignores
 * SIGPIPE, so this does what the signal does to other Unix tools: the command ends at once, quietly, with the
 * status a shell reports for a writer killed by SIGPIPE (128 + 13), which `set -o pipefail` sees.
 */
export function exitOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr])
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      process.exit(EXIT_SIGPIPE);
    });
}

export const EXIT_SIGPIPE = 141;
