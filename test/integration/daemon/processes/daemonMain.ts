/**
 * The daemon as a child process of the tests, started the way the CLI starts
 * it (`runDaemon`), so that SIGKILL, SIGTERM and restarts are real:
 * `node --import tsx daemonMain.ts <config file> [--no-standby]`.
 */
import { createCliContext } from '../../../../cli/cliContext.ts';
import { runDaemon } from '../../../../cli/daemonCommand.ts';

const [configFile, flag] = process.argv.slice(2);
const context = createCliContext(
  (text) => process.stdout.write(text),
  (text) => process.stderr.write(text),
);
process.exitCode = await runDaemon(context, { config: configFile!, standby: flag !== '--no-standby' });
