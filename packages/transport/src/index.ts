export * from './quote.js'
export * from './knownhosts.js'
export * from './session.js'
export * from './connect.js'
