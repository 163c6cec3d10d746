import { getOption, hasOption, type DescField, type DescMethod, type DescService } from "@bufbuild/protobuf";
import type { Transport } from "@connectrpc/connect";
import { http } from "../../gen/google/api/annotations_pb.js";
import type { HttpRule } from "../../gen/google/api/http_pb.js";
import { http_response } from "../../gen/raptorflow/api/v1/annotations_pb.js";
import { compilePathTemplate, type PathTemplate } from "./path-template.js";

/** TranscodedService is a gRPC service the gateway exposes over REST, and where to send its calls. */
export interface TranscodedService {
  /** service is the descriptor whose `google.api.http` options define the routes. */
  readonly service: DescService;
  /** transport reaches the upstream (grpc-js in the mesh). */
  readonly transport: Transport;
}

/** Binding is one REST route of one RPC, with everything precomputed that can be. */
export interface Binding {
  /** httpMethod is GET, POST, … (a custom kind in upper case). */
  readonly httpMethod: string;
  /** template is the compiled path. */
  readonly template: PathTemplate;
  /** body is "", "*" or a top-level field name. */
  readonly body: string;
  /** bodyField is the descriptor of `body` when it names a field. */
  readonly bodyField: DescField | undefined;
  /** responseBody is "" or the response field to return. */
  readonly responseBody: string;
  /** responseField is the descriptor of `response_body` when set. */
  readonly responseField: DescField | undefined;
  /** successCode is the HTTP status of a successful call (200 unless the contract says otherwise). */
  readonly successCode: number;
  /** method is the RPC. */
  readonly method: DescMethod;
  /** transport reaches its service. */
  readonly transport: Transport;
}

/**
 * bindingsOf reads the `google.api.http` option (with its
 * additional_bindings) of every method of the services: the REST surface
 * comes from the contract, never from hand-written routes. A rule that names
 * a body or response field the message does not have is an error at start-up.
 */
export function bindingsOf(services: readonly TranscodedService[]): Binding[] {
  const out: Binding[] = [];
  for (const { service, transport } of services) {
    for (const method of service.methods) {
      if (!hasOption(method, http)) continue;
      const rule = getOption(method, http);
      // The contract's success code applies to the primary binding; the
      // additional bindings carry older routes whose clients expect 200.
      const primary = bindingOf(rule, method, transport, successCodeOf(method));
      if (primary) out.push(primary);
      for (const r of rule.additionalBindings) {
        const b = bindingOf(r, method, transport, 200);
        if (b) out.push(b);
      }
    }
  }
  return out;
}

/** successCodeOf reads `(raptorflow.api.v1.http_response).success_code`; 200 when unset. */
export function successCodeOf(method: DescMethod): number {
  if (!hasOption(method, http_response)) return 200;
  const code = getOption(method, http_response).successCode;
  return code >= 200 && code < 300 ? code : 200;
}

function bindingOf(rule: HttpRule, method: DescMethod, transport: Transport, successCode: number): Binding | undefined {
  const p = rule.pattern;
  let httpMethod: string;
  let path: string;
  switch (p.case) {
    case "get":
    case "put":
    case "post":
    case "delete":
    case "patch":
      httpMethod = p.case.toUpperCase();
      path = p.value;
      break;
    case "custom":
      httpMethod = p.value.kind.toUpperCase();
      path = p.value.path;
      break;
    default:
      return undefined;
  }
  const where = `${method.parent.typeName}.${method.name} (${httpMethod} ${path})`;
  const field = (message: typeof method.input, name: string, what: string): DescField | undefined => {
    if (name === "" || name === "*") return undefined;
    const f = message.fields.find((x) => x.name === name);
    if (!f) throw new Error(`${where}: ${what} "${name}" is not a field of ${message.typeName}`);
    return f;
  };
  return {
    httpMethod,
    template: compilePathTemplate(path),
    body: rule.body,
    bodyField: field(method.input, rule.body, "body"),
    responseBody: rule.responseBody,
    responseField: field(method.output, rule.responseBody, "response_body"),
    successCode,
    method,
    transport,
  };
}
