// Jobs under way off the JS thread (warm pairs and skeletons being made),
// counted so that a check can wait until none is: what one makes is in the
// process's fd table before its callback hands it to JS.
export class InFlight {
  private count = 0;
  private waiters: (() => void)[] = [];

  start(): void {
    this.count++;
  }

  end(): void {
    if (--this.count === 0) for (const resolve of this.waiters.splice(0)) resolve();
  }

  /** Resolves once no job is under way. */
  settled(): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}
