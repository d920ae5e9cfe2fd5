/** Where a command writes, and how its exit code reaches `main`. */
export interface CliContext {
  out(text: string): void;
  err(text: string): void;
  /** Wraps a command handler for commander: the handler's result becomes the process exit code. */
  run<A extends unknown[]>(handler: (context: CliContext, ...args: A) => Promise<number>): (...args: A) => Promise<void>;
}

/** A context writing to `out`/`err` that records the last handler's exit code in `exitCode`. */
export function createCliContext(out: (text: string) => void, err: (text: string) => void): CliContext & { exitCode: number } {
  const context = {
    exitCode: 0,
    out,
    err,
    run<A extends unknown[]>(handler: (context: CliContext, ...args: A) => Promise<number>) {
      return async (...args: A) => {
        context.exitCode = await handler(context, ...args);
      };
    },
  };
  return context;
}
