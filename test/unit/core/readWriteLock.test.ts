import { describe, expect, it } from 'vitest';
import { AsyncMutex, ReadWriteLock } from '../../../lib/core/readWriteLock.ts';
import { deferred, settle } from './deferred.ts';

describe('AsyncMutex', () => {
  it('runs tasks one at a time in the order they were submitted', async () => {
    const mutex = new AsyncMutex();
    const events: string[] = [];
    const firstGate = deferred();
    const first = mutex.run(async () => {
      events.push('first start');
      await firstGate.promise;
      events.push('first end');
    });
    const second = mutex.run(async () => {
      events.push('second');
    });
    const third = mutex.run(async () => {
      events.push('third');
    });
    await settle();
    expect(events).toEqual(['first start']);
    firstGate.resolve();
    await Promise.all([first, second, third]);
    expect(events).toEqual(['first start', 'first end', 'second', 'third']);
  });

  it('passes on the task result and error, and keeps running later tasks after a failure', async () => {
    const mutex = new AsyncMutex();
    const failing = mutex.run(async () => {
      throw new Error('boom');
    });
    const after = mutex.run(async () => 42);
    await expect(failing).rejects.toThrow('boom');
    await expect(after).resolves.toBe(42);
  });
});

describe('ReadWriteLock', () => {
  it('lets readers share the lock', async () => {
    const lock = new ReadWriteLock();
    const gate = deferred();
    let inside = 0;
    let maxInside = 0;
    const reader = () =>
      lock.shared(async () => {
        inside++;
        maxInside = Math.max(maxInside, inside);
        await gate.promise;
        inside--;
      });
    const readers = [reader(), reader(), reader()];
    await settle();
    expect(inside).toBe(3);
    gate.resolve();
    await Promise.all(readers);
    expect(maxInside).toBe(3);
  });

  it('makes a writer wait for the readers inside, and keeps readers out while it writes', async () => {
    const lock = new ReadWriteLock();
    const events: string[] = [];
    const readGate = deferred();
    const writeGate = deferred();
    const reader = lock.shared(async () => {
      events.push('read 1 start');
      await readGate.promise;
      events.push('read 1 end');
    });
    const writer = lock.exclusive(async () => {
      events.push('write start');
      await writeGate.promise;
      events.push('write end');
    });
    await settle();
    expect(events).toEqual(['read 1 start']);
    readGate.resolve();
    await settle();
    expect(events).toEqual(['read 1 start', 'read 1 end', 'write start']);
    const lateReader = lock.shared(async () => {
      events.push('read 2');
    });
    await settle();
    expect(events.at(-1)).toBe('write start');
    writeGate.resolve();
    await Promise.all([reader, writer, lateReader]);
    expect(events).toEqual(['read 1 start', 'read 1 end', 'write start', 'write end', 'read 2']);
  });

  it('prefers a waiting writer over readers that arrive after it', async () => {
    const lock = new ReadWriteLock();
    const events: string[] = [];
    const readGate = deferred();
    const firstReader = lock.shared(async () => {
      await readGate.promise;
      events.push('reader before writer');
    });
    const writer = lock.exclusive(async () => {
      events.push('writer');
    });
    // Arrives while the first reader still holds the lock: a reader-preferring
    // lock would let it in at once and could starve the writer.
    const laterReader = lock.shared(async () => {
      events.push('reader after writer');
    });
    await settle();
    expect(events).toEqual([]);
    readGate.resolve();
    await Promise.all([firstReader, writer, laterReader]);
    expect(events).toEqual(['reader before writer', 'writer', 'reader after writer']);
  });

  it('runs waiting writers one at a time before letting the queued readers in', async () => {
    const lock = new ReadWriteLock();
    const events: string[] = [];
    const gate = deferred();
    const holder = lock.exclusive(async () => {
      await gate.promise;
      events.push('writer 1');
    });
    const reader = lock.shared(async () => {
      events.push('reader');
    });
    const secondWriter = lock.exclusive(async () => {
      events.push('writer 2');
    });
    gate.resolve();
    await Promise.all([holder, reader, secondWriter]);
    expect(events).toEqual(['writer 1', 'writer 2', 'reader']);
  });

  it('releases the lock when a task throws', async () => {
    const lock = new ReadWriteLock();
    await expect(lock.exclusive(async () => {
      throw new Error('write failed');
    })).rejects.toThrow('write failed');
    await expect(lock.shared(async () => {
      throw new Error('read failed');
    })).rejects.toThrow('read failed');
    await expect(lock.exclusive(async () => 'free again')).resolves.toBe('free again');
  });
});
