import { create, type DescMessage, type JsonObject, type JsonValue, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { createValidator } from "@bufbuild/protovalidate";
import { Code, ConnectError } from "@connectrpc/connect";
import { uuidv7 } from "uuidv7";
import type { AgentResult } from "../../gen/raptorflow/agent/v1/agent_pb.js";
import type { UnitEconomicsSchema } from "../../gen/raptorflow/v1/monetization_model_pb.js";
import { OriginSchema, type Origin } from "../../gen/raptorflow/v1/origin_pb.js";
import type { AgentResultHooks, KeepScope } from "../../platform/agents/agent-service.js";
import type { AgentDefinition } from "../../platform/agents/catalog.js";
import type { RecordStore } from "../../platform/resources/resource-service.js";
import { v1Resources, type V1Collection, type V1Stores } from "./v1-resources.js";

type Schema<C extends V1Collection> = (typeof v1Resources)[C][1];
type Init<C extends V1Collection> = Omit<MessageInitShape<Schema<C>>, "$typeName">;

/** Keeping is what a mapping may do while it turns one result into records. */
interface Keeping {
  /** output is the agent's validated (and finished) answer. */
  readonly output: JsonObject;
  /** scope is the caller's organization, the run, the request and parameters. */
  readonly scope: KeepScope;
  /** add creates a record of a collection, with its origin, and returns its name. */
  add<C extends V1Collection>(collection: C, init: Init<C>): Promise<string>;
  /** change replaces a record that already exists (the cohort whose tags are set) and returns its name. */
  change<C extends V1Collection>(collection: C, record: MessageShape<Schema<C>>): Promise<string>;
  /** madeInRun is the newest record of a collection that an earlier step of this run made, if any. */
  madeInRun(collection: V1Collection): Promise<string | undefined>;
  /** find returns a record of the caller's organization, if it exists. */
  find<C extends V1Collection>(collection: C, name: string): Promise<MessageShape<Schema<C>> | undefined>;
}

/** KeepResult turns one V1 agent's answer into its records and returns their names. */
type KeepResult = (k: Keeping) => Promise<string[]>;

const obj = (v: JsonValue | undefined): JsonObject => (v !== null && typeof v === "object" && !Array.isArray(v) ? v : {});
const arr = (v: JsonValue | undefined): JsonValue[] => (Array.isArray(v) ? v : []);
const objs = (v: JsonValue | undefined): JsonObject[] => arr(v).map(obj);
const text = (v: JsonValue | undefined): string => (typeof v === "string" ? v.replace(/\s+/g, " ").trim() : "");
const num = (v: JsonValue | undefined): number => (typeof v === "number" && Number.isFinite(v) ? v : 0);

/** clip cuts a string to the length its record field allows, marking the cut. */
function clip(s: string, max: number): string {
  return [...s].length <= max ? s : `${[...s].slice(0, max - 1).join("")}…`;
}

/** strings clips a list of strings to a field's limits (items and length), dropping empty ones. */
function strings(v: JsonValue | undefined, maxItems: number, maxLength: number): string[] {
  return arr(v)
    .map(text)
    .filter(Boolean)
    .slice(0, maxItems)
    .map((s) => clip(s, maxLength));
}

/** titled is a record's display name: the label and the first non-empty subject, or else the request, within 200 characters. */
function titled(label: string, scope: KeepScope, ...subjects: (JsonValue | undefined)[]): string {
  const subject = subjects.map(text).find(Boolean) ?? text(scope.input);
  return clip(`${label}: ${subject}`, 200);
}

/** parameter is a string parameter of the call. */
const parameter = (scope: KeepScope, key: string): string => text(scope.parameters[key]);

/** insight keeps an answer as an insight of a kind, about the first non-empty subject. */
const insight =
  (kind: string, label: string, subjectOf: (k: Keeping) => (JsonValue | undefined)[]): KeepResult =>
  async (k) => {
    const subjects = subjectOf(k);
    const subject = subjects.map(text).find(Boolean) ?? text(k.scope.input);
    return [await k.add("insights", { displayName: titled(label, k.scope, subject), kind, subject: clip(subject, 2000), attributes: k.output })];
  };

/** unitEconomics reads the computed unit economics (those marked `not computed` stay unset). */
function unitEconomics(output: JsonObject, scope: KeepScope): Omit<MessageInitShape<typeof UnitEconomicsSchema>, "$typeName"> {
  const known = new Map(
    objs(output.unit_economics)
      .filter((u) => !text(u.formula_inputs).startsWith("not computed"))
      .map((u) => [text(u.metric), num(u.value)]),
  );
  const churn = obj(scope.parameters.customer_metrics).monthly_churn_rate;
  return {
    arpuUsd: known.get("arpu"),
    grossMargin: known.get("gross_margin"),
    monthlyChurnRate: typeof churn === "number" ? churn : undefined,
    cacUsd: known.get("cac"),
    ltvUsd: known.get("ltv"),
    ltvToCac: known.get("ltv_to_cac"),
    paybackMonths: known.get("payback_months"),
  };
}

/**
 * keepers map each V1 agent to the records its results become. Every record
 * keeps the agent's whole answer in `attributes` and its origin (agent, run,
 * provider, model, prompt version); the typed fields are the parts worth
 * listing and filtering.
 */
export const keepers: Readonly<Record<string, KeepResult>> = {
  icp_builder: async (k) => {
    const icp = obj(k.output.icp);
    return [
      await k.add("icps", {
        displayName: clip(text(icp.display_name) || titled("ICP", k.scope, parameter(k.scope, "product")), 200),
        industry: clip(text(icp.industry), 200),
        companySize: clip(text(icp.company_size), 100),
        painPoints: strings(
          objs(k.output.pain_points).map((p) => p.pain ?? ""),
          50,
          500,
        ),
        attributes: k.output,
      }),
    ];
  },

  // Each cohort becomes a record, of the ICP named in `icp` or else the one an earlier step of the run made.
  cohort_builder: async (k) => {
    const icp = parameter(k.scope, "icp") || (await k.madeInRun("icps")) || "";
    const metrics = objs(k.output.cohort_metrics);
    const ranking = objs(k.output.priority_ranking);
    const names: string[] = [];
    for (const c of objs(k.output.cohorts)) {
      const label = text(c.display_name);
      names.push(
        await k.add("cohorts", {
          displayName: clip(label || titled("Cohort", k.scope), 200),
          icp,
          description: clip(text(c.rule), 4000),
          sizeEstimate: BigInt(Math.max(0, Math.trunc(num(c.size_estimate)))),
          attributes: {
            ...c,
            segmentation_logic: obj(k.output.segmentation_logic),
            metrics: metrics.filter((m) => text(m.cohort) === label).flatMap((m) => arr(m.metrics)),
            priority: ranking.find((r) => text(r.cohort) === label) ?? {},
          },
        }),
      );
    }
    return names;
  },

  // The 50 tags go to the cohort `cohort` names when it is a cohort record; otherwise they make a new cohort.
  cohort_tag_generator: async (k) => {
    const tags = strings(k.output.interest_tags, 100, 100);
    const named = parameter(k.scope, "cohort");
    const existing = cohortName.test(named) ? await k.find("cohorts", named) : undefined;
    if (existing) {
      existing.tags = tags;
      existing.attributes = { ...existing.attributes, tag_clusters: arr(k.output.tag_clusters), excluded_tags: arr(k.output.excluded_tags), cohort_label: text(k.output.cohort_label) };
      return [await k.change("cohorts", existing)];
    }
    return [await k.add("cohorts", { displayName: clip(text(k.output.cohort_label) || titled("Cohort", k.scope, named), 200), tags, attributes: k.output })];
  },

  jtbd_mapper: async (k) => {
    const core = obj(k.output.core_job);
    return [
      await k.add("jtbdMaps", {
        displayName: titled("Jobs to be done", k.scope, parameter(k.scope, "product"), parameter(k.scope, "customer_segment")),
        coreJob: clip(text(core.statement), 4000),
        customerSegment: clip(parameter(k.scope, "customer_segment"), 2000),
        attributes: k.output,
      }),
    ];
  },

  competitor_surface: async (k) => {
    const market = [parameter(k.scope, "market"), parameter(k.scope, "product"), parameter(k.scope, "company")].find(Boolean) ?? text(k.scope.input);
    return [
      await k.add("competitorSurfaces", {
        displayName: titled("Competitors", k.scope, market),
        market: clip(market, 2000),
        competitors: strings(
          objs(k.output.competitors).map((c) => c.name ?? ""),
          100,
          200,
        ),
        attributes: k.output,
      }),
    ];
  },

  strategy_profile: async (k) => {
    const summary = obj(k.output.strategic_summary);
    return [
      await k.add("strategyProfiles", {
        displayName: titled("Strategy", k.scope, parameter(k.scope, "company"), parameter(k.scope, "product")),
        statement: clip(text(summary.statement), 4000),
        winningAspiration: clip(text(summary.winning_aspiration), 4000),
        attributes: k.output,
      }),
    ];
  },

  positioning_parse: async (k) => {
    const c = obj(k.output.components);
    return [
      await k.add("positionings", {
        displayName: titled("Positioning", k.scope, parameter(k.scope, "product"), c.market_category),
        targetCustomer: clip(text(c.target_customer), 2000),
        marketCategory: clip(text(c.market_category), 500),
        value: clip(text(c.value), 4000),
        revisedStatement: clip(text(k.output.revised_statement), 4000),
        attributes: k.output,
      }),
    ];
  },

  monetization: async (k) => [
    await k.add("monetizationModels", {
      displayName: titled("Monetization", k.scope, parameter(k.scope, "product")),
      pricingTiers: objs(k.output.pricing_tiers)
        .slice(0, 10)
        .map((t) => ({
          name: clip(text(t.name), 200),
          targetBuyer: clip(text(t.target_buyer), 2000),
          valueMetric: clip(text(t.value_metric), 500),
          priceLow: Math.max(0, num(t.price_low)),
          priceHigh: Math.max(0, num(t.price_high)),
          currency: clip(text(t.currency), 16),
          billingPeriod: clip(text(t.billing_period), 32),
          features: strings(t.features, 100, 1000),
        })),
      unitEconomics: unitEconomics(k.output, k.scope),
      attributes: k.output,
    }),
  ],

  plan_generator: async (k) => {
    const summary = obj(k.output.plan_summary);
    const weeks = objs(k.output.weekly_plan);
    return [
      await k.add("plans", {
        displayName: clip(text(summary.display_name) || titled("Plan", k.scope, parameter(k.scope, "goal")), 200),
        objective: clip(text(summary.objective), 2000),
        summary: clip(text(summary.summary), 4000),
        timelineWeeks: weeks.length,
        launchWeek: Math.min(521, Math.trunc(num(summary.launch_week))),
        budgetUsd: Math.max(0, num(summary.budget_usd)),
        phases: objs(summary.phases).map((p) => ({ phase: clip(text(p.phase), 32), startWeek: Math.trunc(num(p.start_week)), endWeek: Math.trunc(num(p.end_week)), budgetUsd: num(p.budget_usd) })),
        weeks: weeks.slice(0, 520).map((w) => ({
          week: Math.trunc(num(w.week)),
          phase: clip(text(w.phase), 32),
          objectives: strings(w.objectives, 50, 2000),
          activities: objs(w.activities)
            .slice(0, 50)
            .map((a) => ({ activity: clip(text(a.activity), 2000), owner: clip(text(a.owner), 200), deliverable: clip(text(a.deliverable), 2000) })),
          budgetUsd: num(w.budget_usd),
        })),
        channels: strings(summary.channels, 50, 200),
        attributes: k.output,
      }),
    ];
  },

  // Each move becomes a record, of the plan named in `plan` or else the one an earlier step of the run made, and of the campaign in `campaign`.
  move_assembly: async (k) => {
    const plan = parameter(k.scope, "plan") || (await k.madeInRun("plans")) || "";
    const campaign = parameter(k.scope, "campaign");
    const ice = objs(k.output.ice_scores);
    const dependencies = objs(k.output.dependencies);
    const names: string[] = [];
    for (const m of objs(k.output.moves)) {
      const label = text(m.display_name);
      names.push(
        await k.add("moves", {
          displayName: clip(label || titled("Move", k.scope), 200),
          campaign,
          plan,
          description: clip(text(m.description), 4000),
          status: "planned",
          week: Math.min(520, Math.max(0, Math.trunc(num(m.start_week)))),
          attributes: {
            ...m,
            ice_score: ice.find((s) => text(s.move) === label) ?? {},
            needs: dependencies.filter((d) => text(d.move) === label).flatMap((d) => arr(d.needs)),
          },
        }),
      );
    }
    return names;
  },

  trend_scraper: insight("trend_report", "Trend report", (k) => [parameter(k.scope, "industry")]),
  company_enrich: insight("company_profile", "Company profile", (k) => [obj(k.output.company_profile).name, parameter(k.scope, "company_name")]),
  tech_stack_seed: insight("tech_stack", "Tech stack", (k) => [parameter(k.scope, "company"), parameter(k.scope, "goal")]),
  barrier_engine: insight("barrier_map", "Barriers", (k) => [parameter(k.scope, "product"), parameter(k.scope, "target_segment")]),
  content_idea: insight("content_ideas", "Content ideas", (k) => [parameter(k.scope, "topic_area"), parameter(k.scope, "audience")]),
  muse: insight("creative_directions", "Creative directions", (k) => [parameter(k.scope, "brief")]),
};

const cohortName = /^cohorts\/[a-z0-9-]{1,64}$/;

/** references are the parameters that name V1 records, by agent: checked before the agent runs. */
const references: Readonly<Record<string, readonly { parameter: string; collection: V1Collection; only?: RegExp }[]>> = {
  cohort_builder: [{ parameter: "icp", collection: "icps" }],
  // `cohort` is usually a description; it is a reference only when it is a cohort's name.
  cohort_tag_generator: [{ parameter: "cohort", collection: "cohorts", only: cohortName }],
  move_assembly: [
    { parameter: "plan", collection: "plans" },
    { parameter: "campaign", collection: "campaigns" },
  ],
};

/**
 * createV1ResultHooks are the V1 agent service's hooks: before a call, the
 * records its parameters name must exist in the caller's organization
 * (NOT_FOUND otherwise, before any model call); after it, the numbers are
 * recomputed by the tools (`finish`, see computed-fields.ts) and the answer
 * is kept as the records its agent's results become, in the caller's
 * organization, with their origin (`keep`).
 */
export function createV1ResultHooks(stores: V1Stores, finish: NonNullable<AgentResultHooks["finish"]>): AgentResultHooks {
  const validator = createValidator();
  const storeOf = <C extends V1Collection>(c: C) => stores[c] as unknown as RecordStore<MessageShape<Schema<C>>>;
  const schemaOf = <C extends V1Collection>(c: C) => v1Resources[c][1] as Schema<C>;
  // A mapping that writes what its record does not allow is our bug: it fails loudly, naming the field.
  const valid = <C extends V1Collection>(c: C, record: MessageShape<Schema<C>>) => {
    const r = validator.validate(schemaOf(c) as DescMessage, record as MessageShape<DescMessage>);
    if (r.kind !== "valid") throw new ConnectError(`a ${c} record made from an agent's answer is invalid: ${r.kind === "invalid" ? r.violations.map(String).join("; ") : r.error.message}`, Code.Internal);
  };
  return {
    async check(agent: AgentDefinition, scope: KeepScope) {
      for (const ref of references[agent.id] ?? []) {
        const name = parameter(scope, ref.parameter);
        if (!name || (ref.only && !ref.only.test(name))) continue;
        if (!(await storeOf(ref.collection).get(scope.organization, name))) {
          throw new ConnectError(`parameters.${ref.parameter}: ${ref.collection} "${name}" not found`, Code.NotFound);
        }
      }
    },
    finish,
    async keep(agent: AgentDefinition, result: AgentResult, scope: KeepScope) {
      const mapping = keepers[agent.id];
      if (!mapping || !result.output) return [];
      const origin: Origin = create(OriginSchema, { agent: result.agent, run: scope.run, provider: result.provider, model: result.model, promptVersion: result.promptVersion });
      return mapping({
        output: result.output,
        scope,
        async add(collection, init) {
          const now = timestampNow();
          const record = create(schemaOf(collection) as DescMessage, { ...init, name: `${collection}/${uuidv7()}`, createTime: now, updateTime: now, origin } as never) as MessageShape<Schema<typeof collection>>;
          valid(collection, record);
          await storeOf(collection).create(scope.organization, record);
          return (record as unknown as { name: string }).name;
        },
        async change(collection, record) {
          Object.assign(record, { updateTime: timestampNow() });
          valid(collection, record);
          await storeOf(collection).put(scope.organization, record);
          return (record as unknown as { name: string }).name;
        },
        async madeInRun(collection) {
          if (!scope.run) return undefined;
          const { records } = await storeOf(collection).list(scope.organization, 1, "", { "origin.run": scope.run });
          return (records[0] as unknown as { name: string } | undefined)?.name;
        },
        find: (collection, name) => storeOf(collection).get(scope.organization, name),
      });
    },
  };
}
