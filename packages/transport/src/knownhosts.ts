import { createHash, createHmac, randomBytes } from 'node:crypto'
import { appendFile, mkdir, readFile } from 'node:fs/promises'
import { dirname } from 'node:path'

/**
 * OpenSSH known_hosts, as sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT" describes it:
 *   [@marker] patterns keytype base64-key [comment]
 * patterns: comma-separated names with * and ? wildcards and !negation, "[host]:port" for a
 * non-default port, or one hashed name "|1|base64(salt)|base64(HMAC-SHA1(salt, name))".
 */
export interface KnownHost {
  /** 1-based line in the file, for messages */
  line: number
  marker?: 'revoked' | 'cert-authority'
  patterns: string
  type: string
  key: Buffer
}

export function parseKnownHosts(text: string): KnownHost[] {
  const out: KnownHost[] = []
  text.split('\n').forEach((raw, i) => {
    const fields = raw.trim().split(/\s+/)
    if (!fields[0] || fields[0].startsWith('#')) return
    let marker: KnownHost['marker']
    if (fields[0].startsWith('@')) {
      const m = fields.shift()!.slice(1)
      // An unknown marker makes OpenSSH skip the line; so do we.
      if (m !== 'revoked' && m !== 'cert-authority') return
      marker = m
    }
    const [patterns, type, b64] = fields
    if (!patterns || !type || !b64) return
    const key = Buffer.from(b64, 'base64')
    // The blob starts with its own type name; a mismatch means a corrupt line, which OpenSSH skips.
    if (blobType(key) !== type) return
    out.push({ line: i + 1, ...(marker ? { marker } : {}), patterns, type, key })
  })
  return out
}

/** The name OpenSSH looks a host up by: "host" on port 22, "[host]:port" otherwise. */
export function knownHostName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`
}

/** The key type stored at the start of an SSH public key blob ("ssh-ed25519", ...). */
export function blobType(key: Buffer): string | undefined {
  if (key.length < 4) return undefined
  const n = key.readUInt32BE(0)
  return n > 0 && n < 64 && key.length >= 4 + n ? key.subarray(4, 4 + n).toString('latin1') : undefined
}

/** OpenSSH's fingerprint, as `ssh-keygen -lf` prints it: SHA256:base64 without padding. */
export function fingerprint(key: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(key).digest('base64').replace(/=+$/, '')
}

export function normalizeFingerprint(fp: string): string {
  return fp.trim().replace(/=+$/, '')
}

function hashed(name: string, salt: Buffer): string {
  return createHmac('sha1', salt).update(name).digest('base64')
}

/** A hashed host field as `ssh-keygen -H` writes it. */
export function hashHostName(name: string, salt: Buffer = randomBytes(20)): string {
  return `|1|${salt.toString('base64')}|${hashed(name, salt)}`
}

function glob(pattern: string, name: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')
  return new RegExp(`^${re}$`, 'i').test(name)
}

/** Whether a line's host field matches the name (hashed, wildcards, negation). */
export function hostMatches(patterns: string, name: string): boolean {
  if (patterns.startsWith('|1|')) {
    const [, , salt, hash] = patterns.split('|')
    return !!salt && !!hash && hashed(name, Buffer.from(salt, 'base64')) === hash
  }
  let hit = false
  for (const p of patterns.split(',')) {
    if (p.startsWith('!')) {
      if (glob(p.slice(1), name)) return false
    } else if (glob(p, name)) hit = true
  }
  return hit
}

export type HostKeyVerdict =
  | { ok: true; how: 'known_hosts' | 'pinned'; line?: number }
  | { ok: false; why: 'unknown' }
  | { ok: false; why: 'changed'; expected: string[]; lines: number[] }
  | { ok: false; why: 'revoked'; line: number }
  | { ok: false; why: 'pin-mismatch'; expected: string }

/**
 * Decide on a presented host key. A pinned fingerprint is authoritative (it comes from the
 * inventory); known_hosts still refuses a revoked key. Without a pin, any key recorded for the
 * host that differs from the presented one (of any type) counts as a changed key.
 */
export function checkHostKey(entries: readonly KnownHost[], name: string, key: Buffer, pinned?: string): HostKeyVerdict {
  const revoked = entries.find((e) => e.marker === 'revoked' && e.key.equals(key))
  if (revoked) return { ok: false, why: 'revoked', line: revoked.line }
  if (pinned) {
    const want = normalizeFingerprint(pinned)
    return fingerprint(key) === want ? { ok: true, how: 'pinned' } : { ok: false, why: 'pin-mismatch', expected: want }
  }
  const mine = entries.filter((e) => !e.marker && hostMatches(e.patterns, name))
  const same = mine.find((e) => e.key.equals(key))
  if (same) return { ok: true, how: 'known_hosts', line: same.line }
  if (mine.length === 0) return { ok: false, why: 'unknown' }
  // Same-type keys first: they are the ones that "changed".
  const type = blobType(key)
  mine.sort((a, b) => Number(b.type === type) - Number(a.type === type))
  return { ok: false, why: 'changed', expected: [...new Set(mine.map((e) => `${fingerprint(e.key)} (${e.type})`))], lines: mine.map((e) => e.line) }
}

/**
 * Host key algorithms to offer first: the types already recorded for this host, so that a server
 * with several host keys presents the one we know (OpenSSH does the same).
 */
export function preferredHostKeyAlgorithms(entries: readonly KnownHost[], name: string): string[] {
  const byType: Record<string, string[]> = {
    'ssh-ed25519': ['ssh-ed25519'],
    'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
    'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
    'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
    'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
  }
  const out = new Set<string>()
  for (const e of entries) if (!e.marker && hostMatches(e.patterns, name)) for (const a of byType[e.type] ?? []) out.add(a)
  return [...out]
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return ''
    throw e
  }
}

/** A missing file is an empty one: every host in it is unknown. */
export async function readKnownHosts(file: string): Promise<KnownHost[]> {
  return parseKnownHosts(await readText(file))
}

/**
 * Record a host key (hashed name, like Debian's HashKnownHosts default). Re-reads the file first
 * so that parallel connects to the same new host do not write it twice. One appendFile call is
 * one O_APPEND write, so concurrent writers do not interleave lines.
 */
export async function appendKnownHost(file: string, name: string, key: Buffer): Promise<void> {
  const text = await readText(file)
  if (parseKnownHosts(text).some((e) => !e.marker && e.key.equals(key) && hostMatches(e.patterns, name))) return
  await mkdir(dirname(file), { recursive: true, mode: 0o700 })
  const sep = text && !text.endsWith('\n') ? '\n' : ''
  await appendFile(file, `${sep}${hashHostName(name)} ${blobType(key)} ${key.toString('base64')}\n`, { mode: 0o600 })
}
