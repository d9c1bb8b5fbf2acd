#!/usr/bin/env node
import { pathToFileURL } from 'node:url'
import { ensureBundle, MAIN } from './bundle.js'

await ensureBundle()
const { execute, settings } = await import(pathToFileURL(MAIN).href)
// Always run the compiled code: under NODE_ENV=test or development (vitest sets test) oclif
// would otherwise look for src/*.ts files (e.g. the help class), which Node cannot load.
settings.enableAutoTranspile = false
await execute({ dir: import.meta.url })
// The command has finished and written its output (stdio is synchronous on Linux). Exit now,
// not when the event loop drains: ioredis's reply parser keeps a 50 ms interval (not unref'd)
// shrinking its buffer pool after a large reply, which held a finished `hafw apply` open
// 0.1-0.8 s after its output.
process.exit()
