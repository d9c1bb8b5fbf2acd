import { exec } from '@hafw/core'
import type { Iface } from '@hafw/inventory'

/*
 * A throwaway network namespace that looks like the node: every inventory device exists (one
 * end of a veth pair; this kernel has no dummy links), is up and carries the node's addresses.
 * Rulesets, routes, sysctls and conntrackd act on it, never on the host.
 */

export interface Netns {
  name: string
  /** run a command inside the namespace (no shell) */
  run: (cmd: string, args: readonly string[], opts?: { env?: Record<string, string>; timeoutMs?: number; input?: string }) => ReturnType<typeof exec>
}

let seq = 0

export async function createNetns(ifaces: Iface[]): Promise<Netns & { remove: () => Promise<void> }> {
  const name = `hafwchk-${process.pid}-${++seq}`
  await exec('ip', ['netns', 'add', name], { timeoutMs: 10_000 })
  const remove = async () => {
    await exec('ip', ['netns', 'del', name], { allowFail: true, timeoutMs: 10_000 })
  }
  const ip = (args: string[]) => exec('ip', ['-n', name, ...args], { timeoutMs: 10_000 })
  try {
    await ip(['link', 'set', 'lo', 'up'])
    const taken = new Set(ifaces.map((i) => i.device))
    let k = 0
    for (const i of ifaces) {
      let peer = `hafwpeer${k++}`
      while (taken.has(peer)) peer = `hafwpeer${k++}`
      await ip(['link', 'add', i.device, 'type', 'veth', 'peer', 'name', peer])
      await ip(['link', 'set', peer, 'up'])
      await ip(['link', 'set', i.device, 'up'])
      if (i.address) await ip(['addr', 'add', i.address.cidr, 'dev', i.device])
      // nodad: the address is usable at once (duplicate detection would hold routes via it back for a second)
      if (i.address6) await ip(['addr', 'add', i.address6.cidr, 'dev', i.device, 'nodad'])
    }
  } catch (e) {
    await remove()
    throw e
  }
  return {
    name,
    remove,
    run: (cmd, args, opts = {}) =>
      exec('ip', ['netns', 'exec', name, ...(opts.env ? ['env', ...Object.entries(opts.env).map(([k, v]) => `${k}=${v}`)] : []), cmd, ...args], {
        allowFail: true,
        timeoutMs: opts.timeoutMs ?? 30_000,
        ...(opts.input !== undefined ? { input: opts.input } : {}),
      }),
  }
}
