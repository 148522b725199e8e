// Polling with a deadline, for tests that wait on something another task or process does
// (no fixed sleeps: a loaded machine only makes them slower, never wrong).

/** Polls `check` until it holds; throws when `timeoutMs` passes first. */
export async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Polls `get` until `ok` holds for its value and returns it; throws saying what it waited for, and what it saw last, when `timeoutMs` passes first. */
export async function eventually<T>(what: string, get: () => T | Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${JSON.stringify(v)?.slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
