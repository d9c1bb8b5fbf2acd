import { readFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import type { Duplex } from 'node:stream'
import ssh2 from 'ssh2'
import type { Client as ClientT, ConnectConfig } from 'ssh2'
import { HafwError, reporter, silentProgress, type Progress } from '@hafw/core'
import type { SshTarget } from '@hafw/inventory'
import {
  appendKnownHost,
  blobType,
  checkHostKey,
  fingerprint,
  knownHostName,
  preferredHostKeyAlgorithms,
  readKnownHosts,
  type KnownHost,
} from './knownhosts.js'
import { Session, type HostKeyInfo } from './session.js'

const { Client } = ssh2
const FAST_CIPHERS = ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com']

export interface ConnectOptions {
  /** the node's name, for messages ("cent7i (root@192.168.0.41:22): ...") */
  name?: string
  /** relative identity / known_hosts paths are relative to this (the inventory file's folder); default: cwd */
  baseDir?: string
  /** record an unknown host key in known_hosts instead of refusing (a changed key is refused regardless) */
  acceptNew?: boolean
  /** agent socket used when the identity file does not exist; default: $SSH_AUTH_SOCK */
  agent?: string
  /** for an encrypted identity file */
  passphrase?: string
  /** default 15000 ms; the connection is declared lost after keepaliveCountMax unanswered */
  keepaliveIntervalMs?: number
  /** default 3 */
  keepaliveCountMax?: number
  /** default per-command timeout for the session; 0 = none. Default 300000 ms */
  commandTimeoutMs?: number
  /** channels used at once on the connection (sshd's MaxSessions is 10); default 8 */
  maxChannels?: number
  signal?: AbortSignal
  progress?: Progress
}

/** `~` is the home directory; a relative path is relative to baseDir (the inventory's folder). */
export function expandPath(p: string, baseDir?: string): string {
  if (p === '~') return homedir()
  if (p.startsWith('~/')) return join(homedir(), p.slice(2))
  return resolve(baseDir ?? process.cwd(), p)
}

interface Hop {
  host: string
  port: number
  user: string
  pinned?: string
  label: string
}

/** What every hop of one connect() shares. */
interface Ctx {
  opts: ConnectOptions
  knownHostsFile: string
  knownHosts: KnownHost[]
  auth: Pick<ConnectConfig, 'privateKey' | 'passphrase' | 'agent'>
  authDesc: string
  timeoutMs: number
}

function parseJump(jump: string, user: string): { host: string; port: number; user: string } {
  const m = /^(?:([^@]+)@)?([^:@]+)(?::(\d+))?$/.exec(jump)
  if (!m) throw new HafwError(`invalid jump host ${JSON.stringify(jump)}: expected [user@]host[:port]`)
  return { user: m[1] ?? user, host: m[2]!, port: m[3] ? Number(m[3]) : 22 }
}

async function credentials(target: SshTarget, opts: ConnectOptions, label: string): Promise<Pick<Ctx, 'auth' | 'authDesc'>> {
  const file = expandPath(target.identity, opts.baseDir)
  try {
    const privateKey = await readFile(file)
    return { auth: { privateKey, ...(opts.passphrase ? { passphrase: opts.passphrase } : {}) }, authDesc: `identity ${file}` }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new HafwError(`${label}: cannot read identity ${file}: ${(e as Error).message}`)
  }
  const agent = opts.agent ?? process.env.SSH_AUTH_SOCK
  if (agent) return { auth: { agent }, authDesc: `the SSH agent at ${agent} (no identity file ${file})` }
  throw new HafwError(`${label}: no identity file ${file} and no SSH agent (SSH_AUTH_SOCK is not set)`)
}

/** Turn ssh2/socket errors into messages an operator can act on; network faults are transient. */
function classify(err: Error & { code?: string; level?: string }, hop: Hop, ctx: Ctx): HafwError {
  const transient = (m: string) => new HafwError(`${hop.label}: ${m}`, { transient: true, cause: err })
  const permanent = (m: string) => new HafwError(`${hop.label}: ${m}`, { cause: err })
  if (err.level === 'client-authentication') return permanent(`authentication failed for user ${hop.user} with ${ctx.authDesc}`)
  switch (err.code) {
    case 'ECONNREFUSED':
      return transient('connection refused (no sshd listening on that port?)')
    case 'ECONNRESET':
    case 'EPIPE':
      return transient('connection reset by peer')
    case 'ETIMEDOUT':
      return transient('connection timed out')
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
      return transient('host unreachable')
    case 'EAI_AGAIN':
      return transient('name resolution failed (temporary)')
    case 'ENOTFOUND':
      return permanent(`unknown host name ${hop.host}`)
  }
  if (err.level === 'client-timeout') {
    return transient(err.message === 'Keepalive timeout' ? 'no answer to keepalives' : `timed out after ${ctx.timeoutMs / 1000} s (connect, handshake and authentication)`)
  }
  if (/before handshake/.test(err.message)) return transient('connection closed before the SSH handshake')
  if (/Cannot parse privateKey|private key/i.test(err.message)) return permanent(`cannot use ${ctx.authDesc}: ${err.message}`)
  return permanent(err.message)
}

/** Check (and with acceptNew record) a presented host key; the refusal message names both fingerprints. */
async function verifyHostKey(hop: Hop, ctx: Ctx, key: Buffer): Promise<HostKeyInfo> {
  const name = knownHostName(hop.host, hop.port)
  const fp = fingerprint(key)
  const type = blobType(key) ?? 'unknown'
  const file = ctx.knownHostsFile
  const v = checkHostKey(ctx.knownHosts, name, key, hop.pinned)
  if (v.ok) return { fingerprint: fp, type, how: v.how }
  const refuse = (m: string) => new HafwError(`${hop.label}: ${m}`)
  switch (v.why) {
    case 'unknown': {
      if (!ctx.opts.acceptNew) {
        throw refuse(`host key for ${name} is unknown (${fp}, ${type}): not in ${file}. Check it, then pin it as ssh.host_key or connect once with --accept-new to record it`)
      }
      await appendKnownHost(file, name, key)
      ctx.knownHosts.push({ line: 0, patterns: name, type, key })
      reporter(ctx.opts.progress ?? silentProgress, ctx.opts.name ?? '').warn(`new host key for ${name} recorded in ${file}: ${fp} (${type})`)
      return { fingerprint: fp, type, how: 'recorded' }
    }
    case 'changed':
      throw refuse(
        `HOST KEY CHANGED for ${name}: the host presented ${fp} (${type}) but ${file} (line ${v.lines.join(', ')}) expects ${v.expected.join(', ')}. ` +
          `Refused: the host was reinstalled or someone is in the middle. After checking the new key, remove the old one with ssh-keygen -R '${name}' -f ${file}`,
      )
    case 'revoked':
      throw refuse(`host key ${fp} (${type}) for ${name} is marked @revoked in ${file} line ${v.line}: refused`)
    case 'pin-mismatch':
      throw refuse(`HOST KEY MISMATCH for ${name}: the host presented ${fp} (${type}) but ssh.host_key pins ${v.expected}: refused`)
  }
}

/** One SSH connection (over `sock` when it comes through a jump host), resolved once authenticated. */
function openHop(hop: Hop, ctx: Ctx, sock?: Duplex): Promise<{ client: ClientT; hostKey: HostKeyInfo }> {
  return new Promise((resolvePromise, reject) => {
    const client = new Client()
    const signal = ctx.opts.signal
    let settled = false
    let hostKey: HostKeyInfo | undefined
    let refusal: HafwError | undefined
    const finish = (e?: Error) => {
      if (settled) return
      settled = true
      signal?.removeEventListener('abort', onAbort)
      if (e || !hostKey) {
        client.end()
        reject(e ?? new HafwError(`${hop.label}: host key not checked`))
      } else resolvePromise({ client, hostKey })
    }
    const onAbort = () => finish(signal!.reason instanceof Error ? signal!.reason : new HafwError(`${hop.label}: connect aborted`))
    if (signal?.aborted) return onAbort()
    signal?.addEventListener('abort', onAbort, { once: true })
    // Every command is a few small packets each way: with Nagle's algorithm each round trip
    // waits out the peer's delayed ACK (measured here: 42-88 ms per exec, 4-9 ms without).
    client.on('connect', () => client.setNoDelay(true))
    client.on('ready', () => finish())
    client.on('error', (e: Error) => finish(refusal ?? classify(e, hop, ctx)))
    client.on('close', () => finish(refusal ?? new HafwError(`${hop.label}: connection closed during the SSH handshake`, { transient: true })))

    const prefer = preferredHostKeyAlgorithms(ctx.knownHosts, knownHostName(hop.host, hop.port))
    const config: ConnectConfig = {
      host: hop.host,
      port: hop.port,
      username: hop.user,
      readyTimeout: ctx.timeoutMs,
      keepaliveInterval: ctx.opts.keepaliveIntervalMs ?? 15_000,
      keepaliveCountMax: ctx.opts.keepaliveCountMax ?? 3,
      ...ctx.auth,
      ...(sock ? { sock } : {}),
      algorithms: {
        // AES-GCM runs on the CPU's AES instructions through OpenSSL: measured here 86 MiB/s
        // against 48 MiB/s for chacha20-poly1305, ssh2's first choice.
        cipher: { remove: FAST_CIPHERS, prepend: FAST_CIPHERS } as never,
        ...(prefer.length ? { serverHostKey: { remove: prefer, prepend: prefer } as never } : {}),
      },
      hostVerifier: (key: Buffer, verify: (ok: boolean) => void) => {
        verifyHostKey(hop, ctx, key).then(
          (info) => ((hostKey = info), verify(true)),
          (e: unknown) => ((refusal = e instanceof HafwError ? e : new HafwError(`${hop.label}: ${(e as Error).message}`)), verify(false)),
        )
      },
    }
    try {
      client.connect(config)
    } catch (e) {
      finish(classify(e as Error, hop, ctx))
    }
  })
}

function forward(jump: ClientT, hop: Hop): Promise<Duplex> {
  return new Promise((res, rej) =>
    jump.forwardOut('127.0.0.1', 0, hop.host, hop.port, (err, stream) => {
      if (!err) return res(stream)
      // RFC 4254 reason 1: administratively prohibited (AllowTcpForwarding no, PermitOpen): not worth a retry.
      const prohibited = (err as Error & { reason?: number }).reason === 1
      const why = prohibited ? 'forwarding is administratively prohibited there' : err.message.replace(/^\(SSH\) Channel open failure: /, '')
      rej(new HafwError(`${hop.label}: the jump host could not reach ${hop.host}:${hop.port}: ${why}`, { transient: !prohibited, cause: err }))
    }),
  )
}

/**
 * Open one authenticated SSH connection to a node: key from `identity` (or the agent when that
 * file does not exist), host key pinned by `host_key` or `known_hosts`, through `jump` when set.
 * Errors are HafwErrors naming the node; network faults carry transient: true.
 */
export async function connect(target: SshTarget, opts: ConnectOptions = {}): Promise<Session> {
  const label = `${opts.name ? `${opts.name} ` : ''}(${target.user}@${target.host}:${target.port})`
  const knownHostsFile = expandPath(target.known_hosts, opts.baseDir)
  const ctx: Ctx = {
    opts,
    knownHostsFile,
    knownHosts: await readKnownHosts(knownHostsFile),
    ...(await credentials(target, opts, label)),
    timeoutMs: target.connect_timeout * 1000,
  }
  const hop: Hop = { host: target.host, port: target.port, user: target.user, label, ...(target.host_key ? { pinned: target.host_key } : {}) }
  let jump: ClientT | undefined
  let sock: Duplex | undefined
  if (target.jump) {
    const j = parseJump(target.jump, target.user)
    jump = (await openHop({ ...j, label: `${label}: jump host ${j.user}@${j.host}:${j.port}` }, ctx)).client
    try {
      sock = await forward(jump, hop)
    } catch (e) {
      jump.end()
      throw e
    }
  }
  try {
    const { client, hostKey } = await openHop(hop, ctx, sock)
    return new Session({
      client,
      ...(jump ? { jump } : {}),
      target,
      label,
      hostKey,
      commandTimeoutMs: opts.commandTimeoutMs ?? 300_000,
      maxChannels: opts.maxChannels ?? 8,
    })
  } catch (e) {
    jump?.end()
    throw e
  }
}

/** connect(), run fn, and close the session whatever happens: one connection per node per operation. */
export async function withSession<T>(target: SshTarget, fn: (s: Session) => Promise<T>, opts: ConnectOptions = {}): Promise<T> {
  const s = await connect(target, opts)
  try {
    return await fn(s)
  } finally {
    await s.close()
  }
}
