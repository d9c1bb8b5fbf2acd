import { defineConfig } from 'vitest/config'
import { fileURLToPath } from 'node:url'

// Tests import packages from source, so unit tests need no build step.
const alias = [
  { find: /^@hafw\/([a-z-]+)$/, replacement: fileURLToPath(new URL('./packages/$1/src/index.ts', import.meta.url)) },
  // subpath exports (@hafw/render/view): the module of that name
  { find: /^@hafw\/([a-z-]+)\/([a-z-]+)$/, replacement: fileURLToPath(new URL('./packages/$1/src/$2.ts', import.meta.url)) },
]

export default defineConfig({
  resolve: { alias },
  test: {
    projects: [
      {
        resolve: { alias },
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 30_000 },
      },
      {
        resolve: { alias },
        // The lab tests boot real hosts: one file at a time, generous timeouts, root only.
        test: {
          name: 'lab',
          include: ['test/lab/**/*.test.ts'],
          testTimeout: 600_000,
          hookTimeout: 600_000,
          fileParallelism: false,
          sequence: { concurrent: false },
        },
      },
    ],
  },
})
