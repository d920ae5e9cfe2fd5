/**
 * `npm run bench` runs every bench/*.bench.ts; `npm run bench -- postgresRead`
 * runs the ones named. Each file exports `run(context: BenchContext)` and
 * prints its tables through the context (see bench/README.md).
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type BenchContext, createBenchContext } from './benchContext.ts';

const BENCH_SUFFIX = '.bench.ts';
const benchDirectory = path.dirname(fileURLToPath(import.meta.url));

/** What a bench file must export. */
interface BenchModule {
  run(context: BenchContext): Promise<void>;
}

async function availableBenches(): Promise<string[]> {
  const files = await readdir(benchDirectory);
  return files.filter((file) => file.endsWith(BENCH_SUFFIX)).map((file) => file.slice(0, -BENCH_SUFFIX.length)).sort();
}

/** Accepts `postgresRead`, `postgresRead.bench.ts` and `bench/postgresRead.bench.ts`. */
function benchName(argument: string): string {
  const base = path.basename(argument);
  return base.endsWith(BENCH_SUFFIX) ? base.slice(0, -BENCH_SUFFIX.length) : base;
}

async function loadBench(name: string): Promise<BenchModule> {
  const module: Partial<BenchModule> = await import(pathToFileURL(path.join(benchDirectory, `${name}${BENCH_SUFFIX}`)).href);
  if (typeof module.run !== 'function') {
    throw new Error(`bench/${name}${BENCH_SUFFIX} must export \`async function run(context: BenchContext)\`.`);
  }
  return module as BenchModule;
}

async function main(argv: readonly string[]): Promise<number> {
  const available = await availableBenches();
  const requested = argv.length > 0 ? argv.map(benchName) : available;
  const unknown = requested.filter((name) => !available.includes(name));
  if (unknown.length > 0) {
    process.stderr.write(`Unknown benchmark(s): ${unknown.join(', ')}. Available: ${available.join(', ')}.\n`);
    return 2;
  }
  const { context, dropLeftovers } = createBenchContext();
  let failed = 0;
  for (const name of requested) {
    process.stdout.write(`## ${name}\n\n`);
    const started = performance.now();
    try {
      await (await loadBench(name)).run(context);
      process.stderr.write(`  ${name} took ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
    } catch (error) {
      failed++;
      process.stderr.write(`  ${name} FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    } finally {
      await dropLeftovers();
    }
  }
  return failed > 0 ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
