/**
 * A private OpenSSH sshd on 127.0.0.1 for tests: its own host key, authorized_keys and port,
 * started with -D -e (foreground, logs on stderr) and killed by PID. Needs root (it logs users in).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, connect as tcpConnect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Sshd {
  port: number
  pid: number
  dir: string
  /** "ssh-ed25519 AAAA..." */
  hostPub: string
  /** as `ssh-keygen -lf` prints it */
  hostFingerprint: string
  /** the last lines sshd logged, for failed assertions */
  log(): string
  stop(): Promise<void>
}

/** A fresh ed25519 key pair; returns [privatePath, publicLine]. */
export function keygen(dir: string, name: string): [string, string] {
  const path = join(dir, name)
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', path])
  return [path, readFileSync(`${path}.pub`, 'utf8').trim()]
}

export function keyFingerprint(pubFile: string): string {
  return execFileSync('ssh-keygen', ['-lf', pubFile], { encoding: 'utf8' }).split(' ')[1]!
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port
      srv.close(() => resolve(port))
    })
  })
}

/** Wait until something on the port speaks SSH (sends its banner). */
async function waitBanner(port: number, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`sshd exited with ${child.exitCode}:\n${log()}`)
    const ok = await new Promise<boolean>((resolve) => {
      const s = tcpConnect(port, '127.0.0.1')
      s.setTimeout(1000, () => (s.destroy(), resolve(false)))
      s.once('data', (d) => (s.destroy(), resolve(d.toString().startsWith('SSH-2.0'))))
      s.once('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`sshd on port ${port} did not come up:\n${log()}`)
}

export async function startSshd(opts: { authorizedKeys: string[]; port?: number; hostKeyDir?: string; extraConfig?: string[] }): Promise<Sshd> {
  const dir = mkdtempSync(join(tmpdir(), 'hafw-sshd-'))
  // Reusing a host key directory lets a test restart "the same host" on a port.
  const keyDir = opts.hostKeyDir ?? dir
  let hostPub: string
  try {
    hostPub = readFileSync(join(keyDir, 'host_ed25519.pub'), 'utf8').trim()
  } catch {
    hostPub = keygen(keyDir, 'host_ed25519')[1]
  }
  // sshd reads authorized_keys with the user's privileges: a non-root test user must reach it.
  chmodSync(dir, 0o755)
  writeFileSync(join(dir, 'authorized_keys'), opts.authorizedKeys.join('\n') + '\n', { mode: 0o644 })
  const port = opts.port ?? (await freePort())
  const config = [
    'ListenAddress 127.0.0.1',
    `HostKey ${join(keyDir, 'host_ed25519')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'PidFile none',
    'StrictModes no',
    'UsePAM no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin prohibit-password',
    'Subsystem sftp internal-sftp',
    'MaxStartups 50',
    'LogLevel INFO',
    ...(opts.extraConfig ?? []),
  ]
  writeFileSync(join(dir, 'sshd_config'), config.join('\n') + '\n')
  // sshd insists on its privilege-separation directory.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 })
  // setpriv execs sshd with a parent-death signal: a test worker that dies leaves no sshd behind.
  const child = spawn('setpriv', ['--pdeathsig', 'TERM', '/usr/sbin/sshd', '-D', '-e', '-f', join(dir, 'sshd_config'), '-p', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let logText = ''
  child.stderr!.on('data', (d: Buffer) => (logText = (logText + d.toString()).slice(-20_000)))
  const log = () => logText.split('\n').slice(-30).join('\n')
  await waitBanner(port, child, log)
  return {
    port,
    pid: child.pid!,
    dir,
    hostPub,
    hostFingerprint: keyFingerprint(join(keyDir, 'host_ed25519.pub')),
    log,
    stop: () =>
      new Promise<void>((resolve) => {
        const done = () => (rmSync(dir, { recursive: true, force: true }), resolve())
        if (child.exitCode !== null || child.signalCode !== null) return done()
        child.once('exit', done)
        process.kill(child.pid!, 'SIGTERM')
      }),
  }
}
