const REDACTED = '***';
const SECRET_PARAMETERS = new Set(['password', 'pass', 'secret', 'sslpassword', 'token']);

/**
 * A connection URL fit to print: the password (`user:secret@`) and secret
 * query parameters (`?password=…`) replaced by `***`. Text that is not a URL
 * is still stripped of anything between `:` and `@` after `//`, so a mistyped
 * URL in an error message leaks nothing either.
 *
 * @example redactUrl('postgres://app:s3cret@db:5432/app') // 'postgres://app:***@db:5432/app'
 */
export function redactUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return url.replace(/\/\/([^/@:]*):[^/@]*@/, `//$1:${REDACTED}@`);
  }
  if (parsed.password !== '') parsed.password = REDACTED;
  for (const name of [...parsed.searchParams.keys()]) {
    if (SECRET_PARAMETERS.has(name.toLowerCase())) parsed.searchParams.set(name, REDACTED);
  }
  return parsed.toString();
}
