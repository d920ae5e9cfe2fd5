import { readFileSync } from 'node:fs';
import path from 'node:path';

/** One entry of a package-lock.json (lockfileVersion 3) `packages` map, as far as this module reads it. */
interface LockEntry {
  readonly version?: string;
  readonly dependencies?: Record<string, string>;
  readonly optionalDependencies?: Record<string, string>;
  readonly peerDependencies?: Record<string, string>;
  readonly dev?: boolean;
  readonly [field: string]: unknown;
}

/** What {@link consumerLockfile} needs to know about the packed tarball. */
export interface PackedPackage {
  readonly name: string;
  readonly version: string;
  /** The tarball's path relative to the consumer project (`file:` spec). */
  readonly tarball: string;
  readonly dependencies: Record<string, string>;
  readonly peerDependencies: Record<string, string>;
  readonly peerDependenciesMeta: Record<string, { optional?: boolean }>;
  readonly bin?: Record<string, string>;
}

/**
 * A package-lock.json for a consumer project that depends on the packed
 * tarball plus `extraDependencies` (optional peers the consumer chooses).
 *
 * Why: `npm install --offline` cannot resolve a version range without the
 * registry's metadata, which `npm ci` never caches (it installs from the
 * lock's exact versions and integrities). A lock whose entries are copied
 * from this repository's own lock names only versions whose tarballs `npm ci`
 * put in the npm cache, so `npm ci --offline` installs it with no network.
 * The entries are the closure of what Node's resolution reaches from the
 * consumer's dependencies through the repository's (valid) tree layout.
 */
export function consumerLockfile(repositoryLockPath: string, packed: PackedPackage, extraDependencies: readonly string[]): object {
  const repositoryLock = JSON.parse(readFileSync(repositoryLockPath, 'utf8')) as { packages: Record<string, LockEntry> };
  const entries = repositoryLock.packages;
  const chosen = new Map<string, LockEntry>();
  const missing: string[] = [];

  const resolveFrom = (fromPath: string, name: string): string | undefined => {
    // Node's lookup: node_modules folders of the requiring package, then each ancestor's.
    let base = fromPath;
    for (;;) {
      const candidate = base === '' ? `node_modules/${name}` : `${base}/node_modules/${name}`;
      if (entries[candidate]) return candidate;
      if (base === '') return undefined;
      const cut = base.lastIndexOf('/node_modules/');
      base = cut === -1 ? '' : base.slice(0, cut);
    }
  };
  const visit = (entryPath: string): void => {
    if (chosen.has(entryPath)) return;
    const entry = entries[entryPath]!;
    chosen.set(entryPath, entry);
    const names = [...Object.keys(entry.dependencies ?? {}), ...Object.keys(entry.optionalDependencies ?? {})];
    for (const name of names) {
      const found = resolveFrom(entryPath, name);
      if (found) visit(found);
      else if (!entry.optionalDependencies?.[name]) missing.push(`${name} (needed by ${entryPath})`);
    }
  };
  const roots = [...Object.keys(packed.dependencies), ...extraDependencies];
  for (const name of roots) {
    const found = resolveFrom('', name);
    if (found) visit(found);
    else missing.push(`${name} (a dependency of the consumer)`);
  }
  if (missing.length > 0) throw new Error(`the repository's lock lacks ${missing.join(', ')}: run npm ci in the repository`);

  const extraRanges = Object.fromEntries(extraDependencies.map((name) => [name, chosen.get(`node_modules/${name}`)?.version ?? '*']));
  const packages: Record<string, unknown> = {
    '': { name: 'consumer', version: '1.0.0', dependencies: { [packed.name]: `file:${packed.tarball}`, ...extraRanges } },
    [`node_modules/${packed.name}`]: {
      version: packed.version,
      resolved: `file:${packed.tarball}`,
      dependencies: packed.dependencies,
      peerDependencies: packed.peerDependencies,
      peerDependenciesMeta: packed.peerDependenciesMeta,
      ...(packed.bin ? { bin: packed.bin } : {}),
    },
  };
  for (const [entryPath, entry] of chosen) {
    const { dev: _dev, devOptional: _devOptional, peer: _peer, ...rest } = entry;
    packages[entryPath] = rest;
  }
  return { name: 'consumer', version: '1.0.0', lockfileVersion: 3, requires: true, packages };
}

/** The consumer project's package.json matching {@link consumerLockfile}'s root entry. */
export function consumerPackageJson(lock: object, type: 'module' | 'commonjs' = 'module'): object {
  const root = (lock as { packages: Record<string, { dependencies: Record<string, string> }> }).packages[''];
  return { name: 'consumer', version: '1.0.0', private: true, type, dependencies: root!.dependencies };
}

/** The repository root (where package.json and package-lock.json are). */
export const repositoryRoot = path.resolve(import.meta.dirname, '../../..');
