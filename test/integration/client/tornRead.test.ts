import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { deleteKeysWithPrefix, testRedisUrl, uniqueRedisPrefix } from '../../support/redis.ts';

const prefix = uniqueRedisPrefix('torn');
const RECORDS = 300;
const READERS = 4;
const READS_PER_READER = 2_000;

afterAll(async () => {
  const redis = new Redis(testRedisUrl());
  await deleteKeysWithPrefix(redis, prefix);
  await redis.quit();
});

function start(script: string, args: (string | number)[]): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL(`./processes/${script}`, import.meta.url)), ...args.map(String)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
}

async function lines(child: ChildProcess): Promise<string[]> {
  const collected: string[] = [];
  for await (const line of createInterface({ input: child.stdout! })) collected.push(line);
  return collected;
}

describe('readers in other processes, while a writer refreshes, adjusts and reloads in a loop', () => {
  it('never see a torn state, with or without a near-cache: every answer carries one writer step, and a whole-table read has every record', async () => {
    const writer = start('stampingWriter.ts', [testRedisUrl(), prefix, 'stamped', RECORDS, 50]);
    const writerLines = createInterface({ input: writer.stdout! });
    const writerOutput: string[] = [];
    const writerDone = (async () => {
      for await (const line of writerLines) writerOutput.push(line);
    })();
    await new Promise<void>((resolve, reject) => {
      writerLines.on('line', (line) => line === 'ready' && resolve());
      writer.once('exit', (code) => reject(new Error(`the writer exited with ${code} before its first load`)));
    });

    // Half the readers read through a near-cache.
    const readers = Array.from({ length: READERS }, (_, i) =>
      start('checkingReader.ts', [testRedisUrl(), prefix, 'stamped', RECORDS, READS_PER_READER, 3, i % 2 === 0 ? 'plain' : 'near']),
    );
    const results = await Promise.all(readers.map(async (reader) => JSON.parse((await lines(reader)).at(-1) ?? '{}') as Record<string, unknown>));
    writer.stdin!.end();
    await writerDone;

    const steps = Number(writerOutput.find((line) => line.startsWith('steps '))?.slice('steps '.length));
    const reads = results.reduce((sum, result) => sum + Number(result.reads), 0);
    console.info(`torn-read test: ${reads} reads by ${READERS} processes during ${steps} writer steps, violations: ${results.map((r) => r.violations).join(', ')}, near-cache hits: ${results.map((r) => r.nearCacheHits).join(', ')}`);
    for (const [i, result] of results.entries()) {
      expect(result).toMatchObject({ violations: 0, firstViolation: null });
      if (i % 2 === 1) expect(result.nearCacheHits).toBeGreaterThan(0);
      expect(result.reads).toBeGreaterThanOrEqual(READS_PER_READER);
      expect(result.stamps).toBeGreaterThanOrEqual(3);
    }
    expect(steps).toBeGreaterThanOrEqual(3);
  }, 90_000);
});
