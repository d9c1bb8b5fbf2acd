/** Operations declared by name and loaded on first use (what keeps the CLI's start-up short). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { declareOperations, getOperation, loadAllOperations, loadOperation, operationNames, type JobQueue } from '@hafw/queue'
import { openQueue, startRedis, type PrivateRedis } from '../fixtures/queue-harness.js'

let redis: PrivateRedis
let q: JobQueue
beforeAll(async () => {
  redis = await startRedis()
  q = await openQueue(redis)
})
afterAll(async () => {
  await q?.close()
  await redis?.stop()
})

describe('declared operations', () => {
  it('are known by name, loaded when a job of them is submitted, and run in process', async () => {
    let loads = 0
    declareOperations(['test.lazy'], () => (loads++, import('../fixtures/queue-lazy-op.js')))
    expect(operationNames()).toContain('test.lazy')
    expect(getOperation('test.lazy')).toBeUndefined()
    const r = await q.submitAndWait<{ pair: string }, { ran: string; pid: number }>('test.lazy', { pair: 'lz1' })
    expect(r).toMatchObject({ detached: false, result: { ran: 'lz1', pid: process.pid } })
    expect(getOperation('test.lazy')).toMatchObject({ name: 'test.lazy', attempts: 1 })
    expect((await q.show(r.jobId)).pairs).toEqual(['lz1'])
    await loadOperation('test.lazy')
    expect(loads).toBe(1)
  })

  it('fail clearly when their module does not register them', async () => {
    declareOperations(['test.missing'], async () => undefined)
    await expect(loadOperation('test.missing')).rejects.toThrow(/declared, but loading its module did not register it/)
    await expect(q.submit('test.missing', {})).rejects.toThrow(/did not register/)
    expect(await loadOperation('test.never-declared')).toBeUndefined()
  })

  it("the CLI's declarations match what each module registers", async () => {
    const { operations } = await import('../../packages/cli/src/lib/operations.js')
    const names = Object.values(operations).map((o) => o.name)
    expect(names.every((n) => operationNames().includes(n))).toBe(true)
    // loadAllOperations also loads the test.missing declaration above: only the CLI's matter here.
    await loadAllOperations().catch(() => {})
    for (const n of names) expect(await loadOperation(n), n).toMatchObject({ name: n })
  })
})
