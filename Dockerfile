# The tablecache daemon (and CLI). Build and run:
#   docker build -t tablecache .
#   docker run --rm -v $PWD/tablecache.yaml:/etc/tablecache/tablecache.yaml:ro -p 9464:9464 tablecache
# The default command runs `tablecache daemon` on /etc/tablecache/tablecache.yaml;
# any other command is passed to the CLI (`docker run … tablecache verify --config …`).
FROM node:20-slim

WORKDIR /app
ENV NODE_ENV=production

# Dependencies first, so that a source change does not reinstall them. tsx is
# a runtime dependency: the CLI is TypeScript compiled on the fly, with no
# build step, so --omit=dev keeps everything it needs.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force

COPY bin ./bin
COPY cli ./cli
COPY daemon ./daemon
COPY lib ./lib
COPY sql-triggers ./sql-triggers
COPY tsconfig.json ./

# Postgres and Redis refuse nothing to root, but the daemon needs no privilege:
# run as the image's unprivileged user.
USER node

# /healthz, /readyz and /metrics (daemon.http.port; set daemon.http.host to 0.0.0.0 in a container).
EXPOSE 9464

# The daemon handles SIGTERM itself: it stops listening, finishes the batch in
# flight, releases its writer leases and exits 0 within 10 s (Docker's default
# stop timeout). Exec form, so that node receives the signal.
ENTRYPOINT ["node", "bin/tablecache.js"]
CMD ["daemon", "--config", "/etc/tablecache/tablecache.yaml"]
