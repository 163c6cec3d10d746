/**
 * Text features for the router: words folded by a small stemmer, the
 * concepts a word or phrase stands for (an analysis act, a metric, a piece of
 * marketing content …), and the clauses of a request. Everything here is
 * deterministic and local: no network, no model, no keys.
 */

const stopWords = new Set(
  (
    "a an the and or but if of at by for with about against between into through during before after above below to from up down in out on off over " +
    "under again further once here there all any both each few more most other some such no nor not only own same so than too very can will just " +
    "should now i me my myself we our ours ourselves you your yours he him his she her it its they them their what which who whom this that these " +
    "those am is are was were be been being have has had having do does did doing would could please let lets us also then"
  ).split(" "),
);

/** questionWords open a request that asks for an answer rather than for a piece of work. */
const questionWords = new Set(["what", "which", "who", "whom", "why", "how", "where", "when", "is", "are", "do", "does", "did", "was", "were", "should", "can", "could", "will"]);

/** ukToUs folds British spellings onto American ones, so "analyse" and "analyze" meet. */
function ukToUs(w: string): string {
  if (w.length > 5 && /ys(e|es|ed|ing)$/.test(w)) return w.replace(/ys(e|es|ed|ing)$/, "yz$1");
  if (w.length > 5 && /is(e|es|ed|ing|ation|ations)$/.test(w)) return w.replace(/is(e|es|ed|ing|ation|ations)$/, "iz$1");
  if (w.length > 5 && w.endsWith("our") && !w.endsWith("hour")) return `${w.slice(0, -3)}or`;
  return w;
}

const vowel = /[aeiouy]/;

/** stems remembers each word's stem: words repeat across requests; bounded, so odd input cannot grow it without end. */
const stems = new Map<string, string>();

/**
 * stem folds a lower-case word onto a stem: a light suffix stripper in the
 * spirit of Porter's first steps (plurals, -ing, -ed, -ly, -ation, a final
 * e, and -itor/-itive/-ition on long roots), enough that "analyse",
 * "analyzed" and "analysis" meet, "competitor" meets "competitive", and
 * "campaigns" meets "campaign". It never leaves fewer than three letters.
 */
export function stem(word: string): string {
  let s = stems.get(word);
  if (s === undefined) {
    s = stemOf(word);
    if (stems.size >= 50_000) stems.clear();
    stems.set(word, s);
  }
  return s;
}

/** stemOf computes a stem (see stem). */
function stemOf(word: string): string {
  let w = ukToUs(word);
  if (w.length <= 3) return w;
  if (w.endsWith("ysis")) return `${w.slice(0, -4)}yz`;
  if (w.endsWith("ies") && w.length > 4) w = `${w.slice(0, -3)}y`;
  else if (w.endsWith("sses")) w = w.slice(0, -2);
  else if (w.endsWith("s") && !/(ss|us|is|ics)$/.test(w)) w = w.slice(0, -1);
  const strip = (suffix: string, min = 3): boolean => {
    if (!w.endsWith(suffix) || w.length - suffix.length < min || !vowel.test(w.slice(0, -suffix.length))) return false;
    w = w.slice(0, -suffix.length);
    // "planning" -> "plann" -> "plan"; but "fall" and "press" keep their doubles.
    if (/([^aeiouslz])\1$/.test(w)) w = w.slice(0, -1);
    return true;
  };
  // Derivations of one root meet: "competitor", "competitive", "competition" -> "compet" (long roots only).
  const derived = /(itor|itive|ition|itions|itors)$/.exec(w);
  if (derived && w.length - derived[0].length >= 5) return w.slice(0, -derived[0].length);
  if (w.endsWith("ied") && w.length > 4) w = `${w.slice(0, -3)}y`;
  else if (!strip("ing") && !strip("ed")) {
    if (!strip("ations", 4) && !strip("ation", 4)) strip("ly", 4);
  }
  if (w.endsWith("e") && w.length > 4) w = w.slice(0, -1);
  return w;
}

/** abbreviations are spelled out, so "ICP" meets "ideal customer profile" and "LTV" meets "lifetime value". */
const abbreviations: Record<string, readonly string[]> = {
  icp: ["ideal", "customer", "profile"],
  ltv: ["lifetime", "value"],
  clv: ["customer", "lifetime", "value"],
  cac: ["customer", "acquisition", "cost"],
  cpa: ["cost", "per", "acquisition"],
  roas: ["return", "on", "ad", "spend"],
  roi: ["return", "on", "investment"],
  aov: ["average", "order", "value"],
  gtm: ["go", "to", "market"],
  tam: ["total", "addressable", "market"],
  nps: ["net", "promoter", "score"],
  ctr: ["click", "through", "rate"],
  seo: ["search", "engine", "optimization"],
  jtbd: ["jobs", "to", "be", "done"],
  arr: ["annual", "recurring", "revenue"],
  mrr: ["monthly", "recurring", "revenue"],
};

/** words splits text into lower-case words ("A/B" stays one word, "month-over-month" splits, abbreviations are spelled out). */
export function words(text: string): string[] {
  const raw =
    text
      .toLowerCase()
      .replace(/[’']/g, "")
      .replace(/\ba\s*\/\s*b\b/g, "ab")
      .match(/[a-z0-9]+/g) ?? [];
  return raw.flatMap((w) => abbreviations[w] ?? [w]);
}

/** Concept names the lexicon tags words and phrases with. */
export type Concept =
  | "analyze" // an analysis act: find, measure, compare, forecast …
  | "create" // a production act: write, draft, design, schedule …
  | "metric" // a business number: revenue, churn, margin, conversion …
  | "data" // evidence to analyse: data, numbers, results, last quarter …
  | "asset" // a piece of marketing content: email, post, headline, ad …
  | "channel" // a place content goes: Instagram, LinkedIn, newsletter …
  | "strategy"; // a strategic question: market, competitor, ICP, pricing …

/**
 * lexicon is general marketing and analytics vocabulary, by concept: single
 * words and phrases, comma-separated. It was written from the domain (what
 * analysts and marketers ask for), not from any labelled request.
 */
const lexicon: Record<Concept, string> = {
  analyze:
    "analyze, analysis, assess, evaluate, identify, find, determine, calculate, compute, measure, estimate, compare, rank, figure out, work out, " +
    "detect, spot, pinpoint, quantify, benchmark, forecast, predict, project, segment, cluster, group, investigate, diagnose, examine, explore, " +
    "understand, discover, uncover, break down, size, model, correlate, attribute, review, audit, research, study, profile, track, monitor, check, " +
    "look at, look into, dig into, drill into, tell me, show me, how much, how many, split, learn from, map, score, test whether, see whether, " +
    "pull, crunch, count, tally, sort",
  create:
    "write, draft, create, compose, generate, produce, design, craft, prepare, make, rewrite, polish, edit, proofread, localize, translate, " +
    "turn into, repurpose, adapt, schedule, post, publish, send, launch, roll out, set up, plan, brainstorm, come up with, suggest, outline, film, " +
    "record, reallocate, allocate, promote, announce, invite, spin up, put together, refresh, redo, reword, shorten, tweak, mock up, storyboard, " +
    "pitch, remind, reply, respond, run a campaign, turn, shift, move, reinvest, redirect",
  metric:
    "revenue, churn, retention, margin, ltv, lifetime value, cac, acquisition cost, conversion, conversion rate, growth, aov, average order value, " +
    "roas, return on ad spend, roi, payback, unit economics, nps, arr, mrr, sales, profit, profitability, quota, attainment, pipeline, cohort, " +
    "market share, market size, tam, demand, volume, open rate, click through rate, ctr, traffic, signups, trial, activation, engagement, basket, " +
    "spend, cost, arpu, win rate, deal size, velocity, frequency, recency, monetary, percent, percentage, breakeven, break even, drop off, funnel",
  data:
    "data, numbers, figures, report, dashboard, export, spreadsheet, sheet, results, performance, last quarter, last month, last year, last week, " +
    "this quarter, this year, year over year, month over month, trend, pattern, historical, history, survey, transactions, records, crm, " +
    "analytics, statistics, metrics, kpi, kpis, correlation",
  asset:
    "email, newsletter, post, blog, article, copy, headline, tagline, slogan, ad, ads, caption, hashtag, script, video, landing page, " +
    "press release, sequence, message, sms, banner, thread, tweet, description, subject line, invitation, flyer, brochure, ebook, whitepaper, " +
    "case study, testimonial, talking points, speech, title, meta description, alt text, faq, calendar, content, reply, announcement, greeting, " +
    "promotion, promo, carousel, reel, outreach, drip, one pager, deck, jingle, copywriting, creative, visuals, wording",
  channel:
    "instagram, linkedin, tiktok, facebook, meta, twitter, youtube, pinterest, whatsapp, google ads, search ads, social media, social, " +
    "newsletter, blog, website, homepage, app store, push notification",
  strategy:
    "market, competitor, competitive landscape, rival, icp, ideal customer profile, persona, pricing, positioning, strategy, swot, " +
    "opportunity, threat, go to market, expansion, barrier, addressable",
};

/** tokenize turns text into stems with stop words dropped. */
export function tokenize(text: string): string[] {
  return words(text)
    .filter((w) => !stopWords.has(w))
    .map(stem);
}

/** wordConcepts maps a single word's stem to its concepts. */
const wordConcepts = new Map<string, Set<Concept>>();
/** phraseIndex maps the first word of each phrase to the phrases (as stems, stop words kept) it may start. */
const phraseIndex = new Map<string, { stems: readonly string[]; concept: Concept }[]>();
for (const [concept, list] of Object.entries(lexicon) as [Concept, string][]) {
  for (const entry of list.split(",").map((e) => e.trim()).filter(Boolean)) {
    const stems = words(entry).map(stem);
    if (stems.length === 1) {
      const set = wordConcepts.get(stems[0]) ?? new Set<Concept>();
      set.add(concept);
      wordConcepts.set(stems[0], set);
    } else {
      const l = phraseIndex.get(stems[0]) ?? [];
      l.push({ stems, concept });
      phraseIndex.set(stems[0], l);
    }
  }
}

/** Tagged is one word of a request with its stem and the concepts it carries. */
export interface Tagged {
  readonly word: string;
  readonly stem: string;
  readonly stop: boolean;
  readonly concepts: ReadonlySet<Concept>;
}

/** tag reads a request word by word: stems, and concepts from single words and phrases. */
export function tag(text: string): Tagged[] {
  const ws = words(text);
  const stems = ws.map(stem);
  const out = ws.map((w, i) => ({
    word: w,
    stem: stems[i],
    stop: stopWords.has(w),
    concepts: new Set<Concept>(stopWords.has(w) ? [] : (wordConcepts.get(stems[i]) ?? [])),
  }));
  for (let i = 0; i < ws.length; i++) {
    for (const p of phraseIndex.get(stems[i]) ?? []) {
      if (p.stems.every((ps, j) => stems[i + j] === ps)) for (let j = 0; j < p.stems.length; j++) out[i + j].concepts.add(p.concept);
    }
  }
  return out;
}

/** isQuestion tells whether a request asks for an answer (it opens with a question word or ends with "?"). */
export function isQuestion(text: string): boolean {
  const first = words(text)[0];
  return text.trim().endsWith("?") || (first !== undefined && questionWords.has(first));
}

/** Clause is one part of a request that asks for one thing. */
export interface Clause {
  /** text is the clause's words. */
  readonly text: string;
  /** act is the kind of act the clause opens with, when it opens with one. */
  readonly act?: "analyze" | "create";
}

/** joiners are words that may come between a clause's start and its verb ("and then write …", "based on that, plan …"). */
const joiners = new Set(["and", "then", "also", "plus", "so", "next", "finally", "afterwards", "using", "use", "based", "on", "that", "this", "it", "after", "before", "with", "from", "to", "please", "lets", "let", "us", "we", "i", "you", "can", "could", "would", "should", "want", "need", "help", "me"]);
/** askWords open a clause that asks a question, which is an analysis act. */
const askWords = new Set(["what", "which", "who", "why", "how", "where", "when"]);

/** leadIns open a clause that sets the scene rather than asks ("Using our sales data, …", "Based on that, …"). */
const leadIns = new Set(["using", "use", "based", "given", "with", "from", "for", "after", "before", "in", "on", "according"]);

/**
 * actOf is the act a clause asks for: its first word past the joiners when
 * that is an act (or a question word), else an act right after "to" ("use
 * the data to find …").
 */
function actOf(tagged: readonly Tagged[]): "analyze" | "create" | undefined {
  const actIn = (w: Tagged): "analyze" | "create" | undefined => (w.concepts.has("create") ? "create" : w.concepts.has("analyze") ? "analyze" : undefined);
  let first = true;
  for (const [i, w] of tagged.entries()) {
    if (first) {
      if (askWords.has(w.word)) return "analyze";
      if (joiners.has(w.word) || (w.stop && w.concepts.size === 0)) continue;
      first = false;
      const act = actIn(w);
      if (act) return act;
      continue;
    }
    if (tagged[i - 1].word === "to" && actIn(w)) return actIn(w);
  }
  return undefined;
}

/** isLeadIn tells whether a clause only sets the scene for the one after it. */
function isLeadIn(text: string): boolean {
  const first = words(text)[0];
  return first !== undefined && leadIns.has(first);
}

/**
 * taskVerbs open a task of their own without being analysis or production
 * acts in the lexicon's sense ("build our ICP", "position the new tier").
 * They split a request into tasks for choosing agents, never into clauses
 * for choosing the target.
 */
const taskVerbs = new Set(["build", "position", "define", "run", "decide", "choose", "pick", "price", "package", "frame", "name", "get", "do", "find", "sharpen", "clarify", "set", "map", "handle", "coordinate", "execute", "pair", "order", "sequence", "check", "fix"].map(stem));

/** firstContentStem is a part's first word past the joiners. */
function firstContentStem(tagged: readonly Tagged[]): string | undefined {
  return tagged.find((w) => !joiners.has(w.word) && !(w.stop && w.concepts.size === 0))?.stem;
}

/** splitParts cuts text at punctuation and before "and"/"then", and glues a part that does not `open` something to the one before. */
function splitParts(text: string, opens: (tagged: readonly Tagged[]) => boolean): Clause[] {
  const out: { text: string; act?: "analyze" | "create" }[] = [];
  for (const raw of text.split(/(?<=[,;:.!?])\s+|\s+(?=(?:and|then)\b)/i)) {
    const tagged = tag(raw);
    const prev = out[out.length - 1];
    if (prev && !opens(tagged)) prev.text = `${prev.text} ${raw}`;
    else out.push({ text: raw, act: actOf(tagged) });
  }
  // A lead-in without a verb ("Using our sales data, find …") belongs to the clause after it.
  if (out.length > 1 && out[0].act === undefined && isLeadIn(out[0].text)) {
    const [lead, next] = out.splice(0, 2);
    out.unshift({ text: `${lead.text} ${next.text}`, act: next.act });
  }
  return out.map((c) => ({ text: c.text.trim(), act: c.act }));
}

/**
 * clauses splits a request where a new act starts: at punctuation or before
 * "and"/"then" when the words that follow open with an analysis or a
 * production verb. "by recency, frequency and monetary value" stays one
 * clause; "find X and write Y" is two.
 */
export function clauses(text: string): Clause[] {
  return splitParts(text, (t) => actOf(t) !== undefined);
}

/**
 * tasks splits a request more finely, into the things it asks for, for
 * choosing one agent per task: a part opens a task with an act or with any
 * of the task verbs ("analyse competitors, build our ICP, then position the
 * tier and write the copy" is four tasks).
 */
export function tasks(text: string): Clause[] {
  return splitParts(text, (t) => actOf(t) !== undefined || taskVerbs.has(firstContentStem(t) ?? ""));
}
