import { describe, expect, it } from 'vitest';
import { KeyColumnIndexes, PRIMARY_KEY_INDEX } from '../../../lib/core/keyColumnIndexes.ts';
import { ChangeMapper, type MappedTable } from '../../../daemon/changeMapper.ts';
import { ChangeQueue } from '../../../daemon/changeQueue.ts';
import type { SourceConfig } from '../../../daemon/config/configSchema.ts';
import type { ChangePayload } from '../../../sql-triggers/payload.ts';

const usersSource: SourceConfig = { name: 'public.users', schema: 'public', table: 'users', key: ['user_id'], match: ['user_id'], configPath: 'tables.users.sources.public.users' };
const users: MappedTable = { name: 'users', indexes: new KeyColumnIndexes({ query: 'SELECT * FROM users', primaryKey: ['user_id'] }), sources: [usersSource] };
const mapper = new ChangeMapper([users]);

function update(xid: number, ...ids: number[]): ChangePayload {
  return { v: 1, xid: String(xid), ts: 1, t: 'public.users', op: 'U', c: ['user_id'], k: ids.map((id) => [id]) } as ChangePayload;
}

/** The keys of the primary-key index a preview names, sorted. */
function previewKeys(queue: ChangeQueue, visibleBelow: bigint): unknown[] | null {
  const changes = queue.preview((xid) => xid < visibleBelow, mapper, 'users');
  return changes === null ? null : [...(changes.keysByIndex.get(PRIMARY_KEY_INDEX)?.keys() ?? [])].sort();
}

describe('ChangeQueue.preview (what a step reads ahead while its cut is proven)', () => {
  it('names the keys of the queued changes visible in the snapshot, and cuts nothing', () => {
    const queue = new ChangeQueue();
    queue.addChange(update(10, 1, 2));
    queue.addChange(update(20, 3));
    expect(previewKeys(queue, 15n)).toEqual([1, 2]);
    expect(previewKeys(queue, 25n)).toEqual([1, 2, 3]);
    expect(queue.queuedKeys).toBe(3);
  });

  it('names nothing when no queued change is visible', () => {
    const queue = new ChangeQueue();
    queue.addChange(update(20, 3));
    expect(previewKeys(queue, 15n)).toBeNull();
  });

  it('names nothing when a visible change asks for a reload (the step reloads instead)', () => {
    const queue = new ChangeQueue();
    queue.addChange(update(10, 1));
    queue.addChange({ v: 1, xid: '11', ts: 1, t: 'public.users', op: 'T' } as ChangePayload);
    expect(previewKeys(queue, 12n)).toBeNull();
    expect(previewKeys(queue, 11n)).toEqual([1]);
  });
});
