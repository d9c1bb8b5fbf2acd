export * from './errors.js'
export * from './progress.js'
export * from './exec.js'
export * from './paths.js'
