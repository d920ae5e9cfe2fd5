import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { consumerLockfile, consumerPackageJson, repositoryRoot } from './consumerLockfile.ts';

const run = promisify(execFile);

/** What a command printed and how it ended. */
export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `file args` in `cwd`, never throwing for a non-zero exit (the caller asserts on it). */
export async function runCommand(file: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<CommandResult> {
  try {
    const { stdout, stderr } = await run(file, args, { cwd, env, maxBuffer: 64 * 1024 * 1024, timeout: 180_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number | string; stdout?: string; stderr?: string; message: string };
    return { code: typeof failed.code === 'number' ? failed.code : -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? failed.message };
  }
}

/** A temporary project with the packed tarball installed, as a user gets it. */
export interface PackedProject {
  /** The project folder (package.json, node_modules, the consumer's files). */
  readonly directory: string;
  /** Writes a file into the project. */
  write(file: string, text: string): string;
  /** Removes the project. */
  remove(): void;
}

/** Why the project could not be installed without the network, or null when it was. */
export type OfflineInstall = { readonly project: PackedProject; readonly skipReason: null } | { readonly project: null; readonly skipReason: string };

/** A tarball made by `npm pack` of this repository, in a temporary folder. */
export interface PackedTarball {
  readonly file: string;
  /** Removes the folder with the tarball and every project installed from it. */
  remove(): void;
}

/** Packs this repository (`npm pack`, whose prepack runs the build) into a new temporary folder. */
export async function packRepository(): Promise<PackedTarball> {
  const root = mkdtempSync(path.join(tmpdir(), 'tc-package-'));
  const remove = () => rmSync(root, { recursive: true, force: true });
  const packed = await runCommand('npm', ['pack', '--pack-destination', root, '--json'], repositoryRoot);
  if (packed.code !== 0) {
    remove();
    throw new Error(`npm pack failed (exit ${packed.code}):\n${packed.stderr}\n${packed.stdout}`);
  }
  const [{ filename }] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as [{ filename: string }];
  return { file: path.join(root, filename), remove };
}

/**
 * Installs the packed tarball, with the optional peer dependencies `peers`,
 * into a new project `name` beside the tarball, without the network: `npm ci
 * --offline` from a lock whose versions `npm ci` of this repository put in
 * the npm cache (see {@link consumerLockfile}). Only when a package is not
 * in that cache does it give up, with `skipReason` saying which.
 */
export async function installPackedProject(tarball: PackedTarball, name: string, peers: readonly string[]): Promise<OfflineInstall> {
  const root = path.dirname(tarball.file);
  const directory = path.join(root, name);
  mkdirSync(directory);
  const remove = () => rmSync(directory, { recursive: true, force: true });
  const manifest = JSON.parse(readFileSync(path.join(repositoryRoot, 'package.json'), 'utf8')) as {
    name: string;
    version: string;
    dependencies: Record<string, string>;
    peerDependencies: Record<string, string>;
    peerDependenciesMeta: Record<string, { optional?: boolean }>;
    bin: Record<string, string>;
  };
  const lock = consumerLockfile(path.join(repositoryRoot, 'package-lock.json'), { ...manifest, tarball: path.relative(directory, tarball.file) }, peers);
  writeFileSync(path.join(directory, 'package.json'), JSON.stringify(consumerPackageJson(lock), null, 2));
  writeFileSync(path.join(directory, 'package-lock.json'), JSON.stringify(lock, null, 2));
  const installed = await runCommand('npm', ['ci', '--offline', '--omit=dev', '--no-audit', '--no-fund'], directory);
  if (installed.code !== 0) {
    remove();
    if (/ENOTCACHED|only-if-cached/.test(installed.stderr)) {
      return { project: null, skipReason: `a package is not in the npm cache, and these checks never use the network (run npm ci in the repository first): ${installed.stderr.split('\n').find((line) => /ENOTCACHED|only-if-cached/.test(line) && line.includes('http')) ?? installed.stderr}` };
    }
    throw new Error(`npm ci --offline of the packed tarball failed (exit ${installed.code}):\n${installed.stderr}`);
  }
  return {
    skipReason: null,
    project: {
      directory,
      write(file, text) {
        const target = path.join(directory, file);
        mkdirSync(path.dirname(target), { recursive: true });
        writeFileSync(target, text);
        return target;
      },
      remove,
    },
  };
}
