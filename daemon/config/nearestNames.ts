function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * `candidates` ordered by how close they are to `name` (edit distance,
 * ignoring case; ties alphabetically), at most `limit` of them: for "did you
 * mean" lists in error messages.
 *
 * @example nearestNames('user', ['cities', 'users', 'orders']) // ['users', 'orders', 'cities']
 */
export function nearestNames(name: string, candidates: Iterable<string>, limit = 10): string[] {
  const target = name.toLowerCase();
  return [...new Set(candidates)]
    .map((candidate) => ({ candidate, distance: editDistance(target, candidate.toLowerCase()) }))
    .sort((x, y) => x.distance - y.distance || x.candidate.localeCompare(y.candidate))
    .slice(0, limit)
    .map(({ candidate }) => candidate);
}
