import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { parseConfig } from '../../../daemon/config/loadConfig.ts';

// No Docker engine runs these files here: they are checked as text, against the repository.
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

interface Service {
  image?: string;
  build?: string;
  command?: string[];
  ports?: string[];
  volumes?: string[];
  environment?: Record<string, string>;
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  restart?: string;
}

const compose = YAML.parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Service> };
const services = compose.services;

describe('docker-compose.yml', () => {
  it('brings up Postgres, Redis, the trigger install and the daemon', () => {
    expect(Object.keys(services).sort()).toEqual(['daemon', 'postgres', 'redis', 'triggers']);
  });

  it('gives every long-running service a healthcheck', () => {
    for (const name of ['postgres', 'redis', 'daemon']) expect(services[name]!.healthcheck?.test.length, name).toBeGreaterThan(1);
    expect(services['daemon']!.healthcheck!.test.join(' ')).toContain('http://127.0.0.1:9464/readyz');
  });

  it('starts the daemon after the triggers are installed and Redis is healthy, the install after Postgres is healthy', () => {
    expect(services['triggers']!.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
    expect(services['daemon']!.depends_on).toEqual({
      triggers: { condition: 'service_completed_successfully' },
      redis: { condition: 'service_healthy' },
    });
    expect(services['triggers']!.command!.slice(0, 2)).toEqual(['triggers', 'install']);
    expect(services['daemon']!.command![0]).toBe('daemon');
  });

  it('mounts files that exist: the seed SQL into Postgres, the configuration into the tablecache containers', () => {
    for (const service of Object.values(services)) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0]!;
        expect(existsSync(path.join(ROOT, source)), source).toBe(true);
      }
    }
    expect(services['postgres']!.volumes).toContain('./docker/postgres-seed.sql:/docker-entrypoint-initdb.d/10-seed.sql:ro');
  });

  it('publishes ports on 127.0.0.1 only', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const port of service.ports ?? []) expect(port, name).toMatch(/^127\.0\.0\.1:/);
    }
  });

  it('gives the daemon a configuration that is valid with the environment compose sets, serving HTTP on the published port', () => {
    const daemon = services['daemon']!;
    const config = parseConfig(YAML.parse(read('docker/tablecache.yaml')), { file: path.join(ROOT, 'docker/tablecache.yaml'), env: daemon.environment! });
    expect(config.daemon.http).toEqual({ host: '0.0.0.0', port: 9464 });
    expect(daemon.ports).toEqual([`127.0.0.1:${config.daemon.http.port}:${config.daemon.http.port}`]);
    expect(config.postgres.url).toBe('postgres://postgres:postgres@postgres:5432/postgres');
    expect(config.tables.map((table) => table.name)).toEqual(['users']);
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');

  it('builds on node:20-slim and runs the CLI as an unprivileged user', () => {
    expect(dockerfile).toMatch(/^FROM node:20-slim$/m);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node", "node_modules\/tablecache\/dist\/cli\/bin\.js"\]$/m);
    expect(dockerfile).toMatch(/^CMD \["daemon", "--config", "\/etc\/tablecache\/tablecache\.yaml"\]$/m);
  });

  it('copies folders that exist, and the .dockerignore keeps none of them out', () => {
    const ignored = read('.dockerignore').split('\n').filter((line) => line !== '' && !line.startsWith('#'));
    // COPY --from=build copies from the build stage, not from the repository.
    const copied = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((match) => match[1]!.split(' '));
    expect(copied).toContain('daemon');
    for (const source of copied) {
      expect(existsSync(path.join(ROOT, source)), source).toBe(true);
      expect(ignored, source).not.toContain(source);
    }
  });

  it('runs the packed package with the daemon\'s optional peer dependencies, without tsx', () => {
    const pkg = JSON.parse(read('package.json')) as { dependencies: Record<string, string>; peerDependencies: Record<string, string> };
    expect(dockerfile).toContain('npm run build');
    expect(dockerfile).toContain('npm pack');
    expect(dockerfile).toContain('npm install --omit=dev --no-audit --no-fund /tmp/tablecache.tgz $(cat /tmp/daemon-packages.txt)');
    expect(Object.keys(pkg.peerDependencies)).toEqual(expect.arrayContaining(['pg', 'pg-listen', 'zod', 'prom-client', 'pino', 'commander', 'yaml']));
    expect(Object.keys(pkg.dependencies)).not.toContain('tsx');
  });
});
