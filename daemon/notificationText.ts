import { barrierPayloadSchema, type BarrierPayload } from '../lib/postgres/barrier.ts';
import { changePayloadFromJson, payloadShapeProblem, PAYLOAD_VERSION, type ChangePayload } from '../sql-triggers/payload.ts';

/** How much of a bad payload a log line or event carries. */
export const PAYLOAD_EXCERPT_LENGTH = 200;

/** What one notification on the daemon's channel is. */
export type Notification =
  | { readonly kind: 'change'; readonly payload: ChangePayload }
  | { readonly kind: 'barrier'; readonly payload: BarrierPayload }
  /** A payload of another format version: its table (`null` when it names none) must be reloaded. */
  | { readonly kind: 'unknownVersion'; readonly version: unknown; readonly table: string | null }
  /**
   * Not a payload this daemon can read. `table`, when set, is the source table
   * a payload of the current version names although it is nested too deep to
   * validate (a deeply nested json key value could do that): its tables are
   * reloaded, so that a real change is never lost to the depth cap.
   */
  | { readonly kind: 'malformed'; readonly error: string; readonly excerpt: string; readonly table?: string };

/** The start of a payload, cut so that a huge or hostile payload cannot flood a log. */
export function payloadExcerpt(text: string): string {
  return text.length > PAYLOAD_EXCERPT_LENGTH ? `${text.slice(0, PAYLOAD_EXCERPT_LENGTH)}…` : text;
}

/**
 * Classifies the raw text of a notification. Never throws, and costs at most
 * one linear scan, one `JSON.parse` and one validation of a bounded payload:
 * anyone may NOTIFY on the channel (by hand, a foreign application, a hostile
 * role with nothing but CONNECT), and a bad payload must cost a log line and
 * a counter, never the daemon (docs/daemon.md, invariant 6). Text larger than a trigger ever
 * sends (`MAX_PAYLOAD_BYTES`) or nested deeper than
 * `MAX_PAYLOAD_DEPTH` is malformed without being parsed.
 *
 * A JSON object whose `v` is not a version this daemon knows is not
 * malformed: it comes from newer (or older) triggers, whose changes this
 * daemon cannot read, so the tables it names are reloaded instead.
 */
export function classifyNotification(text: string): Notification {
  try {
    return classify(text);
  } catch (error) {
    // Not expected after the shape check; kept so that no input, ever, escapes as an exception.
    return { kind: 'malformed', error: `could not be read (${String((error as Error)?.message ?? error).slice(0, PAYLOAD_EXCERPT_LENGTH)})`, excerpt: payloadExcerpt(text) };
  }
}

/**
 * The table a too-deeply nested payload of the current version names, or
 * `null`. `JSON.parse` itself is safe at any depth (V8 parses iteratively, and
 * the text is at most 7,999 bytes); only the recursive validation is not.
 */
function tableOfDeepPayload(text: string): string | null {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return null;
  const object = json as Record<string, unknown>;
  const table = object['t'];
  return Object.hasOwn(object, 'v') && object['v'] === PAYLOAD_VERSION && typeof table === 'string' && table.length <= PAYLOAD_EXCERPT_LENGTH ? table : null;
}

function classify(text: string): Notification {
  const shapeProblem = payloadShapeProblem(text);
  if (shapeProblem !== null) {
    const table = shapeProblem.startsWith('nested') ? tableOfDeepPayload(text) : null;
    return { kind: 'malformed', error: shapeProblem, excerpt: payloadExcerpt(text), ...(table === null ? {} : { table }) };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { kind: 'malformed', error: `not JSON (${(error as Error).message})`, excerpt: payloadExcerpt(text) };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { kind: 'malformed', error: 'not a JSON object', excerpt: payloadExcerpt(text) };
  }
  const object = json as Record<string, unknown>;
  if (object['op'] === 'B') {
    const barrier = barrierPayloadSchema.safeParse(json);
    if (barrier.success) return { kind: 'barrier', payload: barrier.data as BarrierPayload };
  }
  if (Object.hasOwn(object, 'v') && object['v'] !== PAYLOAD_VERSION) {
    const version = typeof object['v'] === 'string' ? payloadExcerpt(object['v']) : object['v'];
    const table = typeof object['t'] === 'string' && object['t'].length <= PAYLOAD_EXCERPT_LENGTH ? object['t'] : null;
    return { kind: 'unknownVersion', version, table };
  }
  const parsed = changePayloadFromJson(json, text);
  if (parsed.ok) return { kind: 'change', payload: parsed.payload };
  return { kind: 'malformed', error: parsed.error.slice(0, PAYLOAD_EXCERPT_LENGTH), excerpt: payloadExcerpt(text) };
}
