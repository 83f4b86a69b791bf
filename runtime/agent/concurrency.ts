/**
 * Running tool-driving work side by side. Work receives an AbortSignal and must stop its tools
 * when it fires; the first failure aborts the rest, and nothing returns (or throws) before every
 * piece of work has settled, so the tools the agent started have exited before the runner removes
 * a backup directory (a tool's own children, such as pg_dump -j's workers, end with their leader).
 */

/**
 * Runs `work` over `items` with at most `width` at once, results in item order. The first
 * failure aborts the others (their tools are killed) and is the one thrown.
 */
export async function inPool<T, R>(items: readonly T[], width: number, parent: AbortSignal | undefined, work: (item: T, signal: AbortSignal) => Promise<R>): Promise<R[]> {
  const controller = new AbortController();
  const stop = () => controller.abort();
  if (parent?.aborted) controller.abort();
  parent?.addEventListener('abort', stop, { once: true });
  const results: R[] = new Array(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (next < items.length && failure === undefined) {
      // Tools only hear an abort that happens while they run: nothing starts after one.
      if (controller.signal.aborted) {
        failure = { error: parent?.aborted ? parent.reason : new Error('aborted') };
        break;
      }
      const index = next++;
      try {
        results[index] = await work(items[index], controller.signal);
      } catch (error) {
        failure ??= { error };
        controller.abort();
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  } finally {
    parent?.removeEventListener('abort', stop);
  }
  if (failure) throw failure.error;
  return results;
}

/** Runs every task at once, with inPool's failure handling; the results as a tuple, in task order. */
export function allOrNothing<T extends readonly unknown[]>(
  tasks: { readonly [K in keyof T]: (signal: AbortSignal) => Promise<T[K]> },
  parent: AbortSignal | undefined,
): Promise<T> {
  const list = tasks as readonly ((signal: AbortSignal) => Promise<unknown>)[];
  return inPool(list, list.length, parent, (task, signal) => task(signal)) as Promise<unknown> as Promise<T>;
}
