/**
 * The session checks of every stream of a hub, bounded: at most `limit` in flight, the rest waiting in
 * order, and one check for every stream of the same session waiting together.
 *
 * Why: a broadcast asks one EXISTS per stream at once. With 10,000 streams all of them went out together
 * while the process was busy writing the events, each command's timeout running from its send: about a
 * tenth timed out (measured with scripts/live-streams.ts) and those streams ended `session-unverified`,
 * their clients reconnecting and catching up for nothing. A check waiting here has not been sent, so its
 * timeout has not started, and few are in flight behind the process's other work.
 */
export class SessionChecks {
  private readonly waiting = new Map<string, Array<(result: PromiseSettledResult<boolean>) => void>>();
  private inFlight = 0;
  private readonly exists: (key: string) => Promise<boolean>;
  private readonly limit: number;

  constructor(exists: (key: string) => Promise<boolean>, limit: number) {
    this.exists = exists;
    this.limit = limit;
  }

  /** Whether `key` exists; rejects as `exists` does. */
  check(key: string): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const settle = (r: PromiseSettledResult<boolean>) =>
        r.status === 'fulfilled' ? resolve(r.value) : reject(r.reason);
      const queued = this.waiting.get(key);
      if (queued) queued.push(settle);
      else this.waiting.set(key, [settle]);
      this.next();
    });
  }

  private next(): void {
    while (this.inFlight < this.limit) {
      const first = this.waiting.entries().next();
      if (first.done) return;
      const [key, settles] = first.value;
      this.waiting.delete(key);
      this.inFlight += 1;
      this.exists(key)
        .then(
          (value) => ({ status: 'fulfilled', value }) as const,
          (reason: unknown) => ({ status: 'rejected', reason }) as const,
        )
        .then((result) => {
          this.inFlight -= 1;
          for (const settle of settles) settle(result);
          this.next();
        });
    }
  }
}
