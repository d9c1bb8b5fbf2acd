#!/usr/bin/env node
import { execute, settings } from '@oclif/core'
import { ensureManifest } from './manifest.js'

// Always run the compiled dist/: under NODE_ENV=test or development (vitest sets test) oclif
// would otherwise look for src/*.ts files (e.g. the help class), which Node cannot load.
settings.enableAutoTranspile = false

await ensureManifest()
await execute({ dir: import.meta.url })
