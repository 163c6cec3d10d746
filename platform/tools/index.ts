import { attributionTool } from "./attribution.js";
import { budgetTool } from "./budget.js";
import { experimentTool } from "./experiment.js";
import { forecastTool } from "./forecast.js";
import { kpiTool } from "./kpi.js";
import { scheduleTool } from "./schedule.js";

export {
  ATTRIBUTION_MODELS,
  type AttributionInput,
  type AttributionModel,
  type AttributionResult,
  type ChannelCredit,
  apportion,
  attribute,
  attributionInputSchema,
  attributionTool,
  touchWeights,
} from "./attribution.js";
export {
  type BudgetInput,
  type BudgetResult,
  type ChannelAllocation,
  type ResponseCurve,
  allocateBudget,
  budgetInputSchema,
  budgetTool,
  curveMarginal,
  curveReturn,
} from "./budget.js";
export {
  type ExperimentInput,
  type SampleSizeInput,
  type SampleSizeResult,
  type ZTestInput,
  type ZTestResult,
  experimentInputSchema,
  experimentStats,
  experimentTool,
  normalCdf,
  normalPdf,
  normalQuantile,
  normalUpperTail,
  sampleSizeInputSchema,
  sampleSizeTwoProportions,
  twoProportionZTest,
  zTestInputSchema,
} from "./experiment.js";
export {
  type ForecastInput,
  type ForecastMethod,
  type ForecastResult,
  type PredictionIntervals,
  type Seasonality,
  type SmoothingParameters,
  type SmoothingRun,
  fitSmoothingParameters,
  forecastInputSchema,
  forecastSeries,
  forecastTool,
  forecastVarianceMultipliers,
  holtWintersInitialState,
  runHolt,
  runHoltWinters,
  runSes,
} from "./forecast.js";
export {
  type KpiInput,
  type KpiResult,
  cac,
  calculateKpis,
  conversionRate,
  kpiInputSchema,
  kpiTool,
  ltv,
  ltvToCac,
  paybackMonths,
  roas,
  roi,
} from "./kpi.js";
export {
  type ScheduleInput,
  type ScheduleResult,
  type ScheduledPhase,
  type ScheduledWeek,
  scheduleInputSchema,
  schedulePlan,
  scheduleTool,
} from "./schedule.js";
export { ToolInputError, parseToolInput } from "./validate.js";

/**
 * numericTools are the deterministic numeric LangChain tools agents call
 * instead of doing arithmetic in the model: `forecast_series`, `attribution`,
 * `experiment_stats`, `budget_allocation`, `kpi_calculator` and
 * `plan_schedule` (the names used in the agent catalogs). Each returns a JSON
 * string.
 */
export const numericTools = [forecastTool, attributionTool, experimentTool, budgetTool, kpiTool, scheduleTool] as const;
