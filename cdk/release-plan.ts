/**
 * releasePlan is how a new image reaches production: the share of traffic
 * the new version gets at each step, and how long each step bakes while the
 * release alarms are watched. With App Mesh the release script moves the
 * route weights through every step; with Service Connect, ECS runs a canary
 * at the first step for the bake time, then shifts the rest, and rolls back
 * by itself on the same alarms.
 */
export const releasePlan = {
  steps: [10, 50, 100],
  bakeMinutes: 10,
} as const;
