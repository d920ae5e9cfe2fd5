import { InvalidArgumentError } from '../lib/core/errors.ts';

/** A table named by schema and table name, both exactly as stored in the catalog (case and quotes as they are). */
export interface QualifiedTableName {
  readonly schema: string;
  readonly table: string;
}

// Postgres truncates identifiers longer than NAMEDATALEN - 1 bytes (63) silently;
// a truncated name would address another object, so longer names are refused.
const MAX_IDENTIFIER_BYTES = 63;
const PLAIN_IDENTIFIER = /^[a-z_][a-z0-9_$]*$/;
const UNQUOTED_PART = /^[A-Za-z_][A-Za-z0-9_$]*/;

function checkIdentifier(name: string, what: string): void {
  if (name.length === 0) throw new InvalidArgumentError(`${what} is empty; expected a non-empty SQL identifier.`);
  if (name.includes('\0')) throw new InvalidArgumentError(`${what} ${JSON.stringify(name)} contains a NUL character, which Postgres identifiers cannot hold.`);
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_IDENTIFIER_BYTES) {
    throw new InvalidArgumentError(
      `${what} ${JSON.stringify(name)} is ${bytes} bytes long; Postgres identifiers hold at most ${MAX_IDENTIFIER_BYTES} bytes.`,
    );
  }
}

/**
 * Quotes an identifier for SQL text: always double-quoted, embedded double
 * quotes doubled, so no name (with dots, semicolons or quotes) is ever read as
 * SQL.
 *
 * @throws {@link InvalidArgumentError} for an empty name, a NUL character, or a name over 63 bytes.
 * @example quoteIdentifier('we"ird') // '"we""ird"'
 */
export function quoteIdentifier(name: string, what = 'Identifier'): string {
  checkIdentifier(name, what);
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Quotes a string as a SQL literal that reads the same whatever
 * `standard_conforming_strings` is: a backslash switches to the `E''` form.
 *
 * @example quoteLiteral("it's") // "'it''s'"
 */
export function quoteLiteral(value: string): string {
  const quoted = `'${value.replaceAll("'", "''")}'`;
  return value.includes('\\') ? `E${quoted.replaceAll('\\', '\\\\')}` : quoted;
}

/** `schema.table`, each part quoted: for SQL text. */
export function quoteQualifiedName(name: QualifiedTableName): string {
  return `${quoteIdentifier(name.schema, 'Schema name')}.${quoteIdentifier(name.table, 'Table name')}`;
}

/** An identifier as a human (and the config file) writes it: bare when it needs no quotes. */
function displayIdentifier(name: string): string {
  return PLAIN_IDENTIFIER.test(name) ? name : `"${name.replaceAll('"', '""')}"`;
}

/**
 * The canonical text of a table name, as it appears in change payloads (`t`)
 * and in messages: `public.users`, or `public."Order.Items"` when a part needs
 * quotes. {@link parseQualifiedName} reads it back.
 */
export function formatQualifiedName(name: QualifiedTableName): string {
  return `${displayIdentifier(name.schema)}.${displayIdentifier(name.table)}`;
}

/**
 * Splits a name written with SQL identifier syntax into its parts: unquoted
 * parts fold to lower case, `"quoted"` parts keep case, dots and doubled quotes.
 *
 * @throws {@link InvalidArgumentError} when the text is not a dot-separated list of identifiers.
 */
export function parseIdentifierPath(text: string, what = 'Name'): string[] {
  const parts: string[] = [];
  let rest = text.trim();
  for (;;) {
    if (rest.startsWith('"')) {
      let part = '';
      let index = 1;
      for (;;) {
        const close = rest.indexOf('"', index);
        if (close < 0) throw new InvalidArgumentError(`${what} ${JSON.stringify(text)} has an unterminated quoted identifier.`);
        part += rest.slice(index, close);
        if (rest[close + 1] === '"') {
          part += '"';
          index = close + 2;
          continue;
        }
        rest = rest.slice(close + 1);
        break;
      }
      parts.push(part);
    } else {
      const match = UNQUOTED_PART.exec(rest);
      if (!match) {
        throw new InvalidArgumentError(
          `${what} ${JSON.stringify(text)} is not a valid identifier: unquoted names are letters, digits, _ and $; write "double quotes" around a name with other characters.`,
        );
      }
      parts.push(match[0].toLowerCase());
      rest = rest.slice(match[0].length);
    }
    checkIdentifier(parts.at(-1)!, what);
    if (rest.length === 0) return parts;
    if (!rest.startsWith('.')) {
      throw new InvalidArgumentError(`${what} ${JSON.stringify(text)}: expected "." or the end after ${JSON.stringify(parts.at(-1))}.`);
    }
    rest = rest.slice(1);
  }
}

/**
 * Reads `table` or `schema.table` (SQL identifier syntax, see
 * {@link parseIdentifierPath}); an unqualified name is in `defaultSchema`.
 *
 * @throws {@link InvalidArgumentError} for malformed names or more than two parts.
 * @example parseQualifiedName('Users') // { schema: 'public', table: 'users' }
 * @example parseQualifiedName('app."Order.Items"') // { schema: 'app', table: 'Order.Items' }
 */
export function parseQualifiedName(text: string, defaultSchema = 'public'): QualifiedTableName {
  const parts = parseIdentifierPath(text, 'Table name');
  if (parts.length === 1) return { schema: defaultSchema, table: parts[0]! };
  if (parts.length === 2) return { schema: parts[0]!, table: parts[1]! };
  throw new InvalidArgumentError(
    `Table name ${JSON.stringify(text)} has ${parts.length} parts; expected "table" or "schema.table" (quote a name that contains dots: "my.table").`,
  );
}

/**
 * Reads one column name (SQL identifier syntax: unquoted folds to lower case).
 *
 * @throws {@link InvalidArgumentError} for malformed names or qualified names.
 */
export function parseColumnName(text: string): string {
  const parts = parseIdentifierPath(text, 'Column name');
  if (parts.length !== 1) {
    throw new InvalidArgumentError(`Column name ${JSON.stringify(text)} has ${parts.length} parts; expected one column (quote a name that contains dots).`);
  }
  return parts[0]!;
}
