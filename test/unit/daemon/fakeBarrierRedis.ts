/** Where a barrier's mark (all tables reached it) lives, for the key prefix `tc:` the pipeline tests use. */
const MARK = '{tc:}barrier:';

/**
 * Redis as the barrier tracker writes it (pipelines of SET): every value by
 * key, and the barriers marked, in the order they were written. Pass it to
 * the pipeline `as never`.
 */
export class FakeBarrierRedis {
  readonly values = new Map<string, string>();
  /** Barrier ids, as their marks were written. */
  readonly marked: string[] = [];

  /** @param onMarks Also told each pipeline's marks (a test's log shared with the tables' steps). */
  constructor(private readonly onMarks?: (ids: string[]) => void) {}

  pipeline() {
    const sets: [string, string][] = [];
    return {
      set(key: string, value: string) {
        sets.push([key, value]);
        return this;
      },
      exec: async () => {
        const ids: string[] = [];
        for (const [key, value] of sets) {
          this.values.set(key, value);
          // Only the all-tables marks: a table's own mark ({tc:users}:barrier:) and the lists of tables a barrier waits for are not.
          if (key.startsWith(MARK)) ids.push(key.slice(MARK.length));
        }
        this.marked.push(...ids);
        if (ids.length > 0) this.onMarks?.(ids);
        return sets.map(() => [null, 'OK'] as [null, string]);
      },
    };
  }

  isMarked(id: string): boolean {
    return this.values.has(`${MARK}${id}`);
  }

  /** The tables barrier `id` waits for, as the tracker wrote them beside its mark. */
  behind(id: string): unknown {
    const text = this.values.get(`{tc:}barrier-behind:${id}`);
    return text === undefined ? undefined : JSON.parse(text);
  }
}
