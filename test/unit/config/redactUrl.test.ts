import { describe, expect, it } from 'vitest';
import { redactUrl } from '../../../daemon/config/redactUrl.ts';

describe('redactUrl', () => {
  it('hides the password and secret query parameters, keeping everything else', () => {
    expect(redactUrl('postgres://app:s3cret@db:5432/app')).toBe('postgres://app:***@db:5432/app');
    expect(redactUrl('rediss://default:pw@cache:6380/0')).toBe('rediss://default:***@cache:6380/0');
    expect(redactUrl('postgres://db/app?sslmode=require&password=s3cret')).toBe('postgres://db/app?sslmode=require&password=***');
    expect(redactUrl('postgres://app@db/app')).toBe('postgres://app@db/app');
  });

  it('hides the password even in text that is not a valid URL', () => {
    const redacted = redactUrl('postgres://app:s3cret@db:notaport/app');
    expect(redacted).not.toContain('s3cret');
    expect(redacted).toBe('postgres://app:***@db:notaport/app');
  });
});
