import { z } from "zod";
import type { LlmTool } from "../llm/llm-provider.js";
import { numericTools } from "./index.js";

/**
 * llmTools are the numeric tools in the form providers hand to models: name,
 * description, JSON Schema parameters (from the tools' zod schemas) and the
 * function that answers.
 */
export const llmTools: readonly LlmTool[] = numericTools.map((t) => ({
  name: t.name,
  description: t.description,
  parameters: z.toJSONSchema(t.schema as z.ZodType) as Record<string, unknown>,
  invoke: async (args: unknown) => String(await (t as { invoke(a: unknown): Promise<unknown> }).invoke(args)),
}));
