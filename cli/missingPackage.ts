/**
 * The packages the CLI and the daemon need that are optional peer
 * dependencies of tablecache: a service that only reads installs none of
 * them, so `npm install tablecache` alone gives a CLI that cannot run.
 */
export const DAEMON_PACKAGES = ['pg', 'pg-cursor', 'pg-listen', 'zod', 'prom-client', 'pino', 'commander', 'yaml'] as const;

/**
 * What to tell the user when `error` is Node failing to find one of the
 * {@link DAEMON_PACKAGES} (`ERR_MODULE_NOT_FOUND`); undefined for any other
 * error.
 */
export function missingPackageAdvice(error: unknown): string | undefined {
  if (!(error instanceof Error) || (error as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') return undefined;
  const name = /Cannot find package '([^']+)'/.exec(error.message)?.[1];
  if (name === undefined || !(DAEMON_PACKAGES as readonly string[]).includes(name)) return undefined;
  return (
    `The tablecache command needs the package ${name}, which is not installed: the daemon's packages are optional peer ` +
    `dependencies of tablecache. Install them next to it: npm install ${DAEMON_PACKAGES.join(' ')}`
  );
}
