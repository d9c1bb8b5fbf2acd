import type { Session } from '@hafw/transport'

/*
 * Node clocks against the controller's. The node prints its clock a few times, 20 ms apart, on
 * one channel; each line arrives one network delay after it was read, never before. So
 * node - arrival = offset - delay for every line, and the largest value is the offset, short
 * by the smallest one-way delay (well under a millisecond on a LAN). A round trip of a whole
 * `ssh exec` would be worse: its time goes to opening the channel, before the clock is read.
 * Timeline events read on a node are corrected by the offset, so events of both nodes and the
 * witnesses share the controller's time axis.
 */

export interface ClockOffset {
  /** node clock - controller clock, ms */
  offsetMs: number
  /** lines read */
  samples: number
}

export async function measureOffset(s: Session, samples = 8, signal?: AbortSignal): Promise<ClockOffset> {
  const stream = await s.openStream(`for i in $(seq ${samples}); do date +%s%N; sleep 0.02; done`, { timeoutMs: 20_000, ...(signal ? { signal } : {}) })
  let best = -Infinity
  let n = 0
  let buf = ''
  for await (const chunk of stream.stdout) {
    const arrival = performance.timeOrigin + performance.now()
    buf += (chunk as Buffer).toString('latin1')
    const lines = buf.split('\n')
    buf = lines.pop()!
    for (const ns of lines) {
      if (!/^\d{10,}$/.test(ns)) continue
      const nodeMs = Number(ns.slice(0, -6)) + Number(ns.slice(-6)) / 1e6
      best = Math.max(best, nodeMs - arrival)
      n++
    }
  }
  const r = await stream.done
  if (r.code !== 0 || !n) throw new Error(`${s.label}: could not read the node's clock (exit ${r.code}): ${r.stderr.trim().slice(0, 200)}`)
  return { offsetMs: Math.round(best * 10) / 10, samples: n }
}
