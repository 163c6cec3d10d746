import type { LlmTool } from "./llm-provider.js";

/**
 * invokeTool runs the tool a model called and returns its answer. A tool the
 * request does not offer, arguments that cannot be read (`args` throws) or a
 * tool that throws become `{"error": "…"}`: the model sees the error and can
 * correct its call, and the call goes on. Every provider's tool rounds,
 * streamed or not, answer calls through it.
 */
export async function invokeTool(tools: readonly LlmTool[], name: string, args: () => unknown): Promise<string> {
  try {
    const tool = tools.find((t) => t.name === name);
    if (!tool) throw new Error(`there is no tool named "${name}"`);
    return await tool.invoke(args());
  } catch (e) {
    return JSON.stringify({ error: e instanceof Error ? e.message : String(e) });
  }
}

/**
 * returnValue runs a generator to its end, dropping what it yields, and
 * returns what it returns: a provider's `complete` runs the same rounds as
 * its `stream`, with requests that yield nothing.
 */
export async function returnValue<T>(run: AsyncGenerator<unknown, T>): Promise<T> {
  for (;;) {
    const next = await run.next();
    if (next.done) return next.value;
  }
}
