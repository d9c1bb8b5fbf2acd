/**
 * Real flows through a lab pair: short TCP and UDP echo exchanges from a probe client (in its
 * network namespace, through the pair's VIP and DNAT) to a probe server. Each exchange uses its
 * own explicit source port, so every one is a distinct conntrack entry and the counts are exact.
 */
import { labExec } from '@hafw/lab'

// Runs with the host's node inside the client's namespace: connect/send, wait for the echo, close.
const SCRIPT = `
const net = require('node:net'), dgram = require('node:dgram')
const [host, tcpPort, udpPort, tcpFrom, nTcp, udpFrom, nUdp, conc] = process.argv.slice(1).map((x, i) => i ? Number(x) : x)
let ok = 0, failed = []
const tcp = (sport) => new Promise((res) => {
  const s = net.connect({ host, port: tcpPort, localPort: sport })
  const t = setTimeout(() => (failed.push('tcp ' + sport + ' timeout'), s.destroy(), res()), 5000)
  s.on('connect', () => s.write('x'))
  s.on('data', () => { ok++; clearTimeout(t); s.end(); res() })
  s.on('error', (e) => { clearTimeout(t); failed.push('tcp ' + sport + ' ' + e.code); res() })
})
const udp = (sport) => new Promise((res) => {
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4')
  let tries = 0
  const send = () => s.send('x', udpPort, host)
  const t = setInterval(() => (++tries > 4 ? (clearInterval(t), failed.push('udp ' + sport + ' timeout'), s.close(), res()) : send()), 1000)
  s.on('message', () => { ok++; clearInterval(t); s.close(); res() })
  s.on('error', (e) => { clearInterval(t); failed.push('udp ' + sport + ' ' + e.code); res() })
  s.bind(sport, () => send())
})
const jobs = [...Array(nTcp).keys()].map((i) => () => tcp(tcpFrom + i)).concat([...Array(nUdp).keys()].map((i) => () => udp(udpFrom + i)))
let next = 0
const worker = async () => { while (next < jobs.length) await jobs[next++]() }
Promise.all([...Array(conc)].map(worker)).then(() => {
  console.log(JSON.stringify({ ok, failed: failed.length, errors: failed.slice(0, 5) }))
  // let the last FINs go out before the process ends
  setTimeout(() => process.exit(0), 300)
})
`

export interface FlowBatch {
  /** first TCP source port; the batch uses [tcpFrom, tcpFrom + tcp) */
  tcpFrom: number
  tcp: number
  udpFrom: number
  udp: number
}

/** Run the exchanges; resolves with how many got their echo. Throws if any failed. */
export async function makeFlows(site: string, client: string, target: { host: string; tcpPort: number; udpPort: number }, b: FlowBatch, concurrency = 64): Promise<number> {
  const argv = [target.host, target.tcpPort, target.udpPort, b.tcpFrom, b.tcp, b.udpFrom, b.udp, concurrency].map(String)
  const r = await labExec(site, client, [process.execPath, '-e', SCRIPT, ...argv], { timeoutMs: 300_000 })
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { ok: number; failed: number; errors: string[] }
  if (out.failed) throw new Error(`${out.failed} of ${b.tcp + b.udp} exchanges failed: ${out.errors.join('; ')}`)
  return out.ok
}
