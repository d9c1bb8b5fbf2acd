#!/usr/bin/env node
import { pathToFileURL } from 'node:url'
import { ensureBundle, MAIN } from './bundle.js'

await ensureBundle()
const { execute, settings } = await import(pathToFileURL(MAIN).href)
// Always run the compiled code: under NODE_ENV=test or development (vitest sets test) oclif
// would otherwise look for src/*.ts files (e.g. the help class), which Node cannot load.
settings.enableAutoTranspile = false
await execute({ dir: import.meta.url })
