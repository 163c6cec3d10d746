import { buildAgentServer } from "../../platform/agents/agent-server.js";

/** build assembles the V2 marketing-automation agent service: 54 agents in 9 departments, prompts as files. */
export function build(): ReturnType<typeof buildAgentServer> {
  return buildAgentServer({ catalogDir: import.meta.dirname });
}
