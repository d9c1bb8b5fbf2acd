#!/usr/bin/env node
import { execute, settings } from '@oclif/core'

// Always run the compiled dist/: under NODE_ENV=test or development (vitest sets test) oclif
// would otherwise look for src/*.ts files (e.g. the help class), which Node cannot load.
settings.enableAutoTranspile = false

await execute({ dir: import.meta.url })
