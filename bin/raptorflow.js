#!/usr/bin/env node
// The `raptorflow` command. The code is TypeScript run through tsx's loader,
// so there is no build step between a clone and a running mesh.
import { register } from "tsx/esm/api";

register();
const { main } = await import("./cli.ts");
const argv = process.argv.slice(2);
const code = await main(argv);
// A server that has drained is finished: exit now instead of waiting on whatever handle a dropped
// database or Redis connection may still hold open (the process would otherwise linger, unserving).
if (["serve", "gateway", "start"].includes(argv[0])) process.exit(code);
process.exitCode = code;
