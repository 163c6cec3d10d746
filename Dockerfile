# One image for every service of the mesh; the service is the command:
#   docker run raptorflow serve orchestrator
FROM node:24-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# --ignore-scripts: the postinstall builds proto-deps/ for development only (gen/ is committed).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund
COPY bin ./bin
COPY gen ./gen
COPY mesh ./mesh
COPY platform ./platform
COPY services ./services
COPY tsconfig.json ./
USER node
ENTRYPOINT ["node", "bin/raptorflow.js"]
CMD ["--help"]
