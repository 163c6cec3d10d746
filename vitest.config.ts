import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["**/*.test.ts"],
    exclude: ["node_modules/**", "gen/**", "proto-deps/**"],
    testTimeout: 30_000,
    // Hooks start whole meshes (five processes, four embedded databases); with the reliability
    // scenarios running beside them on a 2-core machine a start can take well over a minute.
    hookTimeout: 180_000,
    env: { NODE_ENV: "test" },
  },
});
