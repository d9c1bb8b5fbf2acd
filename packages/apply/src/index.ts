/*
 * @hafw/apply: execute a plan on a pair's nodes safely (stage + check with the node's tools,
 * on-host rollback armed before the swap, health gate, confirm) and drive many pairs through
 * the job queue.
 */
export * from './scripts.js'
export * from './gate.js'
export * from './order.js'
export * from './node.js'
export * from './pair.js'
export * from './rollout.js'
