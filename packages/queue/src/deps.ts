import { createRequire } from 'node:module'
import type * as Bullmq from 'bullmq'
import type * as IoRedis from 'ioredis'

// bullmq and ioredis are CommonJS. `import { X } from 'bullmq'` makes Node scan every file they
// re-export for named exports (cjs-module-lexer) before loading them: ~80 ms of every CLI
// start that uses the queue (bench/cli-start.ts). require() loads the same module objects
// without that scan.
const require = createRequire(import.meta.url)
const bullmq = require('bullmq') as typeof Bullmq
const ioredis = require('ioredis') as typeof IoRedis

export const { DelayedError, FlowProducer, Job, Queue, UnrecoverableError, WaitingChildrenError, Worker } = bullmq
export type DelayedError = Bullmq.DelayedError
export type FlowProducer = Bullmq.FlowProducer
export type Job<D = any, R = any, N extends string = string> = Bullmq.Job<D, R, N>
export type Queue = Bullmq.Queue
export type UnrecoverableError = Bullmq.UnrecoverableError
export type WaitingChildrenError = Bullmq.WaitingChildrenError
export type Worker = Bullmq.Worker
export const { Redis } = ioredis
export type Redis = IoRedis.Redis
