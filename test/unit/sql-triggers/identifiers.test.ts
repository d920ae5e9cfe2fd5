import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../../lib/core/errors.ts';
import {
  formatQualifiedName,
  parseColumnName,
  parseQualifiedName,
  quoteIdentifier,
  quoteLiteral,
  quoteQualifiedName,
} from '../../../sql-triggers/identifiers.ts';

describe('quoteIdentifier', () => {
  it('always double-quotes and doubles embedded quotes, so dots and semicolons stay part of the name', () => {
    expect(quoteIdentifier('users')).toBe('"users"');
    expect(quoteIdentifier('we"ird')).toBe('"we""ird"');
    expect(quoteIdentifier('a.b; DROP TABLE x; --')).toBe('"a.b; DROP TABLE x; --"');
  });

  it('refuses names Postgres would truncate or cannot hold', () => {
    expect(() => quoteIdentifier('')).toThrow(InvalidArgumentError);
    expect(() => quoteIdentifier('a\0b')).toThrow(/NUL/);
    expect(() => quoteIdentifier('x'.repeat(64))).toThrow(/64 bytes long; Postgres identifiers hold at most 63/);
    expect(quoteIdentifier('x'.repeat(63))).toHaveLength(65);
  });
});

describe('quoteLiteral', () => {
  it('doubles single quotes', () => {
    expect(quoteLiteral("it's")).toBe("'it''s'");
  });

  it('switches to the E form when a backslash is present, so the literal reads the same under any standard_conforming_strings', () => {
    expect(quoteLiteral('a\\b\'c')).toBe("E'a\\\\b''c'");
  });
});

describe('parseQualifiedName', () => {
  it('folds unquoted names to lower case and defaults the schema to public', () => {
    expect(parseQualifiedName('Users')).toEqual({ schema: 'public', table: 'users' });
    expect(parseQualifiedName('App.Orders')).toEqual({ schema: 'app', table: 'orders' });
  });

  it('keeps quoted names as written, with dots and doubled quotes', () => {
    expect(parseQualifiedName('"My Schema"."Order.Items"')).toEqual({ schema: 'My Schema', table: 'Order.Items' });
    expect(parseQualifiedName('"we""ird"')).toEqual({ schema: 'public', table: 'we"ird' });
  });

  it('refuses malformed names with a message that says how to quote', () => {
    expect(() => parseQualifiedName('a.b.c')).toThrow(/3 parts; expected "table" or "schema.table"/);
    expect(() => parseQualifiedName('my table')).toThrow(/expected "\." or the end/);
    expect(() => parseQualifiedName('"open')).toThrow(/unterminated quoted identifier/);
    expect(() => parseQualifiedName('1abc')).toThrow(/write "double quotes"/);
  });

  it('reads back what formatQualifiedName writes', () => {
    for (const name of [
      { schema: 'public', table: 'users' },
      { schema: 'Sch"ema', table: 'a.b;c' },
      { schema: 'app', table: 'Users' },
    ]) {
      expect(parseQualifiedName(formatQualifiedName(name))).toEqual(name);
    }
    expect(formatQualifiedName({ schema: 'public', table: 'users' })).toBe('public.users');
    expect(formatQualifiedName({ schema: 'app', table: 'Order.Items' })).toBe('app."Order.Items"');
    expect(quoteQualifiedName({ schema: 'app', table: 'Order.Items' })).toBe('"app"."Order.Items"');
  });
});

describe('parseColumnName', () => {
  it('reads one identifier and refuses qualified names', () => {
    expect(parseColumnName('User_Id')).toBe('user_id');
    expect(parseColumnName('"Key.Col"')).toBe('Key.Col');
    expect(() => parseColumnName('u.user_id')).toThrow(/2 parts; expected one column/);
  });
});
