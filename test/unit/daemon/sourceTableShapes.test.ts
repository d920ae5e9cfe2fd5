import { describe, expect, it } from 'vitest';
import { describeShapeChange, type SourceTableShape } from '../../../daemon/sourceTableShapes.ts';

const shape = (overrides: Partial<SourceTableShape> = {}): SourceTableShape => ({
  oid: 100,
  columns: ['item_id integer', 'name text'],
  children: [],
  ...overrides,
});

describe('describeShapeChange', () => {
  it('says nothing changed for an equal shape', () => {
    expect(describeShapeChange(shape(), shape())).toBeNull();
  });

  it('names a table dropped, created, or dropped and created again', () => {
    expect(describeShapeChange(shape(), shape({ oid: null, columns: [] }))).toBe('the table was dropped');
    expect(describeShapeChange(shape({ oid: null, columns: [] }), shape())).toBe('the table was created');
    expect(describeShapeChange(shape(), shape({ oid: 200 }))).toBe('the table was dropped and created again (OID 100 is now 200)');
  });

  it('names columns that are new or gone, a changed type being both', () => {
    expect(describeShapeChange(shape(), shape({ columns: ['item_id integer', 'name text', 'w text'] }))).toBe('columns w text are new');
    expect(describeShapeChange(shape(), shape({ columns: ['item_id text', 'name text'] }))).toBe('columns item_id integer are gone; columns item_id text are new');
    expect(describeShapeChange(shape(), shape({ columns: ['name text', 'item_id integer'] }))).toBe('the column order changed');
  });

  it('counts partitions or children attached and detached', () => {
    expect(describeShapeChange(shape({ children: [1, 2] }), shape({ children: [2, 3, 4] }))).toBe(
      '2 partition(s) or child table(s) attached; 1 partition(s) or child table(s) detached',
    );
  });
});
