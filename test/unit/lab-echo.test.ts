import { describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { createConnection, createServer } from 'node:net'
import { createSocket } from 'node:dgram'
import { fileURLToPath } from 'node:url'

/*
 * The lab's probe responder (packages/lab/assets/echo.mjs), run as `lab up` runs it: it answers
 * TCP and UDP on both families, each from the address it was asked on.
 */

const ECHO = fileURLToPath(new URL('../../packages/lab/assets/echo.mjs', import.meta.url))

/** A port free on 0.0.0.0 and :: alike (the responder binds both). */
async function freePort(): Promise<number> {
  for (;;) {
    const s = createServer()
    const port = await new Promise<number>((r) => s.listen(0, '::', () => r((s.address() as { port: number }).port)))
    await new Promise((r) => s.close(r))
    const probe = createSocket('udp6')
    const ok = await new Promise<boolean>((r) => {
      probe.once('error', () => r(false))
      probe.bind(port, '::', () => r(true))
    })
    probe.close()
    if (ok) return port
  }
}

const tcpEcho = (host: string, port: number) =>
  new Promise<{ data: string; local: string }>((res, rej) => {
    const c = createConnection({ host, port }, () => c.write('hafw\n'))
    c.on('data', (d) => {
      res({ data: d.toString(), local: c.localAddress! })
      c.destroy()
    })
    c.on('error', rej)
  })

const udpEcho = (host: string, port: number) =>
  new Promise<{ data: string; from: string }>((res, rej) => {
    const u = createSocket(host.includes(':') ? 'udp6' : 'udp4')
    u.on('message', (m, from) => {
      res({ data: m.toString(), from: from.address })
      u.close()
    })
    u.on('error', rej)
    u.send('seq 1', port, host)
  })

describe('lab echo responder', () => {
  it('echoes TCP and UDP over IPv4 and IPv6, and says so when ready', async () => {
    const port = await freePort()
    const child = spawn(process.execPath, [ECHO, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] })
    try {
      const ready = await new Promise<string>((res, rej) => {
        let out = ''
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString()
          if (out.includes('\n')) res(out.trim())
        })
        child.on('exit', (code) => rej(new Error(`echo exited ${code}`)))
      })
      expect(ready).toBe(`ready tcp+udp ${port} IPv4 and IPv6`)
      expect(await tcpEcho('127.0.0.1', port)).toEqual({ data: 'hafw\n', local: '127.0.0.1' })
      // an IPv6-only socket: IPv6 peers see IPv6, IPv4 peers keep plain IPv4 (no ::ffff: mapping)
      expect(await tcpEcho('::1', port)).toEqual({ data: 'hafw\n', local: '::1' })
      expect(await udpEcho('127.0.0.1', port)).toEqual({ data: 'seq 1', from: '127.0.0.1' })
      expect(await udpEcho('::1', port)).toEqual({ data: 'seq 1', from: '::1' })
    } finally {
      child.kill('SIGTERM')
    }
  })

  it('refuses bad arguments', async () => {
    const child = spawn(process.execPath, [ECHO, '70000'], { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    const code = await new Promise<number | null>((r) => child.on('exit', r))
    expect(code).toBe(2)
    expect(err).toMatch(/usage: echo\.mjs PORT/)
  })
})
