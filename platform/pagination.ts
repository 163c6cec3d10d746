import { Code, ConnectError } from "@connectrpc/connect";

/** PageRequest is the AIP-158 pair every List request carries. */
export interface PageRequest {
  /** pageSize is the most items to return; 0 means the default. */
  readonly pageSize: number;
  /** pageToken is the opaque token of a previous page, or empty. */
  readonly pageToken: string;
}

/**
 * paginate returns one page of `items` and the token of the next. The token
 * is opaque to clients but carries the offset and a fingerprint of the
 * request's filters: a token replayed with other filters is rejected with
 * INVALID_ARGUMENT (AIP-158) instead of silently skipping items.
 */
export function paginate<T>(
  items: readonly T[],
  req: PageRequest,
  filterKey: string,
  defaultSize = 50,
): { page: T[]; nextPageToken: string } {
  const size = req.pageSize > 0 ? req.pageSize : defaultSize;
  let offset = 0;
  if (req.pageToken !== "") {
    const decoded = decodeToken(req.pageToken);
    if (!decoded || decoded.f !== filterKey) {
      throw new ConnectError("page_token is not valid for this request", Code.InvalidArgument);
    }
    offset = decoded.o;
  }
  const page = items.slice(offset, offset + size);
  const next = offset + size;
  return { page, nextPageToken: next < items.length ? encodeToken({ o: next, f: filterKey }) : "" };
}

interface Token {
  o: number;
  f: string;
}

function encodeToken(t: Token): string {
  return Buffer.from(JSON.stringify(t)).toString("base64url");
}

function decodeToken(s: string): Token | undefined {
  try {
    const t = JSON.parse(Buffer.from(s, "base64url").toString()) as Partial<Token>;
    return Number.isInteger(t.o) && (t.o as number) >= 0 && typeof t.f === "string" ? (t as Token) : undefined;
  } catch {
    return undefined;
  }
}

/** encodePageToken makes an opaque keyset token from the last id of a page. */
export function encodePageToken(lastId: string): string {
  return Buffer.from(JSON.stringify({ after: lastId })).toString("base64url");
}

/** decodePageToken reads a keyset token (undefined for the first page); a bad one is INVALID_ARGUMENT. */
export function decodePageToken(token: string): string | undefined {
  if (token === "") return undefined;
  try {
    const v = JSON.parse(Buffer.from(token, "base64url").toString()) as { after?: unknown };
    if (typeof v.after === "string" && /^[0-9a-f-]{1,64}$/.test(v.after)) return v.after;
  } catch {
    // fall through
  }
  throw new ConnectError("page_token is not valid for this request", Code.InvalidArgument);
}

