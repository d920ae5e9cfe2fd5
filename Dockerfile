# The tablecache daemon (and CLI). Build and run:
#   docker build -t tablecache .
#   docker run --rm -v $PWD/tablecache.yaml:/etc/tablecache/tablecache.yaml:ro -p 9464:9464 tablecache
# The default command runs `tablecache daemon` on /etc/tablecache/tablecache.yaml;
# any other command is passed to the CLI (`docker run … tablecache verify --config …`).

# Build stage: compile to dist/ and pack the package exactly as npm would publish it.
FROM node:20-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY cli ./cli
COPY daemon ./daemon
COPY lib ./lib
COPY sql-triggers ./sql-triggers
# The daemon's packages are optional peer dependencies of tablecache (a
# reader-only service does not need them): name them at the lock's versions.
RUN npm run build \
 && npm pack --ignore-scripts \
 && mv tablecache-*.tgz tablecache.tgz \
 && node -e "const lock = require('./package-lock.json'); const pkg = require('./package.json'); console.log(Object.keys(pkg.peerDependencies).filter((name) => name !== 'pino-pretty').map((name) => name + '@' + lock.packages['node_modules/' + name].version).join(' '))" > daemon-packages.txt

# Runtime stage: the packed tarball and the daemon's packages, no TypeScript, no tsx.
FROM node:20-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /src/tablecache.tgz /src/daemon-packages.txt /tmp/
RUN npm install --omit=dev --no-audit --no-fund /tmp/tablecache.tgz $(cat /tmp/daemon-packages.txt) \
 && rm /tmp/tablecache.tgz /tmp/daemon-packages.txt \
 && npm cache clean --force

# Postgres and Redis refuse nothing to root, but the daemon needs no privilege:
# run as the image's unprivileged user.
USER node

# /healthz, /readyz and /metrics (daemon.http.port; set daemon.http.host to 0.0.0.0 in a container).
EXPOSE 9464

# The daemon handles SIGTERM itself: it stops listening, finishes the batch in
# flight, releases its writer leases and exits 0 within 10 s (Docker's default
# stop timeout). Exec form, so that node receives the signal.
ENTRYPOINT ["node", "node_modules/tablecache/dist/cli/bin.js"]
CMD ["daemon", "--config", "/etc/tablecache/tablecache.yaml"]
