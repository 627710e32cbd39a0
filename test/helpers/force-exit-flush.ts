/**
 * Preloaded into every test process by scripts/test.sh (`--import`).
 *
 * With --test-force-exit, Node's runner calls process.exit() as soon as its reporter stream closes, before
 * the last serialized test events have reached the parent through the child's stdout: the parent then
 * counts fewer tests than ran, with `fail 0` and exit 0 — the verdicts of a file's last tests, a failure
 * among them, silently gone (nodejs/node#64833). The exit is deferred by a short grace period, and for as
 * long as stdout still holds unwritten bytes (bounded: 5 s). scripts/test.sh checks afterwards that every
 * test that started has a verdict.
 */
if (process.execArgv.includes('--test-force-exit')) {
  const exit = process.exit.bind(process);
  const pending = (): number =>
    process.stdout.writableLength +
    ((process.stdout as unknown as { _handle?: { writeQueueSize?: number } })._handle?.writeQueueSize ?? 0);
  process.exit = ((code?: number | string | null) => {
    const deadline = Date.now() + 5000;
    const later = (): void => {
      if (pending() > 0 && Date.now() < deadline) setTimeout(later, 5);
      else exit(code ?? undefined);
    };
    // The reporter's pipeline (serializer -> stdout) writes its last frames a few turns after 'close'.
    setTimeout(later, 25);
  }) as typeof process.exit;
}
