import { constants } from 'node:os'
import { StringDecoder } from 'node:string_decoder'
import { Duplex, type Readable } from 'node:stream'
import type { Client, ClientChannel } from 'ssh2'
import { HafwError } from '@hafw/core'
import type { SshTarget } from '@hafw/inventory'
import { shellJoin, shellQuote } from './quote.js'

export interface CommandOptions {
  /** Kill the remote command after this long; 0 = never. Default: the session's commandTimeoutMs. */
  timeoutMs?: number
  signal?: AbortSignal
  /** Bytes for the command's stdin (stdin is closed either way). */
  input?: string | Buffer
  /**
   * Run with root privilege. On a target with `sudo: true` (a non-root user) the command is run
   * through `sudo -n`; `false` opts one command out. On other targets it changes nothing.
   */
  sudo?: boolean
}

export interface ExecOptions extends CommandOptions {
  /** Throw a HafwError (naming node, command and stderr) on a non-zero exit. */
  check?: boolean
  /** Bytes of stdout kept before failing; use execStream for big outputs. Default 64 MiB. */
  maxBuffer?: number
  /** Sees each stdout chunk as it arrives (all of stdout is still collected), e.g. a progress marker. */
  onStdout?: (chunk: Buffer) => void
}

export interface ExecResult {
  /** exit status; 128+N when the command died of signal N, as a shell reports it */
  code: number
  signal: string | null
  stdout: string
  stderr: string
}

export interface StreamResult {
  code: number
  signal: string | null
  /** the last 64 KiB of stderr */
  stderr: string
}

export interface RemoteStream {
  /**
   * stdout with back-pressure: sshd is only asked for more as it is read. Read it to the end;
   * destroying it (or leaving a for-await loop early) kills the command and rejects `done`.
   */
  stdout: Readable
  done: Promise<StreamResult>
  /** Kill the command; `done` rejects with the reason. */
  cancel(reason?: Error): void
}

/** A remote shell loop answering one request line at a time (Session.openLoop). */
export interface RemoteLoop {
  /** Send one request line; resolves with the answer, up to and including its "@@end" line. One at a time. */
  ask(line: string, opts?: { timeoutMs?: number; signal?: AbortSignal }): Promise<string>
  /** End the loop (its stdin reaches EOF) and free the channel. */
  close(): void
  /** Set once the loop can answer no more (closed, timed out, connection lost). */
  readonly dead: Error | null
}

export interface WriteOptions extends Omit<CommandOptions, 'input'> {
  /** e.g. 0o640 or "0640"; default: the mode of the file replaced, else 0644 */
  mode?: number | string
  /** "user" or "user:group"; default: the owner of the file replaced (when root) */
  owner?: string
}

export interface HostKeyInfo {
  fingerprint: string
  type: string
  /** how it was trusted: a known_hosts line, the inventory's pin, or recorded just now (accept-new) */
  how: 'known_hosts' | 'pinned' | 'recorded'
}

export interface SessionInit {
  client: Client
  /** the connection through which `client` was opened, closed with it */
  jump?: Client
  target: SshTarget
  label: string
  hostKey: HostKeyInfo
  commandTimeoutMs: number
  maxChannels: number
}

const STDERR_TAIL = 64 * 1024
const MISSING = 100

/*
 * Every command runs as `sh -c WRAP hafw CMD N` so that killing it works everywhere: sshd
 * refuses "signal" requests for root sessions ("requires privilege separation"), and closing a
 * pty-less channel leaves the command running. So the command's life is tied to the channel's
 * stdin. A feeder copies the N input bytes into CMD's stdin and closes it, then leaves a watcher
 * that reads the channel until EOF and kills the whole process group (sshd made the session a
 * group leader; with sudo, sudo did). hafw sends that EOF to cancel, sshd sends it when the
 * connection dies or the channel closes after a normal exit. So background processes CMD left in
 * its group end with the channel too: use setsid or systemd-run for one that must stay.
 * The watcher starts only after `head` is done, so both never read at once; `head -c` must not
 * read ahead (GNU coreutils does not).
 */
const WRAP = `{ head -c "$2"; exec >&-; sh -c 'cat >/dev/null; kill -KILL 0' hafw-watch <&3 >/dev/null 2>&1 & } 3<&0 | sh -c "$1" hafw`

/*
 * Without input bytes for the command (most commands, and every `sh -s` script small enough to
 * travel as an argument) the same kill switch costs no program start: the watcher is a forked
 * subshell reading the channel with the `read` builtin, and the command (or script) runs in
 * the wrapping shell itself by `eval`. Each program start here costs milliseconds of CPU
 * (dynamic linking; CPUID traps in a VM), and a rollout runs hundreds of commands per node.
 * Its stdin is /dev/null; an asynchronous list's stdin would be /dev/null too, hence fd 3.
 */
const WRAP_INLINE = `exec 3<&0 </dev/null; ( while read -r _; do :; done; kill -KILL 0 ) <&3 >/dev/null 2>&1 & exec 3<&-; eval "$1"`
/** `sh -s` scripts up to this size travel as the argument (Linux: 128 KiB per argument, the whole remote command line being one). */
const INLINE_SCRIPT_MAX = 64 * 1024

/** Limits channels per connection (sshd's MaxSessions defaults to 10). */
class Slots {
  private waiting: (() => void)[] = []
  constructor(private free: number) {}
  async take(): Promise<() => void> {
    if (this.free > 0) this.free--
    else await new Promise<void>((r) => this.waiting.push(r))
    let given = false
    return () => {
      if (given) return
      given = true
      const next = this.waiting.shift()
      if (next) next()
      else this.free++
    }
  }
}

function short(cmd: string): string {
  const one = cmd.replace(/\s+/g, ' ').trim()
  return one.length > 100 ? one.slice(0, 97) + '...' : one
}

function octalMode(mode: number | string): string {
  const s = typeof mode === 'number' ? mode.toString(8) : mode
  if (!/^[0-7]{3,4}$/.test(s)) throw new HafwError(`invalid file mode ${JSON.stringify(mode)}: expected octal such as 0644`)
  return s.padStart(4, '0')
}

/**
 * One SSH connection to one node. Commands run on their own pty-less channels, several at once.
 * Get one from connect() or withSession(); close() it.
 */
export class Session {
  readonly target: SshTarget
  /** "node (user@host:port)", the prefix of every error this session raises */
  readonly label: string
  readonly hostKey: HostKeyInfo
  private readonly client: Client
  private readonly jump: Client | undefined
  private readonly slots: Slots
  private readonly commandTimeoutMs: number
  private readonly running = new Set<(e: Error) => void>()
  private closed: HafwError | undefined
  private closing: Promise<void> | undefined
  private readonly down = new Set<Client>()

  constructor(init: SessionInit) {
    this.client = init.client
    this.jump = init.jump
    this.target = init.target
    this.label = init.label
    this.hostKey = init.hostKey
    this.commandTimeoutMs = init.commandTimeoutMs
    this.slots = new Slots(init.maxChannels)
    let cause: Error | undefined
    const lost = () => {
      this.closed ??= new HafwError(`${this.label}: connection lost${cause ? `: ${cause.message}` : ''}`, { transient: true, cause })
      for (const fail of [...this.running]) fail(this.closed)
    }
    for (const c of [this.client, this.jump]) {
      // A keepalive timeout or reset surfaces as 'error' then 'close'; commands in flight fail transiently.
      c?.on('error', (e: Error) => (cause ??= e.message === 'Keepalive timeout' ? new Error('no answer to keepalives', { cause: e }) : e))
      c?.on('close', () => (this.down.add(c), lost()))
    }
  }

  /** Run a command line (parsed by the remote shell) and collect its output. */
  async exec(cmd: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const max = opts.maxBuffer ?? 64 * 1024 * 1024
    const chunks: Buffer[] = []
    let size = 0
    const r = await this.execStream(cmd, {
      ...opts,
      onStdout: (b) => {
        size += b.length
        if (size > max) throw new HafwError(`${this.label}: output of "${short(cmd)}" exceeds ${max} bytes; use execStream`)
        chunks.push(b)
        opts.onStdout?.(b)
      },
    })
    const res: ExecResult = { code: r.code, signal: r.signal, stdout: Buffer.concat(chunks).toString('utf8'), stderr: r.stderr }
    if (opts.check && res.code !== 0) throw this.failed(cmd, res)
    return res
  }

  /** exec() with every argument shell-quoted: the safe way to pass inventory values. */
  execArgv(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return this.exec(shellJoin(argv), opts)
  }

  /**
   * Run a command and hand stdout to `onStdout` chunk by chunk as it arrives; nothing is kept.
   * An async handler is awaited before more is read (back-pressure reaches sshd). A handler
   * that throws kills the command and rejects with its error.
   */
  async execStream(
    cmd: string,
    opts: CommandOptions & { onStdout: (chunk: Buffer) => void | Promise<void> },
  ): Promise<StreamResult & { bytes: number }> {
    const s = await this.openStream(cmd, opts)
    let bytes = 0
    try {
      for await (const chunk of s.stdout.iterator({ destroyOnReturn: false })) {
        bytes += (chunk as Buffer).length
        await opts.onStdout(chunk as Buffer)
      }
    } catch (e) {
      s.cancel(e as Error)
      await s.done.catch(() => {})
      throw e
    }
    return { ...(await s.done), bytes }
  }

  /**
   * A channel running `remote`, within the connection's channel limit (release() gives its slot
   * back). `onOpen` sees the channel before anything else can: a quick command's exit status
   * (and close) can arrive in the same read as the exec reply, and ssh2 emits them before the
   * caller's continuation runs.
   */
  private async openChannel(remote: string, what: string, onOpen?: (c: ClientChannel) => void): Promise<{ ch: ClientChannel; release: () => void }> {
    if (this.closed) throw this.closed
    const release = await this.slots.take()
    try {
      if (this.closed) throw this.closed
      const ch = await new Promise<ClientChannel>((resolve, reject) => {
        try {
          this.client.exec(remote, (err, c) => {
            if (err) return reject(err)
            onOpen?.(c)
            resolve(c)
          })
        } catch (e) {
          reject(e)
        }
      })
      return { ch, release }
    } catch (e) {
      release()
      if (e instanceof HafwError) throw e
      throw this.closed ?? new HafwError(`${this.label}: cannot start ${what}: ${(e as Error).message}`, { transient: true, cause: e })
    }
  }

  /** Start a command and return its stdout as a Readable (see RemoteStream). */
  async openStream(cmd: string, opts: CommandOptions = {}): Promise<RemoteStream> {
    if (opts.signal?.aborted) throw abortReason(opts.signal)
    const input = opts.input === undefined ? undefined : Buffer.from(opts.input)
    const sudo = this.target.sudo && opts.sudo !== false ? 'sudo -n ' : ''
    // no input bytes, or a script that fits the command line: WRAP_INLINE; else WRAP feeds stdin
    const script = cmd === 'sh -s' && input !== undefined && input.length <= INLINE_SCRIPT_MAX && !input.includes(0) ? input.toString('utf8') : null
    const inline = script !== null || !input?.length
    const remote = inline ? `exec ${sudo}sh -c ${shellQuote(WRAP_INLINE)} hafw ${shellQuote(script ?? cmd)}` : `exec ${sudo}sh -c ${shellQuote(WRAP)} hafw ${shellQuote(cmd)} ${input!.length}`
    let exit: { code: number | null; signal: string | null } | undefined
    let closedEarly = false
    const { ch, release } = await this.openChannel(remote, `"${short(cmd)}"`, (c) => {
      c.on('exit', (code: number | null, signal?: string) => {
        exit = { code, signal: signal ?? null }
        c.end()
      })
      c.once('close', () => (closedEarly = true))
    })
    // stdin stays open while the command runs: its EOF is the kill switch (see WRAP).
    if (!inline) ch.write(input!)

    let stderr = ''
    // stderr is drained always, or a chatty command would stall on its window.
    ch.stderr.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString('utf8')).slice(-STDERR_TAIL)
    })
    // Errors reach the caller through `done`; a reader that listens gets them too.
    ch.on('error', () => {})

    let settled = false
    let resolveDone!: (r: StreamResult) => void
    let rejectDone!: (e: Error) => void
    const done = new Promise<StreamResult>((res, rej) => ((resolveDone = res), (rejectDone = rej)))
    // A caller that stopped reading on its own error may never await done: no unhandled rejection.
    done.catch(() => {})
    const cleanup = () => {
      settled = true
      clearTimeout(timer)
      opts.signal?.removeEventListener('abort', onAbort)
      this.running.delete(fail)
      release()
    }
    // Kill the remote command (our EOF makes WRAP's watcher kill its group), drop the channel, end the reader.
    const fail = (e: Error) => {
      if (settled) return
      cleanup()
      try {
        ch.signal('TERM') // sshd honours it for non-root users (killpg); the EOF below works for all
        ch.end()
        ch.close()
      } catch {
        /* connection already gone */
      }
      Duplex.prototype.destroy.call(ch, e)
      rejectDone(e)
    }
    // Any destroy before the end (for-await left early, pipeline failed) kills the command. Node
    // also calls destroy() after a normal end (autoDestroy): that one goes to ssh2 as before.
    const ssh2Destroy = ch.destroy.bind(ch)
    ch.destroy = ((e?: Error) => {
      const abandoned = !e || e.name === 'AbortError'
      if (!settled && !ch.readableEnded) fail(abandoned ? new HafwError(`${this.label}: output abandoned by the reader, killed: ${short(cmd)}`) : e)
      else ssh2Destroy()
      return ch
    }) as typeof ch.destroy
    const onAbort = () => fail(abortReason(opts.signal!))
    const ms = opts.timeoutMs ?? this.commandTimeoutMs
    const timer = ms > 0 ? setTimeout(() => fail(new HafwError(`${this.label}: timed out after ${ms} ms, killed: ${short(cmd)}`, { transient: true })), ms) : undefined
    opts.signal?.addEventListener('abort', onAbort, { once: true })
    this.running.add(fail)

    const onClose = () => {
      if (settled) return
      if (!exit) return fail(this.closed ?? new HafwError(`${this.label}: channel closed without an exit status: ${short(cmd)}`, { transient: true }))
      cleanup()
      const signum = exit.signal ? (constants.signals as Record<string, number>)[`SIG${exit.signal}`] ?? 0 : 0
      resolveDone({ code: exit.code ?? 128 + signum, signal: exit.signal, stderr })
    }
    // setImmediate: after the buffered stderr above has flowed to its listener
    if (closedEarly) setImmediate(onClose)
    else ch.on('close', onClose)
    const cancel = (reason?: Error) => fail(reason ?? new HafwError(`${this.label}: cancelled: ${short(cmd)}`))
    return { stdout: ch, done, cancel }
  }

  /**
   * Run `script` on a channel of its own with the channel as its stdin: it reads request lines
   * and answers each with output that ends in a line "@@end". For frequent small requests (the
   * health gate's samples): one channel and one shell for all of them instead of one each. The
   * script must end when stdin does (close(), a lost connection): that is its kill switch, so
   * a request must not run for long, and what it runs must end by itself (`timeout`): closing
   * the channel does not stop a program the loop waits for. A request that times out ends the loop.
   */
  async openLoop(script: string): Promise<RemoteLoop> {
    const { ch, release } = await this.openChannel(`exec ${this.target.sudo ? 'sudo -n ' : ''}sh -c ${shellQuote(script)} hafw-loop`, 'a shell loop')
    const decoder = new StringDecoder('utf8')
    let buf = ''
    let stderr = ''
    let pending: { resolve: (s: string) => void; reject: (e: Error) => void; done: () => void } | null = null
    const loop: { -readonly [K in keyof RemoteLoop]: RemoteLoop[K] } = { dead: null, ask: undefined!, close: undefined! }
    const die = (e: Error) => {
      if (loop.dead) return
      loop.dead = e
      this.running.delete(die)
      release()
      const p = pending
      pending = null
      p?.done()
      p?.reject(e)
      try {
        ch.end()
        ch.close()
      } catch {
        /* connection already gone */
      }
    }
    const answer = () => {
      const m = /(^|\n)@@end\n/.exec(buf)
      if (!m || !pending) return
      const end = m.index + m[0].length
      const out = buf.slice(0, end)
      buf = buf.slice(end)
      const p = pending
      pending = null
      p.done()
      p.resolve(out)
    }
    ch.on('data', (b: Buffer) => ((buf += decoder.write(b)), answer()))
    ch.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString('utf8')).slice(-STDERR_TAIL)))
    ch.on('error', () => {})
    ch.on('close', () => die(this.closed ?? new HafwError(`${this.label}: the shell loop ended${stderr.trim() ? `: ${stderr.trim().split('\n').slice(-3).join(' ')}` : ''}`, { transient: true })))
    this.running.add(die)
    loop.ask = (line, opts = {}) =>
      new Promise<string>((resolve, reject) => {
        if (loop.dead) return reject(loop.dead)
        if (pending) return reject(new HafwError(`${this.label}: a shell loop answers one request at a time`))
        if (opts.signal?.aborted) return reject(abortReason(opts.signal))
        if (/[\n\0]/.test(line)) return reject(new HafwError(`${this.label}: a loop request is one line`))
        const ms = opts.timeoutMs ?? this.commandTimeoutMs
        const timer = ms > 0 ? setTimeout(() => die(new HafwError(`${this.label}: no answer to "${short(line)}" within ${ms} ms, loop ended`, { transient: true })), ms) : undefined
        const onAbort = () => die(abortReason(opts.signal!))
        opts.signal?.addEventListener('abort', onAbort, { once: true })
        pending = { resolve, reject, done: () => (clearTimeout(timer), opts.signal?.removeEventListener('abort', onAbort)) }
        ch.write(line + '\n')
      })
    loop.close = () => die(new HafwError(`${this.label}: shell loop closed`))
    return loop
  }

  /** A file's content, or null when it does not exist. */
  async readFile(path: string, opts: Omit<CommandOptions, 'input'> = {}): Promise<string | null> {
    const q = shellQuote(path)
    const r = await this.exec(`test -e ${q} || exit ${MISSING}; exec cat -- ${q}`, opts)
    if (r.code === MISSING) return null
    if (r.code !== 0) throw this.failed(`read ${path}`, r)
    return r.stdout
  }

  /**
   * Replace a file atomically: write a temporary file in the same directory, set mode and
   * owner, fsync it, rename it over the target, fsync the directory. Readers see the old or
   * the new content, never a mix; a crash leaves at worst a stray .hafw-tmp.* file.
   */
  async writeFileAtomic(path: string, content: string | Buffer, opts: WriteOptions = {}): Promise<void> {
    const mode = opts.mode === undefined ? undefined : octalMode(opts.mode)
    if (opts.owner !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$/.test(opts.owner)) {
      throw new HafwError(`invalid owner ${JSON.stringify(opts.owner)}: expected user or user:group`)
    }
    const script = [
      'set -e',
      `p=${shellQuote(path)}`,
      'd=$(dirname -- "$p")',
      't=$(mktemp "$d/.hafw-tmp.XXXXXX")',
      `trap 'rm -f -- "$t"' EXIT`,
      'cat > "$t"',
      mode ? `chmod ${mode} -- "$t"` : 'if [ -e "$p" ]; then chmod --reference="$p" -- "$t"; else chmod 0644 -- "$t"; fi',
      opts.owner
        ? `chown -- ${shellQuote(opts.owner)} "$t"`
        : 'if [ -e "$p" ] && [ "$(id -u)" = 0 ]; then chown --reference="$p" -- "$t"; fi',
      // coreutils < 8.24 ignores the argument and syncs everything: slower, still correct.
      'sync -- "$t"',
      'mv -f -- "$t" "$p"',
      'trap - EXIT',
      'sync -- "$d" 2>/dev/null || true',
    ].join('\n')
    const r = await this.exec(script, { ...opts, input: content })
    if (r.code !== 0) throw this.failed(`write ${path}`, r)
  }

  /** Close the connection (and the jump connection). Commands still running are killed. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed ??= new HafwError(`${this.label}: session closed`)
      for (const fail of [...this.running]) fail(this.closed)
      await Promise.all(
        [this.client, this.jump].map(
          (c) =>
            c &&
            !this.down.has(c) &&
            new Promise<void>((resolve) => {
              const t = setTimeout(() => (c.destroy(), resolve()), 2000)
              c.once('close', () => (clearTimeout(t), resolve()))
              c.end()
            }),
        ),
      )
    })()
    return this.closing
  }

  private failed(what: string, r: { code: number; stderr: string; stdout?: string }): HafwError {
    const detail = (r.stderr || r.stdout || '').trim().split('\n').slice(-5).join('\n')
    return new HafwError(`${this.label}: ${short(what)}: exit ${r.code}${detail ? `\n${detail}` : ''}`)
  }
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new HafwError('aborted')
}
