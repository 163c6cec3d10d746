import { clone, isFieldSet } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { uuidv7 } from "uuidv7";
import { IcpSchema, IcpService, type Icp } from "../../gen/raptorflow/v1/icp_pb.js";
import { paginate } from "../../platform/pagination.js";

/** IcpStore keeps ideal customer profiles; in memory until the data-layer issue adds PostgreSQL. */
export interface IcpStore {
  /** get returns a profile by name. */
  get(name: string): Icp | undefined;
  /** put inserts or replaces. */
  put(icp: Icp): void;
  /** delete removes; false when absent. */
  delete(name: string): boolean;
  /** list returns profiles newest first. */
  list(): Icp[];
}

/** createMemoryIcpStore keeps profiles in a Map. */
export function createMemoryIcpStore(): IcpStore {
  const m = new Map<string, Icp>();
  return {
    get: (n) => {
      const v = m.get(n);
      return v && clone(IcpSchema, v);
    },
    put: (icp) => void m.set(icp.name, clone(IcpSchema, icp)),
    delete: (n) => m.delete(n),
    list: () => [...m.values()].reverse().map((v) => clone(IcpSchema, v)),
  };
}

const mutable = ["display_name", "industry", "company_size", "pain_points", "attributes"] as const;
const camel: Record<(typeof mutable)[number], "displayName" | "industry" | "companySize" | "painPoints" | "attributes"> = {
  display_name: "displayName",
  industry: "industry",
  company_size: "companySize",
  pain_points: "painPoints",
  attributes: "attributes",
};

/** createIcpServiceImpl implements `raptorflow.v1.IcpService` (AIP standard methods) over a store. */
export function createIcpServiceImpl(store: IcpStore): ServiceImpl<typeof IcpService> {
  const must = (name: string): Icp => {
    const icp = store.get(name);
    if (!icp) throw new ConnectError(`icp "${name}" not found`, Code.NotFound);
    return icp;
  };
  return {
    createIcp(req) {
      const now = timestampNow();
      const icp = clone(IcpSchema, req.icp!);
      Object.assign(icp, { name: `icps/${uuidv7()}`, createTime: now, updateTime: now });
      store.put(icp);
      return icp;
    },
    getIcp: (req) => must(req.name),
    listIcps(req) {
      const { page, nextPageToken } = paginate(store.list(), req, "icps");
      return { icps: page, nextPageToken };
    },
    updateIcp(req) {
      const patch = req.icp!;
      const icp = must(patch.name);
      // AIP-134: without a mask, every field the client set is changed.
      const paths = req.updateMask?.paths.length ? req.updateMask.paths : mutable.filter((p) => isFieldSet(patch, IcpSchema.field[camel[p]]));
      for (const p of paths) {
        if (!(mutable as readonly string[]).includes(p)) {
          throw new ConnectError(`update_mask: "${p}" is not a field that can be updated`, Code.InvalidArgument);
        }
        const k = camel[p as (typeof mutable)[number]];
        (icp as unknown as Record<string, unknown>)[k] = (patch as unknown as Record<string, unknown>)[k];
      }
      icp.updateTime = timestampNow();
      store.put(icp);
      return icp;
    },
    deleteIcp(req) {
      if (!store.delete(req.name)) throw new ConnectError(`icp "${req.name}" not found`, Code.NotFound);
      return {};
    },
  };
}
