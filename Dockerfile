# syntax=docker/dockerfile:1.7
# One image for every service of the mesh; the service is the command:
#   docker run --read-only --tmpfs /tmp raptorflow serve orchestrator
# (or RAPTORFLOW_SERVICE=<service> for the health check when started otherwise).
# Linted by container/dockerfile.test.ts; the base image's exact version is pinned in both stages.

# Dependencies: production only, no install scripts (gen/ is committed; proto-deps/ is for development).
FROM node:24.22.3-trixie-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# Runtime: Node.js and the code, no npm, no build tools, a non-root user.
FROM node:24.22.3-trixie-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack
# Amazon RDS's CA bundle, so TLS to the database is verified (NODE_EXTRA_CA_CERTS points here on AWS).
ADD --chmod=444 https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem /app/certs/rds-global-bundle.pem
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY bin ./bin
COPY gen ./gen
COPY mesh ./mesh
COPY platform ./platform
COPY services ./services
COPY container ./container
USER node
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["node", "container/healthcheck.ts"]
ENTRYPOINT ["node", "bin/raptorflow.js"]
CMD ["help"]
