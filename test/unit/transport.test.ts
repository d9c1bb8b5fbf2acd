/*
 * The SSH transport against a real OpenSSH sshd on 127.0.0.1 (a private instance per test file,
 * its own host key and authorized_keys). Runs as root, like CI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execFileSync, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HafwError } from '@hafw/core'
import type { SshTarget } from '@hafw/inventory'
import {
  checkHostKey,
  connect,
  fingerprint,
  hashHostName,
  hostMatches,
  parseKnownHosts,
  shellQuote,
  withSession,
  type Session,
} from '@hafw/transport'
import { freePort, keyFingerprint, keygen, startSshd, type Sshd } from '../support/sshd.js'

const root = process.getuid?.() === 0
const hasSudo = existsSync('/usr/bin/sudo')

let dir: string
let clientPub: string
let sshd: Sshd
/** known_hosts line for the test sshd, "[127.0.0.1]:PORT ssh-ed25519 AAAA" */
let knownLine: string

/** A target as the inventory model gives it; identity and known_hosts relative to `dir` (baseDir). */
function target(over: Partial<SshTarget> = {}): SshTarget {
  return { host: '127.0.0.1', user: 'root', port: sshd.port, identity: 'id_client', known_hosts: 'known_hosts', sudo: false, connect_timeout: 5, ...over }
}
const opts = { baseDir: '', name: 'n1' }

function writeKnown(name: string, text: string): string {
  writeFileSync(join(dir, name), text)
  return name
}

async function rejection(p: Promise<unknown>): Promise<HafwError> {
  try {
    await p
  } catch (e) {
    expect(e).toBeInstanceOf(HafwError)
    return e as HafwError
  }
  throw new Error('expected a rejection')
}

/** pids whose command line contains the marker (the test sshd runs on this machine). */
function pgrep(marker: string): string[] {
  try {
    return execFileSync('pgrep', ['-f', marker], { encoding: 'utf8' }).trim().split('\n')
  } catch {
    return []
  }
}
async function gone(marker: string): Promise<boolean> {
  for (let i = 0; i < 60; i++) {
    if (pgrep(marker).length === 0) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return false
}

describe.runIf(root)('ssh transport (real sshd)', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hafw-transport-'))
    opts.baseDir = dir
    clientPub = keygen(dir, 'id_client')[1]
    sshd = await startSshd({ authorizedKeys: [clientPub] })
    knownLine = `[127.0.0.1]:${sshd.port} ${sshd.hostPub.split(' ').slice(0, 2).join(' ')}`
    writeKnown('known_hosts', knownLine + '\n')
  })
  afterAll(async () => {
    await sshd?.stop()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  describe('commands', () => {
    let s: Session
    beforeAll(async () => {
      s = await connect(target(), opts)
    })
    afterAll(async () => {
      await s?.close()
    })

    it('runs commands and reports exit codes, stdout and stderr', async () => {
      expect(s.hostKey).toMatchObject({ how: 'known_hosts', fingerprint: sshd.hostFingerprint, type: 'ssh-ed25519' })
      const r = await s.exec('echo out; echo err >&2; exit 3')
      expect(r).toEqual({ code: 3, signal: null, stdout: 'out\n', stderr: 'err\n' })
      expect((await s.exec('true')).code).toBe(0)
      // onStdout sees the output as it comes, before the command ends; exec still returns all of it
      let early = ''
      const seen = await s.exec('echo first; sleep 0.3; echo second', { onStdout: (b) => (early ||= b.toString()) })
      expect([early, seen.stdout]).toEqual(['first\n', 'first\nsecond\n'])
      const e = await rejection(s.exec('echo nope >&2; false', { check: true }))
      expect(e.message).toMatch(/^n1 \(root@127\.0\.0\.1:\d+\): echo nope >&2; false: exit 1\nnope$/)
    })

    it('passes stdin', async () => {
      const input = 'line one\nline two\n' + 'x'.repeat(300_000)
      const r = await s.exec('wc -c; head -c 0', { input })
      expect(r.stdout.trim()).toBe(String(Buffer.byteLength(input)))
      expect((await s.exec('cat', { input: 'héllo' })).stdout).toBe('héllo')
      // No input: stdin is closed, a reader sees EOF instead of hanging.
      expect((await s.exec('cat', { timeoutMs: 5000 })).stdout).toBe('')
    })

    it('quotes arguments so inventory values cannot inject commands', async () => {
      const nasty = ["it's", '$(touch /tmp/pwned-hafw)', '`id`', 'a b\tc\nd', '', '*', '-n', '";|&<>\\']
      const r = await s.execArgv(['printf', '%s\\0', ...nasty])
      expect(r.stdout.split('\0').slice(0, -1)).toEqual(nasty)
      expect(existsSync('/tmp/pwned-hafw')).toBe(false)
      expect(shellQuote('plain/path-1.2')).toBe('plain/path-1.2')
      expect(() => shellQuote('a\0b')).toThrow(/NUL/)
    })

    it('runs several commands at once on one connection (more than sshd MaxSessions)', async () => {
      const rs = await Promise.all(Array.from({ length: 24 }, (_, i) => s.exec(`sleep 0.2; echo ${i}`)))
      expect(rs.map((r) => Number(r.stdout))).toEqual(Array.from({ length: 24 }, (_, i) => i))
    })

    it('a shell loop answers requests one at a time on one channel; a timeout or close ends it', async () => {
      const marker = `hafw-loop-test-${process.pid}`
      const script = `while IFS= read -r req; do case $req in echo\\ *) printf '%s\\n' "\${req#echo }" ${marker} ;; slow) sleep 1 ;; *) exit 2 ;; esac; echo @@end; done`
      const loop = await s.openLoop(script)
      expect(await loop.ask('echo one')).toBe(`one\n${marker}\n@@end\n`)
      expect(await loop.ask('echo two')).toBe(`two\n${marker}\n@@end\n`)
      await expect(loop.ask('echo a\nb')).rejects.toThrow(/one line/)
      const first = loop.ask('echo three')
      await expect(loop.ask('echo four')).rejects.toThrow(/one request at a time/)
      expect(await first).toContain('three')
      // a request past its deadline ends the loop; later requests fail at once
      await expect(loop.ask('slow', { timeoutMs: 300 })).rejects.toThrow(/within 300 ms, loop ended/)
      expect(loop.dead?.message).toMatch(/loop ended/)
      await expect(loop.ask('echo five')).rejects.toThrow(/loop ended/)
      // close(): the remote shell reads EOF and exits (the sleep it waited for ends by itself)
      const other = await s.openLoop(script)
      expect(await other.ask('echo six')).toContain('six')
      other.close()
      expect(await gone(marker)).toBe(true)
      // the channels were given back: commands still run
      expect((await s.exec('echo still')).stdout).toBe('still\n')
    })

    it('streams 50 MB through execStream, and prints the throughput', async () => {
      const size = 50 * 1024 * 1024
      const file = `/tmp/hafw-stream-${process.pid}`
      const prep = await s.exec(`head -c ${size} /dev/urandom > ${file} && sha256sum < ${file}`, { check: true, timeoutMs: 60_000 })
      const want = prep.stdout.split(' ')[0]
      try {
        const hash = createHash('sha256')
        const base = process.memoryUsage()
        let peak = 0
        let n = 0
        const t0 = performance.now()
        const r = await s.execStream(`cat ${file}`, {
          onStdout: (chunk) => {
            hash.update(chunk)
            if (++n % 64 === 0) {
              const m = process.memoryUsage()
              peak = Math.max(peak, m.heapUsed + m.arrayBuffers - base.heapUsed - base.arrayBuffers)
            }
          },
        })
        const secs = (performance.now() - t0) / 1000
        expect(r).toMatchObject({ code: 0, bytes: size })
        expect(hash.digest('hex')).toBe(want)
        const mbps = size / 1024 / 1024 / secs
        // JS memory includes chunks not yet collected; the back-pressure tests below show nothing is held.
        console.log(`execStream: 50 MiB in ${secs.toFixed(2)} s = ${mbps.toFixed(1)} MiB/s (${n} chunks; JS heap+buffers peak +${(peak / 1024 / 1024).toFixed(1)} MiB, GC-dependent)`)
      } finally {
        await s.exec(`rm -f ${file}`)
      }
    })

    /** A producer of `mib` MiB that records on this machine how many MiB it has written so far. */
    const producer = (mib: number, progress: string) =>
      `i=0; while [ $i -lt ${mib} ]; do head -c 1048576 /dev/zero; i=$((i+1)); echo $i > ${progress}; done`
    const written = (progress: string) => Number(readFileSync(progress, 'utf8').trim() || 0)

    it('execStream: a slow handler holds the remote producer back (no buffering)', async () => {
      const progress = join(dir, 'progress-exec')
      let got = 0
      let during = -1
      const r = await s.execStream(producer(50, progress), {
        onStdout: async (chunk) => {
          got += chunk.length
          if (during < 0 && got >= 10 * 1024 * 1024) {
            await new Promise((res) => setTimeout(res, 700))
            during = written(progress)
          }
        },
      })
      expect(r).toMatchObject({ code: 0, bytes: 50 * 1024 * 1024 })
      // While the handler stalled at 10 MiB, the producer got at most a few MiB ahead (window + pipes).
      expect(during).toBeGreaterThanOrEqual(10)
      expect(during).toBeLessThanOrEqual(16)
    })

    it('openStream: an unread stream holds the remote producer back', async () => {
      const progress = join(dir, 'progress-open')
      const { stdout, done } = await s.openStream(producer(50, progress))
      // Wait for the producer to start (shell start-up can be slow on a busy machine), then stall.
      for (let i = 0; i < 200 && !existsSync(progress); i++) await new Promise((r) => setTimeout(r, 50))
      await new Promise((r) => setTimeout(r, 700))
      // Only the channel window (2 MiB) and the stream buffer are held while nobody reads.
      expect(stdout.readableLength).toBeLessThanOrEqual(4 * 1024 * 1024)
      expect(written(progress)).toBeLessThanOrEqual(6)
      let total = 0
      for await (const chunk of stdout) total += (chunk as Buffer).length
      expect(total).toBe(50 * 1024 * 1024)
      expect((await done).code).toBe(0)
    })

    it('a timeout kills the remote command (the whole process group) and is transient', async () => {
      const marker = `31.${process.pid}${Date.now() % 1000}`
      const t0 = Date.now()
      const e = await rejection(s.exec(`sleep ${marker}; echo never`, { timeoutMs: 500 }))
      expect(Date.now() - t0).toBeLessThan(3000)
      expect(e.transient).toBe(true)
      expect(e.message).toMatch(/timed out after 500 ms, killed: sleep/)
      expect(await gone(`sleep ${marker}`)).toBe(true)
      // The connection is still usable.
      expect((await s.exec('echo ok')).stdout).toBe('ok\n')
    })

    it('an AbortSignal cancels a running command', async () => {
      const marker = `32.${process.pid}${Date.now() % 1000}`
      const ac = new AbortController()
      setTimeout(() => ac.abort(new HafwError('operator cancelled')), 300)
      const e = await rejection(s.execStream(`sleep ${marker} & sleep ${marker}; wait`, { signal: ac.signal, onStdout: () => {} }))
      expect(e.message).toBe('operator cancelled')
      expect(await gone(`sleep ${marker}`)).toBe(true)
      // Already aborted: nothing starts.
      await expect(s.exec('true', { signal: ac.signal })).rejects.toThrow('operator cancelled')
    })

    it('leaving a for-await loop early kills the command', async () => {
      const marker = `33.${process.pid}${Date.now() % 1000}`
      const { stdout, done } = await s.openStream(`echo first; sleep ${marker}; echo never`)
      for await (const chunk of stdout) {
        expect(String(chunk)).toBe('first\n')
        break
      }
      await expect(done).rejects.toThrow(/abandoned/)
      expect(await gone(`sleep ${marker}`)).toBe(true)
    })

    it('output beyond maxBuffer fails the command and kills it', async () => {
      const marker = `36.${process.pid}${Date.now() % 1000}`
      const e = await rejection(s.exec(`head -c 100000 /dev/zero; sleep ${marker}`, { maxBuffer: 1000 }))
      expect(e.message).toMatch(/exceeds 1000 bytes; use execStream/)
      expect(await gone(`sleep ${marker}`)).toBe(true)
    })

    it('writes files atomically with a mode and reads them back', async () => {
      const d = mkdtempSync(join(tmpdir(), 'hafw-remote-'))
      try {
        const f = join(d, 'keepalived.conf')
        expect(await s.readFile(f)).toBeNull()
        await s.writeFileAtomic(f, 'vrrp_instance VI_1 {}\n', { mode: 0o640, owner: 'root:root' })
        expect(await s.readFile(f)).toBe('vrrp_instance VI_1 {}\n')
        expect((await s.exec(`stat -c '%a %U:%G' ${f}`)).stdout.trim()).toBe('640 root:root')
        // Replace: content changes, the mode of the old file is kept, no temp file stays behind.
        const big = 'x'.repeat(2_000_000)
        await s.writeFileAtomic(f, big)
        expect(await s.readFile(f)).toBe(big)
        expect((await s.exec(`stat -c %a ${f}`)).stdout.trim()).toBe('640')
        expect((await s.exec(`ls -A ${d}`)).stdout).toBe('keepalived.conf\n')
        // A new file without a mode gets 0644 (mktemp's 0600 is not left on it).
        await s.writeFileAtomic(join(d, 'new'), '', { mode: '0600' })
        await s.writeFileAtomic(join(d, 'plain'), 'p')
        expect((await s.exec(`stat -c %a ${d}/new ${d}/plain`)).stdout).toBe('600\n644\n')
        const e = await rejection(s.writeFileAtomic(join(d, 'no/such/dir/f'), 'x'))
        expect(e.message).toMatch(/write .*no\/such\/dir\/f: exit 1\n.*mktemp/)
        await expect(s.writeFileAtomic(f, 'x', { mode: '999' })).rejects.toThrow(/invalid file mode/)
      } finally {
        rmSync(d, { recursive: true, force: true })
      }
    })
  })

  describe('host keys', () => {
    it('refuses an unknown host key, naming it', async () => {
      const kh = writeKnown('kh-empty', '# nothing yet\n')
      const e = await rejection(connect(target({ known_hosts: kh }), opts))
      expect(e.transient).toBe(false)
      expect(e.message).toContain(`host key for [127.0.0.1]:${sshd.port} is unknown (${sshd.hostFingerprint}, ssh-ed25519)`)
      expect(e.message).toMatch(/^n1 \(root@127\.0\.0\.1:\d+\): /)
    })

    it('accept-new records a hashed entry that OpenSSH itself accepts; the next connect passes without it', async () => {
      const kh = 'sub/kh-new' // missing folder and file: created
      const events: string[] = []
      await withSession(target({ known_hosts: kh }), async (s) => expect(s.hostKey.how).toBe('recorded'), {
        ...opts,
        acceptNew: true,
        progress: (e) => events.push(e.message),
      })
      expect(events.join('\n')).toContain(`new host key for [127.0.0.1]:${sshd.port} recorded`)
      const text = readFileSync(join(dir, kh), 'utf8')
      expect(text).toMatch(/^\|1\|[^|]+\|[^ ]+ ssh-ed25519 AAAA\S+\n$/)
      const s2 = await connect(target({ known_hosts: kh }), opts)
      expect(s2.hostKey.how).toBe('known_hosts')
      await s2.close()
      // A second accept-new connect does not write the key twice.
      await withSession(target({ known_hosts: kh }), async () => {}, { ...opts, acceptNew: true })
      expect(readFileSync(join(dir, kh), 'utf8')).toBe(text)
      // OpenSSH's own tools find and trust what we wrote.
      expect(execFileSync('ssh-keygen', ['-F', `[127.0.0.1]:${sshd.port}`, '-f', join(dir, kh)], { encoding: 'utf8' })).toContain('ssh-ed25519')
      const out = execFileSync(
        'ssh',
        ['-F', 'none', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${join(dir, kh)}`, '-i', join(dir, 'id_client'), '-p', String(sshd.port), 'root@127.0.0.1', 'echo via-openssh'],
        { encoding: 'utf8' },
      )
      expect(out).toBe('via-openssh\n')
    })

    it('refuses a changed key, even with accept-new, showing both fingerprints', async () => {
      const [, otherPub] = keygen(dir, 'other_host')
      const kh = writeKnown('kh-changed', `# old key\n[127.0.0.1]:${sshd.port} ${otherPub}\n`)
      for (const acceptNew of [false, true]) {
        const e = await rejection(connect(target({ known_hosts: kh }), { ...opts, acceptNew }))
        expect(e.transient).toBe(false)
        expect(e.message).toContain('HOST KEY CHANGED')
        expect(e.message).toContain(sshd.hostFingerprint)
        expect(e.message).toContain(keyFingerprint(join(dir, 'other_host.pub')))
        expect(e.message).toContain('line 2')
      }
      expect(readFileSync(join(dir, kh), 'utf8')).not.toContain(sshd.hostPub.split(' ')[1])
    })

    it('accepts entries hashed by ssh-keygen -H, [host]:port entries, and lines with several hosts', async () => {
      const kh = writeKnown('kh-hashed', `other.example,10.0.0.9 ${keygen(dir, 'k2')[1]}\n${knownLine}\n`)
      execFileSync('ssh-keygen', ['-q', '-H', '-f', join(dir, kh)], { stdio: 'ignore' })
      expect(readFileSync(join(dir, kh), 'utf8')).not.toContain('127.0.0.1')
      await withSession(target({ known_hosts: kh }), async (s) => expect(s.hostKey.how).toBe('known_hosts'), opts)
      const multi = writeKnown('kh-multi', `  # comment\n\nfoo,[127.0.0.1]:${sshd.port},bar ${sshd.hostPub}\n`)
      await withSession(target({ known_hosts: multi }), async (s) => expect((await s.exec('echo ok')).stdout).toBe('ok\n'), opts)
    })

    it('a bare "127.0.0.1" entry does not cover a non-22 port (as in OpenSSH)', async () => {
      const kh = writeKnown('kh-noport', `127.0.0.1 ${sshd.hostPub}\n`)
      await expect(connect(target({ known_hosts: kh }), opts)).rejects.toThrow(/is unknown/)
    })

    it('refuses a key marked @revoked, ignores @cert-authority lines', async () => {
      const kh = writeKnown('kh-revoked', `@cert-authority * ${keygen(dir, 'ca')[1]}\n${knownLine}\n@revoked * ${sshd.hostPub}\n`)
      const e = await rejection(connect(target({ known_hosts: kh }), opts))
      expect(e.message).toMatch(/marked @revoked in .*kh-revoked line 3/)
      const ca = writeKnown('kh-ca', `@cert-authority [127.0.0.1]:${sshd.port} ${keygen(dir, 'ca2')[1]}\n${knownLine}\n`)
      await withSession(target({ known_hosts: ca }), async () => {}, opts)
    })

    it('a pinned fingerprint is accepted without known_hosts, a wrong pin is refused with both', async () => {
      await withSession(target({ known_hosts: 'kh-none', host_key: sshd.hostFingerprint }), async (s) => expect(s.hostKey.how).toBe('pinned'), opts)
      await withSession(target({ known_hosts: 'kh-none', host_key: sshd.hostFingerprint + '=' }), async () => {}, opts)
      const wrong = keyFingerprint(join(dir, 'other_host.pub'))
      const e = await rejection(connect(target({ host_key: wrong }), { ...opts, acceptNew: true }))
      expect(e.message).toContain(`HOST KEY MISMATCH`)
      expect(e.message).toContain(wrong)
      expect(e.message).toContain(sshd.hostFingerprint)
      expect(existsSync(join(dir, 'kh-none'))).toBe(false)
    })

    it('known_hosts matching rules (pure)', () => {
      const salt = Buffer.alloc(20, 7)
      expect(hostMatches(hashHostName('[h]:2222', salt), '[h]:2222')).toBe(true)
      expect(hostMatches(hashHostName('[h]:2222', salt), 'h')).toBe(false)
      expect(hostMatches('*.example.com,!bad.example.com', 'a.example.com')).toBe(true)
      expect(hostMatches('*.example.com,!bad.example.com', 'bad.example.com')).toBe(false)
      expect(hostMatches('10.0.0.?', '10.0.0.7')).toBe(true)
      expect(hostMatches('10.0.0.?', '10.0.0.17')).toBe(false)
      expect(hostMatches('Node1', 'node1')).toBe(true)
      const key = Buffer.from(sshd.hostPub.split(' ')[1]!, 'base64')
      expect(fingerprint(key)).toBe(sshd.hostFingerprint)
      const entries = parseKnownHosts(`@bogus h ${sshd.hostPub}\nh ssh-ed25519 AAAAbroken\nh ssh-rsa ${sshd.hostPub.split(' ')[1]}\n`)
      expect(entries).toEqual([]) // unknown marker, bad base64 and a type/blob mismatch are skipped
      expect(checkHostKey([], 'h', key)).toEqual({ ok: false, why: 'unknown' })
    })
  })

  describe('connection faults', () => {
    it('connection refused is transient and names the node', async () => {
      const port = await freePort()
      const e = await rejection(connect(target({ port }), opts))
      expect(e.transient).toBe(true)
      expect(e.message).toBe(`n1 (root@127.0.0.1:${port}): connection refused (no sshd listening on that port?)`)
    })

    it('a silent server times out (transient) after connect_timeout', async () => {
      const silent: Server = createServer(() => {})
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
      const port = (silent.address() as { port: number }).port
      try {
        const t0 = Date.now()
        const e = await rejection(connect(target({ port, connect_timeout: 1 }), opts))
        expect(Date.now() - t0).toBeGreaterThanOrEqual(900)
        expect(Date.now() - t0).toBeLessThan(3000)
        expect(e.transient).toBe(true)
        expect(e.message).toMatch(/timed out after 1 s/)
      } finally {
        silent.close()
      }
    })

    it('an AbortSignal stops a connect in progress', async () => {
      const silent: Server = createServer(() => {})
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
      try {
        const ac = new AbortController()
        setTimeout(() => ac.abort(new HafwError('operator cancelled')), 200)
        const t0 = Date.now()
        const e = await rejection(connect(target({ port: (silent.address() as { port: number }).port }), { ...opts, signal: ac.signal }))
        expect(Date.now() - t0).toBeLessThan(2000)
        expect(e.message).toBe('operator cancelled')
      } finally {
        silent.close()
      }
    })

    it('a key that is not authorized fails authentication (not transient)', async () => {
      keygen(dir, 'id_stranger')
      const e = await rejection(connect(target({ identity: 'id_stranger' }), opts))
      expect(e.transient).toBe(false)
      expect(e.message).toMatch(/authentication failed for user root with identity .*id_stranger/)
    })

    it('no identity file and no agent is a clear error', async () => {
      const e = await rejection(connect(target({ identity: 'missing_key' }), { ...opts, agent: '' }))
      expect(e.message).toMatch(/no identity file .*missing_key and no SSH agent/)
    })

    it('uses the SSH agent when the identity file does not exist', async () => {
      const sock = join(dir, 'agent.sock')
      const agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' })
      try {
        for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 20))
        execFileSync('ssh-add', ['-q', join(dir, 'id_client')], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'ignore' })
        await withSession(target({ identity: '~/.ssh/hafw-no-such-key' }), async (s) => expect((await s.exec('echo agent')).stdout).toBe('agent\n'), {
          ...opts,
          agent: sock,
        })
      } finally {
        agent.kill('SIGTERM')
      }
    })

    it('a lost connection fails the running command as transient, and the command dies with it', async () => {
      const s = await connect(target(), opts)
      const marker = `35.${process.pid}${Date.now() % 1000}`
      try {
        const port = (await s.exec('echo $SSH_CONNECTION')).stdout.split(' ')[1]
        const { stdout, done } = await s.openStream(`echo started; sleep ${marker}`, { timeoutMs: 10_000 })
        done.catch(() => {})
        for await (const chunk of stdout.iterator({ destroyOnReturn: false })) {
          expect(String(chunk)).toBe('started\n')
          break
        }
        // Kill the sshd processes serving this connection (the server side of our socket).
        const ss = execFileSync('ss', ['-Htnp', 'state', 'established', `( dport = :${port} )`], { encoding: 'utf8' })
        const pids = new Set([...ss.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])))
        expect(pids.size).toBeGreaterThan(0)
        for (const pid of pids) process.kill(pid, 'SIGKILL')
        const e = await rejection(done)
        expect(e.transient).toBe(true)
        expect(e.message).toMatch(/connection lost/)
        await expect(s.exec('true')).rejects.toThrow(/connection lost/)
        expect(await gone(`sleep ${marker}`)).toBe(true)
      } finally {
        await s.close()
      }
    })

    it('keepalives notice a peer that stopped answering', async () => {
      const s = await connect(target(), { ...opts, keepaliveIntervalMs: 200, keepaliveCountMax: 2 })
      const port = (await s.exec('echo $SSH_CONNECTION')).stdout.split(' ')[1]
      const ss = execFileSync('ss', ['-Htnp', 'state', 'established', `( dport = :${port} )`], { encoding: 'utf8' })
      const pids = [...new Set([...ss.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])))]
      // Frozen, not dead: the TCP connection stays up, only keepalives can tell.
      for (const pid of pids) process.kill(pid, 'SIGSTOP')
      try {
        const t0 = Date.now()
        const e = await rejection(s.exec('sleep 10', { timeoutMs: 20_000 }))
        expect(Date.now() - t0).toBeLessThan(3000)
        expect(e.transient).toBe(true)
        expect(e.message).toMatch(/connection lost: no answer to keepalives/)
      } finally {
        for (const pid of pids) process.kill(pid, 'SIGKILL')
        await s.close()
      }
    })

    it('withSession closes the session when the function throws', async () => {
      let kept: Session | undefined
      await expect(
        withSession(target(), async (s) => {
          kept = s
          throw new Error('boom')
        }, opts),
      ).rejects.toThrow('boom')
      await expect(kept!.exec('true')).rejects.toThrow(/session closed/)
    })
  })

  describe('jump host', () => {
    let second: Sshd
    beforeAll(async () => {
      second = await startSshd({ authorizedKeys: [clientPub] })
      appendFileSync(join(dir, 'known_hosts'), `[127.0.0.1]:${second.port} ${second.hostPub}\n`)
    })
    afterAll(async () => {
      await second?.stop()
    })

    it('connects through the first sshd (forwardOut) to a second one', async () => {
      await withSession(target({ port: second.port, jump: `root@127.0.0.1:${sshd.port}` }), async (s) => {
        expect(s.hostKey.fingerprint).toBe(second.hostFingerprint)
        // The TCP peer of the second sshd is the first sshd (its forwarding), not this process.
        const src = (await s.exec('echo $SSH_CONNECTION')).stdout.split(' ')[1]
        const ss = execFileSync('ss', ['-Htnp', 'state', 'established', `( sport = :${src} )`], { encoding: 'utf8' })
        expect(ss).toMatch(/users:\(\("sshd"/)
        expect(ss).not.toContain(`pid=${process.pid},`)
      }, opts)
    })

    it('reports a jump host that refuses forwarding, and an unreachable target behind it', async () => {
      const strict = await startSshd({ authorizedKeys: [clientPub], extraConfig: ['AllowTcpForwarding no'] })
      try {
        appendFileSync(join(dir, 'known_hosts'), `[127.0.0.1]:${strict.port} ${strict.hostPub}\n`)
        const e = await rejection(connect(target({ port: second.port, jump: `127.0.0.1:${strict.port}` }), opts))
        expect(e.message).toMatch(/the jump host could not reach 127\.0\.0\.1:\d+: forwarding is administratively prohibited there$/)
        expect(e.transient).toBe(false)
        const dead = await freePort()
        const e2 = await rejection(connect(target({ port: dead, jump: `127.0.0.1:${sshd.port}` }), opts))
        expect(e2.transient).toBe(true)
        expect(e2.message).toContain(`the jump host could not reach 127.0.0.1:${dead}`)
      } finally {
        await strict.stop()
      }
    })
  })

  describe.runIf(hasSudo)('non-root user with sudo', () => {
    const user = `hafwt${process.pid % 100000}`
    const sudoers = `/etc/sudoers.d/${user}`
    beforeAll(() => {
      execFileSync('useradd', ['-M', '-d', '/nonexistent', '-s', '/bin/sh', user])
      // '*' = no password but not locked: sshd without PAM refuses "!"-locked accounts.
      execFileSync('usermod', ['-p', '*', user])
      writeFileSync(sudoers, `${user} ALL=(root) NOPASSWD: ALL\n`, { mode: 0o440 })
    })
    afterAll(() => {
      rmSync(sudoers, { force: true })
      execFileSync('userdel', [user])
    })

    it('runs privileged commands through sudo -n, unprivileged ones on request', async () => {
      await withSession(target({ user, sudo: true }), async (s) => {
        expect((await s.exec('id -un')).stdout).toBe('root\n')
        expect((await s.exec('id -un', { sudo: false })).stdout).toBe(`${user}\n`)
        // stdin and binary-safe stdout pass through sudo (Debian's use_pty) unchanged.
        expect((await s.exec('cat', { input: 'a\nb\r\n' })).stdout).toBe('a\nb\r\n')
        const f = `/root/.hafw-sudo-test-${process.pid}`
        try {
          await s.writeFileAtomic(f, 'secret\n', { mode: 0o600 })
          expect(readFileSync(f, 'utf8')).toBe('secret\n')
          expect(await s.readFile(f)).toBe('secret\n')
          expect(await s.readFile(f, { sudo: false })).toBeNull() // /root is not readable by the user
        } finally {
          rmSync(f, { force: true })
        }
        const marker = `34.${process.pid}${Date.now() % 1000}`
        const e = await rejection(s.exec(`sleep ${marker}; echo never`, { timeoutMs: 500 }))
        expect(e.transient).toBe(true)
        expect(await gone(`sleep ${marker}`)).toBe(true)
      }, opts)
    })

    it('command latency (user with /bin/sh, so no shell start-up files), printed', async () => {
      await withSession(target({ user, sudo: true }), async (s) => {
        for (const sudo of [false, true]) {
          const t0 = performance.now()
          for (let i = 0; i < 20; i++) expect((await s.exec('echo $((1+1))', { sudo })).stdout).toBe('2\n')
          console.log(`exec round trip${sudo ? ' through sudo -n' : ''}: ${((performance.now() - t0) / 20).toFixed(1)} ms (mean of 20, sequential)`)
        }
      }, opts)
    })

    it('sudo -n fails fast instead of prompting when the user may not sudo', async () => {
      rmSync(sudoers, { force: true })
      try {
        await withSession(target({ user, sudo: true }), async (s) => {
          const r = await s.exec('id -u', { timeoutMs: 5000 })
          expect(r.code).toBe(1)
          expect(r.stderr).toMatch(/sudo: a password is required/)
        }, opts)
      } finally {
        writeFileSync(sudoers, `${user} ALL=(root) NOPASSWD: ALL\n`, { mode: 0o440 })
      }
    })
  })
})
