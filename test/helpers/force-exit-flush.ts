/**
 * Preloaded into every test process by scripts/test.sh (`--import`).
 *
 * With --test-force-exit, Node's runner calls process.exit() as soon as its reporter stream closes, before
 * the last serialized test events have reached the parent through the child's stdout: the parent then
 * counts fewer tests than ran, with `fail 0` and exit 0 — the verdicts of a file's last tests, a failure
 * among them, silently gone (nodejs/node#64833; 3 runs in 4 lost 9–21 verdicts here). The exit is deferred
 * until stdout has drained, a few event-loop turns at least. scripts/test.sh checks afterwards that every
 * test that started has a verdict.
 */
if (process.execArgv.includes('--test-force-exit')) {
  const exit = process.exit.bind(process);
  process.exit = ((code?: number | string | null) => {
    let turns = 0;
    const later = (): void => {
      turns++;
      if ((turns < 3 || process.stdout.writableLength > 0) && turns < 1000) setImmediate(later);
      else exit(code ?? undefined);
    };
    setImmediate(later);
  }) as typeof process.exit;
}
