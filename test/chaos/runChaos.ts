/**
 * `npm run chaos -- [--seed N] [--duration SECONDS] [--rate TPS] [--faults kind,kind] [--capture triggers|logical] [--redis single|cluster] [--logs DIR] [--json]`:
 * the reliability suite (docs in the README, "Reliability: the chaos suite").
 * Prints the report as markdown tables; exit 0 only when nothing diverged,
 * no read was stale, every fault recovered and no daemon crashed.
 */
import { parseArgs } from 'node:util';
import { chaosPassed, formatChaosReport, runChaos } from './chaosRun.ts';
import { FAULT_KINDS, faultKindsFor, type FaultKind } from './faultInjectors.ts';

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: '7' },
    duration: { type: 'string', default: '600' },
    rate: { type: 'string', default: '300' },
    faults: { type: 'string' },
    capture: { type: 'string', default: 'triggers' },
    redis: { type: 'string', default: 'single' },
    logs: { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  process.stdout.write(
    [
      'npm run chaos -- [options]: the reliability suite (README, "Reliability: the chaos suite")',
      '  --seed N                    fixes every choice (default 7)',
      '  --duration SECONDS          how long faults are injected (default 600)',
      '  --rate TPS                  the writers\' combined pace (default 300)',
      `  --faults kind,kind          of ${FAULT_KINDS.join(', ')} (default: every kind that applies to --redis)`,
      '  --capture triggers|logical  the daemons\' change source (default triggers)',
      '  --redis single|cluster      one redis-server (default) or a private Redis Cluster',
      '  --logs DIR                  copy every daemon\'s log to DIR/daemon-<pid>.log, for a post-mortem',
      '  --json                      the report as JSON instead of markdown tables',
      'Exit 0 only when nothing diverged, no read was stale or torn, every fault recovered and no daemon crashed.',
      '',
    ].join('\n'),
  );
  process.exit(0);
}

if (values.redis !== 'single' && values.redis !== 'cluster') {
  process.stderr.write(`--redis must be single or cluster, got ${values.redis}.\n`);
  process.exit(2);
}
const redis = values.redis;
const faults = values.faults?.split(',').map((kind) => kind.trim()) ?? faultKindsFor(redis);
const unknown = faults.filter((kind) => !(FAULT_KINDS as readonly string[]).includes(kind));
if (unknown.length > 0) {
  process.stderr.write(`Unknown fault kind(s) ${unknown.join(', ')}; the kinds are ${FAULT_KINDS.join(', ')}.\n`);
  process.exit(2);
}
if (values.capture !== 'triggers' && values.capture !== 'logical') {
  process.stderr.write(`--capture must be triggers or logical, got ${values.capture}.\n`);
  process.exit(2);
}
const capture: 'triggers' | 'logical' = values.capture;
const seed = Number(values.seed);
const durationSeconds = Number(values.duration);
const rate = Number(values.rate);
if (!Number.isInteger(seed) || !(durationSeconds > 0) || !(rate > 0)) {
  process.stderr.write('--seed must be an integer, --duration a positive number of seconds, --rate a positive number of transactions per second.\n');
  process.exit(2);
}

const controller = new AbortController();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`${signal}: stopping and cleaning up\n`);
    controller.abort(new Error(`interrupted by ${signal}`));
  });
}

// A bug in the suite itself must still stop the private servers and child processes.
process.on('uncaughtException', (error) => {
  process.stderr.write(`uncaught: ${error.stack ?? String(error)}\n`);
  controller.abort(error);
});

const started = Date.now();
try {
  const report = await runChaos({
    seed,
    durationMs: durationSeconds * 1000,
    transactionsPerSecond: rate,
    faults: faults as FaultKind[],
    capture,
    redis,
    signal: controller.signal,
    ...(values.logs === undefined ? {} : { daemonLogDir: values.logs }),
    log: (line) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${line}\n`),
  });
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatChaosReport(report)}\n`);
  for (const crash of report.daemonCrashes) process.stderr.write(`daemon crash: ${crash}\n`);
  if (report.divergent > 0) process.stderr.write(`differences: ${JSON.stringify(report.verification.differences)}\n`);
  process.exitCode = chaosPassed(report) ? 0 : 1;
} catch (error) {
  const interrupted = controller.signal.aborted && error === controller.signal.reason;
  process.stderr.write(interrupted ? 'chaos run stopped; everything it started is gone\n' : `chaos run failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  // runChaos has stopped and removed everything it started; a fault or recovery still in flight must not keep the process up.
  process.exit(controller.signal.aborted ? 130 : 1);
}
