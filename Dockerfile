# syntax=docker/dockerfile:1
# cascaded: multi-stage build. The build stage compiles TypeScript and the
# native better-sqlite3 addon; the runtime stage has production dependencies
# only and runs as the unprivileged "node" user.

FROM node:20-bookworm AS build
WORKDIR /src
# node-gyp builds better-sqlite3 from source.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY native ./native
COPY test ./test
COPY bench ./bench
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    STATE_DIRECTORY=/var/lib/cascaded
WORKDIR /opt/cascaded
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/dist/native ./dist/native
COPY config ./config
RUN mkdir -p /var/lib/cascaded && chown node:node /var/lib/cascaded
USER node
VOLUME ["/var/lib/cascaded"]
# SIP (UDP and TCP) and the HTTPS API.
EXPOSE 5060/udp 5060/tcp 8443/tcp
# The API certificate may be self-signed: the check is liveness, not identity.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "require('https').get('https://127.0.0.1:8443/healthz',{rejectUnauthorized:false,timeout:4000},r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1))"]
ENTRYPOINT ["node", "--expose-gc", "dist/src/cli/cascaded.js"]
# The demo: the simulated national network in the same process. For a real
# network, mount a config and run: --config /etc/cascaded/cascaded.yaml
CMD ["--config", "config/demo.yaml", "--with-sim"]
