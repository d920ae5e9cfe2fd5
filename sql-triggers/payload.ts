import { z } from 'zod';

/** The payload format version the triggers send in `v`. A consumer refuses other versions. */
export const PAYLOAD_VERSION = 1;

/**
 * Postgres refuses a NOTIFY payload of 8000 bytes or more (the default
 * `BLCKSZ`); the triggers keep every payload at or below this many bytes.
 */
export const MAX_PAYLOAD_BYTES = 7999;

/**
 * The deepest nesting of JSON arrays and objects a payload may have. A
 * trigger's payload nests three deep (object, `k`, key tuple) plus the depth
 * of a key value (a json or array key column); anything deeper is not from a
 * trigger, and unbounded depth would let a foreign session exhaust the stack
 * of the recursive validator (issue #18: ~1,500 nested arrays crashed it).
 */
export const MAX_PAYLOAD_DEPTH = 16;

/**
 * Why `text` must not be parsed at all, or `null` when it is small and
 * shallow enough: one linear pass, no allocation per character, before
 * `JSON.parse` and the (recursive) schema see it. Brackets inside strings do
 * not count; the scan needs no validity, `JSON.parse` checks that afterwards.
 */
export function payloadShapeProblem(text: string): string | null {
  // A UTF-16 unit is at most 3 UTF-8 bytes: only near the limit is the exact count needed.
  if (text.length > MAX_PAYLOAD_BYTES || (text.length * 3 > MAX_PAYLOAD_BYTES && Buffer.byteLength(text, 'utf8') > MAX_PAYLOAD_BYTES)) {
    return `larger than ${MAX_PAYLOAD_BYTES} bytes, the most a trigger sends`;
  }
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > MAX_PAYLOAD_DEPTH) return `nested deeper than ${MAX_PAYLOAD_DEPTH} arrays or objects, deeper than any trigger payload`;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      depth--;
    }
  }
  return null;
}

/** Why a trigger sent a coarse {@link TableChangedPayload} instead of keys. */
export type CoarseReason = 'too_large' | 'error';

/**
 * A key value as the trigger sends it: what `to_json` gives for the column,
 * except `bigint` and `numeric`, which travel as strings (as node-postgres
 * returns them), so that no digit is lost to a JavaScript number. `null` for
 * a NULL key column.
 */
export type KeyValue = string | number | boolean | null | KeyValue[] | { [field: string]: KeyValue };

/** One key: the values of the source's key columns, in the order of `c`. */
export type KeyTuple = KeyValue[];

interface PayloadHead {
  /** Payload format version: {@link PAYLOAD_VERSION}. */
  readonly v: typeof PAYLOAD_VERSION;
  /** The changed source table, canonical text (`public.users`, see `formatQualifiedName`). */
  readonly t: string;
  /** Id of the writing transaction (`pg_current_xact_id()`), as a decimal string. */
  readonly xid: string;
  /**
   * `clock_timestamp()` when the statement's trigger ran, in Unix epoch
   * milliseconds (microsecond fraction). The commit comes after it, so the
   * delay from `ts` to "visible in the cache" includes the rest of the
   * writing transaction.
   */
  readonly ts: number;
}

/**
 * Rows were inserted (`I`), updated (`U`) or deleted (`D`) by one statement.
 * A large statement sends several of these, each complete in itself: `k` and
 * `ok` are sets, and their union over all parts is the statement's keys.
 */
export interface KeysChangedPayload extends PayloadHead {
  readonly op: 'I' | 'U' | 'D';
  /** The key columns, in the order of each tuple. */
  readonly c: readonly string[];
  /** Distinct keys: of the new rows for `I` and `U`, of the deleted rows for `D`. */
  readonly k: readonly KeyTuple[];
  /** `U` only, when some key changed: distinct keys of old rows that no new row has. */
  readonly ok?: readonly KeyTuple[];
}

/** The table was truncated: every row is gone. */
export interface TableTruncatedPayload extends PayloadHead {
  readonly op: 'T';
}

/**
 * Any row of the table may have changed, and the keys are not known: the
 * statement changed more keys than the configured bound, its keys did not fit
 * the payload limit, or the trigger met an error and, rather than fail the
 * user's statement, sent this.
 */
export interface TableChangedPayload extends PayloadHead {
  readonly op: 'X';
  readonly reason: CoarseReason;
}

/** Everything a tablecache trigger sends on its channel. */
export type ChangePayload = KeysChangedPayload | TableTruncatedPayload | TableChangedPayload;

const keyValueSchema: z.ZodType<KeyValue> = z.lazy(() =>
  z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(keyValueSchema), z.record(z.string(), keyValueSchema)]),
);
const keyTupleSchema = z.array(keyValueSchema).min(1);

const head = {
  v: z.literal(PAYLOAD_VERSION),
  t: z.string().min(1),
  xid: z.string().regex(/^\d+$/),
  ts: z.number().finite(),
};

/** The zod schema of {@link ChangePayload}; {@link parseChangePayload} is the usual entry point. */
export const changePayloadSchema = z.discriminatedUnion('op', [
  z
    .object({
      ...head,
      op: z.enum(['I', 'U', 'D']),
      c: z.array(z.string()).min(1),
      k: z.array(keyTupleSchema),
      ok: z.array(keyTupleSchema).optional(),
    })
    .superRefine((payload, context) => {
      for (const field of ['k', 'ok'] as const) {
        payload[field]?.forEach((tuple, index) => {
          if (tuple.length === payload.c.length) return;
          context.addIssue({ code: 'custom', path: [field, index], message: `expected ${payload.c.length} value(s), one per key column in c` });
        });
      }
    }),
  z.object({ ...head, op: z.literal('T') }),
  z.object({ ...head, op: z.literal('X'), reason: z.enum(['too_large', 'error']) }),
]);

/** What {@link parseChangePayload} gives: the payload, or why the text is not one. */
export type ParsedChangePayload = { readonly ok: true; readonly payload: ChangePayload } | { readonly ok: false; readonly error: string };

/**
 * Parses the text of a notification from a tablecache trigger. Never throws,
 * whatever the text: it is checked with {@link payloadShapeProblem} before
 * `JSON.parse` and the schema see it. A malformed payload (docs/daemon.md, invariant 6: counted and logged by the daemon, never
 * fatal) comes back as `{ ok: false, error }` naming what is wrong.
 *
 * @example
 * ```ts
 * const parsed = parseChangePayload(notification.payload ?? '');
 * if (parsed.ok && parsed.payload.op === 'U') console.log(parsed.payload.k);
 * ```
 */
export function parseChangePayload(text: string): ParsedChangePayload {
  const shapeProblem = payloadShapeProblem(text);
  if (shapeProblem !== null) return { ok: false, error: `${shapeProblem}: ${text.slice(0, 120)}` };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { ok: false, error: `not JSON (${(error as Error).message}): ${text.slice(0, 120)}` };
  }
  return changePayloadFromJson(json, text);
}

/**
 * Validates `json`, the `JSON.parse` of `text`, a text that passed
 * {@link payloadShapeProblem} already: for a reader that parsed the text
 * itself (to tell a change from other messages), so that it is parsed once.
 * `text` is only quoted in the error.
 */
export function changePayloadFromJson(json: unknown, text: string): ParsedChangePayload {
  const plain = plainKeysPayload(json);
  if (plain !== null) return { ok: true, payload: plain };
  const result = changePayloadSchema.safeParse(json);
  if (result.success) return { ok: true, payload: result.data as ChangePayload };
  const issues = result.error.issues.map((issue) => `${issue.path.join('.') || '(payload)'}: ${issue.message}`).join('; ');
  return { ok: false, error: `not a tablecache change payload v${PAYLOAD_VERSION} (${issues}): ${text.slice(0, 120)}` };
}

const XID_TEXT = /^\d+$/;

/**
 * The payload every row change sends (`I`, `U`, `D` with keys of scalar
 * values), checked without the schema: the same verdict and the same value
 * (unknown fields dropped) at a fraction of the cost, which is paid once
 * per notification. `null` for anything else, which the schema then
 * decides (and explains).
 */
function plainKeysPayload(json: unknown): KeysChangedPayload | null {
  if (typeof json !== 'object' || json === null) return null;
  const { v, t, op, xid, ts, c, k, ok } = json as Record<string, unknown>;
  if (v !== PAYLOAD_VERSION || (op !== 'I' && op !== 'U' && op !== 'D')) return null;
  if (typeof t !== 'string' || t.length === 0 || typeof xid !== 'string' || !XID_TEXT.test(xid) || typeof ts !== 'number' || !Number.isFinite(ts)) return null;
  if (!Array.isArray(c) || c.length === 0 || !c.every((column) => typeof column === 'string')) return null;
  if (!scalarTuples(k, c.length) || (ok !== undefined && !scalarTuples(ok, c.length))) return null;
  return { v, t, op, xid, ts, c: c as string[], k, ...(ok === undefined ? {} : { ok }) };
}

/** Whether `value` is a list of key tuples of `width` scalar values each. */
function scalarTuples(value: unknown, width: number): value is KeyTuple[] {
  if (!Array.isArray(value)) return false;
  for (const tuple of value) {
    if (!Array.isArray(tuple) || tuple.length !== width) return false;
    for (const item of tuple) {
      if (item !== null && typeof item !== 'string' && typeof item !== 'number' && typeof item !== 'boolean') return false;
    }
  }
  return true;
}
