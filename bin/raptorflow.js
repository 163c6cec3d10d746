#!/usr/bin/env node
// The `raptorflow` command. The code is TypeScript run through tsx's loader,
// so there is no build step between a clone and a running mesh.
import { register } from "tsx/esm/api";

register();
const { main } = await import("./cli.ts");
process.exitCode = await main(process.argv.slice(2));
