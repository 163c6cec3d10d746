import { context, createContextKey, type Context } from "@opentelemetry/api";

/** CallFields name the call a line of log belongs to; the logger adds them to every line logged during the call. */
export interface CallFields {
  /** requestId is the request's `x-request-id`. */
  requestId?: string;
  /** organization is the organization the call acts for (an id, never a person). */
  organization?: string;
  /** rpc is `package.Service/Method`. */
  rpc?: string;
}

const callFieldsKey = createContextKey("raptorflow call fields");

/** withCallFields returns a context that carries a call's log fields (with its span, the same context). */
export function withCallFields(ctx: Context, fields: CallFields): Context {
  return ctx.setValue(callFieldsKey, fields);
}

/** callFields are the fields of the call running now, if any. */
export function callFields(ctx: Context = context.active()): CallFields | undefined {
  return ctx.getValue(callFieldsKey) as CallFields | undefined;
}

/**
 * bindIterable runs every step of an async iterable in `ctx`, and calls
 * `onEnd` once when it ends: done, failed (with the error) or abandoned by
 * its reader. A generator's body runs in the context of whoever calls
 * `next()`, so a streaming handler would otherwise lose its call's span
 * after the first `await`.
 */
export function bindIterable<T>(iterable: AsyncIterable<T>, ctx: Context, onEnd: (error?: unknown) => void): AsyncIterable<T> {
  let ended = false;
  const end = (error?: unknown): void => {
    if (ended) return;
    ended = true;
    onEnd(error);
  };
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      const it = context.with(ctx, () => iterable[Symbol.asyncIterator]());
      return {
        async next() {
          try {
            const r = await context.with(ctx, () => it.next());
            if (r.done) end();
            return r;
          } catch (e) {
            end(e);
            throw e;
          }
        },
        async return(value?: unknown) {
          try {
            return (await context.with(ctx, () => it.return?.(value))) ?? { done: true, value: undefined };
          } finally {
            end();
          }
        },
        async throw(e?: unknown) {
          try {
            if (!it.throw) throw e;
            return await context.with(ctx, () => it.throw!(e));
          } finally {
            end(e);
          }
        },
      };
    },
  };
}
