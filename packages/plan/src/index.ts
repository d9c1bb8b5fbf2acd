/*
 * @hafw/plan: what `hafw apply` would change on each node, read over SSH without side effects:
 * unified diffs of the managed files, the service actions they call for, units to enable or
 * start, and drift of the live ruleset, routes and rules from what the last apply recorded.
 */
export * from './remote.js'
export * from './plan.js'
export * from './operation.js'
