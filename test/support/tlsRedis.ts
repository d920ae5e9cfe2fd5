import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './privateServers.ts';
import { waitFor } from './waitFor.ts';

/** PEM files of a throw-away CA and a server certificate it signed (for `localhost` and 127.0.0.1), in a temporary directory. */
export interface TestCertificates {
  readonly directory: string;
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** Deletes the directory. */
  remove(): void;
}

function openssl(directory: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: directory, stdio: 'ignore' });
}

/**
 * Makes a self-signed CA and a server certificate signed by it with openssl,
 * so TLS tests need no files in the repository (and none that expire).
 */
export function createTestCertificates(): TestCertificates {
  const directory = mkdtempSync(path.join(tmpdir(), 'tc-tls-'));
  writeFileSync(path.join(directory, 'server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl(directory, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=tablecache test CA');
  openssl(directory, 'req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  openssl(directory, 'x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'server.ext');
  return {
    directory,
    caFile: path.join(directory, 'ca.crt'),
    certFile: path.join(directory, 'server.crt'),
    keyFile: path.join(directory, 'server.key'),
    remove: () => rmSync(directory, { recursive: true, force: true }),
  };
}

/** A redis-server of one test file's own that speaks only TLS. */
export interface TlsRedis {
  readonly port: number;
  /** Kills the server (it keeps nothing on disk). */
  stop(): Promise<void>;
}

/**
 * Starts a redis-server without persistence whose only port (a free one) is
 * TLS with `certificates`, plain TCP off, with `args` added
 * (`--requirepass`, `--tls-auth-clients yes`). Resolves once the server logs
 * that it accepts connections (a plain PING probe cannot tell).
 */
export async function startTlsRedis(certificates: TestCertificates, args: readonly string[] = []): Promise<TlsRedis> {
  const port = await freePort();
  const tls = ['--tls-cert-file', certificates.certFile, '--tls-key-file', certificates.keyFile, '--tls-ca-cert-file', certificates.caFile, '--tls-auth-clients', 'no'];
  const server = spawn('redis-server', ['--port', '0', '--tls-port', String(port), ...tls, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  server.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  server.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  const stop = async () => {
    if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
    await exited;
  };
  try {
    await waitFor(`the TLS redis-server on port ${port} to accept connections`, () => {
      if (server.exitCode !== null) throw new Error(`redis-server exited: ${output.slice(-500)}`);
      return output.includes('Ready to accept connections');
    });
  } catch (error) {
    await stop();
    throw error;
  }
  return { port, stop };
}
