import { describe, expect, it } from 'vitest';
import { sourceTriggerDefinition } from '../../../sql-triggers/sourceTriggers.ts';
import { resolveTriggerSpec, TRIGGER_DEFAULTS, type TriggerSpec } from '../../../sql-triggers/triggerSpec.ts';
import { installTriggersScript } from '../../../sql-triggers/installTriggers.ts';

const users = { schema: 'public', table: 'users', keyColumns: ['user_id'] };
const spec: TriggerSpec = { schema: 'tablecache', channel: 'tablecache_changes', sources: [users] };

describe('resolveTriggerSpec', () => {
  it('applies the defaults', () => {
    expect(resolveTriggerSpec(spec)).toEqual({
      ...spec,
      maxKeysPerStatement: TRIGGER_DEFAULTS.maxKeysPerStatement,
      maxNotificationsPerStatement: TRIGGER_DEFAULTS.maxNotificationsPerStatement,
      maxQueueUsage: TRIGGER_DEFAULTS.maxQueueUsage,
    });
  });

  it('refuses a schema or channel that is not a plain lower-case name', () => {
    expect(() => resolveTriggerSpec({ ...spec, schema: 'Table"cache' })).toThrow(/Trigger schema "Table\\"cache" is not allowed/);
    expect(() => resolveTriggerSpec({ ...spec, channel: 'a;b' })).toThrow(/Notification channel "a;b" is not allowed/);
  });

  it('refuses sources without keys, with duplicate columns, empty filters or listed twice', () => {
    expect(() => resolveTriggerSpec({ ...spec, sources: [{ ...users, keyColumns: [] }] })).toThrow(/public.users has no key columns/);
    expect(() => resolveTriggerSpec({ ...spec, sources: [{ ...users, keyColumns: ['a', 'a'] }] })).toThrow(/lists "a" twice/);
    expect(() => resolveTriggerSpec({ ...spec, sources: [{ ...users, columns: [] }] })).toThrow(/empty column filter/);
    expect(() => resolveTriggerSpec({ ...spec, sources: [users, users] })).toThrow(/public.users is listed twice/);
    expect(() => resolveTriggerSpec({ ...spec, maxKeysPerStatement: 0 })).toThrow(/maxKeysPerStatement is 0; expected a positive integer/);
  });
});

describe('sourceTriggerDefinition', () => {
  it('gives different tables different function names even when their readable parts collide', () => {
    const resolved = resolveTriggerSpec(spec);
    const a = sourceTriggerDefinition({ schema: 'public', table: 'a_b', keyColumns: ['id'] }, resolved);
    const b = sourceTriggerDefinition({ schema: 'public_a', table: 'b', keyColumns: ['id'] }, resolved);
    expect(a.functionName).not.toBe(b.functionName);
    expect(a.functionName).toMatch(/^notify_public_a_b_[0-9a-f]{8}$/);
  });

  it('changes the definition hash when anything that reaches the SQL changes', () => {
    const resolved = resolveTriggerSpec(spec);
    const base = sourceTriggerDefinition(users, resolved).hash;
    expect(sourceTriggerDefinition(users, resolved).hash).toBe(base);
    expect(sourceTriggerDefinition({ ...users, keyColumns: ['user_id', 'name'] }, resolved).hash).not.toBe(base);
    expect(sourceTriggerDefinition({ ...users, columns: ['name'] }, resolved).hash).not.toBe(base);
    expect(sourceTriggerDefinition(users, { ...resolved, channel: 'other' }).hash).not.toBe(base);
  });

  it('refuses key columns whose names leave too little room for keys in a payload', () => {
    const manyLongColumns = Array.from({ length: 120 }, (_, index) => `${'c'.repeat(58)}${String(index).padStart(3, '0')}`);
    expect(() => sourceTriggerDefinition({ ...users, keyColumns: manyLongColumns }, resolveTriggerSpec(spec))).toThrow(/leave -?\d+ bytes for keys/);
  });

  it('picks a dollar-quote tag that a hostile identifier cannot close', () => {
    const hostile = { schema: 'public', table: 'x$tc$; DROP TABLE users; --', keyColumns: ['$tc$'] };
    const script = installTriggersScript({ ...spec, sources: [hostile] });
    expect(script).toContain('AS $tc1$');
    const body = script.slice(script.indexOf('AS $tc1$') + 8);
    expect(body.indexOf('$tc1$')).toBeGreaterThan(body.indexOf('x$tc$; DROP TABLE users; --'));
  });
});
