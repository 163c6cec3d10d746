import { tool } from "@langchain/core/tools";
import { z } from "zod";
import { apportion } from "./attribution.js";
import { parseToolInput } from "./validate.js";

/** scheduleInputSchema is the zod schema of the `plan_schedule` tool input. */
export const scheduleInputSchema = z
  .object({
    timelineWeeks: z
      .number()
      .int("timelineWeeks must be a whole number")
      .min(1, "timelineWeeks must be >= 1")
      .max(520, "timelineWeeks must be <= 520")
      .describe("how many weeks the plan covers"),
    phases: z
      .array(
        z.object({
          phase: z.string().min(1, "phase must be a non-empty string").describe("the phase's name, for example `prepare`"),
          weight: z.number().gt(0, "weight must be > 0").default(1).describe("the phase's relative length, for example its proposed number of weeks"),
        }),
      )
      .min(1, "give at least one phase")
      .describe("the phases in the order they run"),
    budget: z.number().min(0, "budget must be >= 0").default(0).describe("the budget to spread over the weeks, in currency units"),
    launchPhase: z.string().default("launch").describe("the phase whose first week is the launch"),
  })
  .superRefine((v, ctx) => {
    if (v.phases.length > v.timelineWeeks) {
      ctx.addIssue({ code: "custom", path: ["phases"], message: `${v.phases.length} phases do not fit in ${v.timelineWeeks} weeks (each phase needs at least one)` });
    }
    const seen = new Map<string, number>();
    v.phases.forEach((p, i) => {
      if (seen.has(p.phase)) ctx.addIssue({ code: "custom", path: ["phases", i, "phase"], message: `duplicates phases[${seen.get(p.phase)}].phase` });
      else seen.set(p.phase, i);
    });
  });

/** ScheduleInput is the input of {@link schedulePlan} (before defaults). */
export type ScheduleInput = z.input<typeof scheduleInputSchema>;

/** ScheduledPhase is one phase laid out on the weeks. */
export interface ScheduledPhase {
  readonly phase: string;
  readonly startWeek: number;
  readonly endWeek: number;
  readonly weeks: number;
  readonly budget: number;
}

/** ScheduledWeek is one week of the plan. */
export interface ScheduledWeek {
  readonly week: number;
  readonly phase: string;
  readonly budget: number;
}

/** ScheduleResult is a plan's schedule: contiguous phases covering every week, and the budget by week. */
export interface ScheduleResult {
  readonly timelineWeeks: number;
  readonly phases: readonly ScheduledPhase[];
  readonly weeks: readonly ScheduledWeek[];
  /** launchWeek is the first week of the launch phase; 0 when the plan has none. */
  readonly launchWeek: number;
  readonly budget: number;
}

/**
 * schedulePlan lays phases out on a timeline: each phase gets one week, and
 * the weeks left are shared in proportion to the phases' weights by the
 * largest-remainder method, so the phases are contiguous, in order, and cover
 * exactly `timelineWeeks`. The budget is spread evenly over the weeks in
 * cents (largest remainder again, so the weeks add up to the budget exactly);
 * a phase's budget is the sum of its weeks.
 */
export function schedulePlan(input: ScheduleInput): ScheduleResult {
  const v = parseToolInput(scheduleInputSchema, input, "plan_schedule");
  const extra = apportion(
    v.timelineWeeks - v.phases.length,
    v.phases.map((p) => p.weight),
  );
  const weekCents = apportion(
    Math.round(v.budget * 100),
    Array.from({ length: v.timelineWeeks }, () => 1),
  );
  const weeks: ScheduledWeek[] = [];
  const phases: ScheduledPhase[] = [];
  let next = 1;
  v.phases.forEach((p, i) => {
    const length = 1 + extra[i];
    const startWeek = next;
    let cents = 0;
    for (let w = startWeek; w < startWeek + length; w++) {
      weeks.push({ week: w, phase: p.phase, budget: weekCents[w - 1] / 100 });
      cents += weekCents[w - 1];
    }
    phases.push({ phase: p.phase, startWeek, endWeek: startWeek + length - 1, weeks: length, budget: cents / 100 });
    next += length;
  });
  const launch = phases.find((p) => p.phase === v.launchPhase);
  return { timelineWeeks: v.timelineWeeks, phases, weeks, launchWeek: launch?.startWeek ?? 0, budget: Math.round(v.budget * 100) / 100 };
}

/**
 * scheduleTool is the LangChain tool `plan_schedule`: it runs
 * {@link schedulePlan} and returns the result as a JSON string.
 */
export const scheduleTool = tool(async (input) => JSON.stringify(schedulePlan(input)), {
  name: "plan_schedule",
  description:
    "Deterministic week-by-week schedule for a plan: lays the phases (in order, each with a relative weight such as " +
    "its proposed number of weeks) on timelineWeeks contiguous weeks, at least one week each, shared by weight with " +
    "the largest-remainder method; spreads the budget evenly over the weeks to the cent; returns each phase's start " +
    "and end week and budget, each week's phase and budget, and the launch week (first week of launchPhase) as JSON. " +
    "Use this instead of counting weeks yourself.",
  schema: scheduleInputSchema,
});
