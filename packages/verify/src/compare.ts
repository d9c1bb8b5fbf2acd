import { throwIfAborted } from '@hafw/core'
import { type FlowPredicate, type SyncFilter, compileSyncFilter, parseIPv4 } from './filter.js'
import { isFlowStream } from './parse.js'
import {
  type Flow,
  TCP_STATES,
  flowFromKey,
  flowKey,
  hasPorts,
  inverseTuple,
  isNat,
  protoName,
  replyFromText,
  replyText,
  tcpStateFollows,
} from './flow.js'

/*
 * Entry-by-entry comparison of the active node's state (kernel table or internal cache) with the
 * standby's external cache.
 *
 * Memory: both dumps are consumed at the same time (they arrive concurrently from two nodes) and
 * one Map holds only the entries not yet seen on the other side: key -> one packed number (side,
 * state, mark, reply kind, age class). For IPv4 the key is 6-8 UTF-16 units holding protocol,
 * zone, addresses and ports as numbers (3x cheaper to build and hash than the text key, ~32
 * bytes); IPv6 flows use the text flowKey ("6 fd00:10::100 fd00:20::7 41001 443 0"). That is
 * exact for them: both sides print addresses with inet_ntop (libnetfilter_conntrack, for the
 * kernel table and conntrackd's caches alike), so one address has one text on both, and building
 * the text costs less than parsing eight groups to pack them. Packed keys start with a unit
 * >= 0x100, text keys with an ASCII digit: the two never collide. NAT reply tuples (NAT66 too,
 * compared as text the same way), non-TCP states and repeated keys go to small side maps. With
 * converged tables in unrelated orders the map peaks near half of one side; it never holds more
 * than both sides' unmatched entries, and never a whole dump.
 *
 * Grace: a difference only counts once it is older than `graceSeconds`:
 * - when the source prints an age (conntrackd text "[active since Ns]", which is the time since
 *   the active's conntrackd learned the entry, i.e. exactly the sync delay budget; or the kernel's
 *   delta-time with nf_conntrack_timestamp=1) entries younger than G are `young` and skipped;
 *   an old entry only on the standby is judged by persistence (below): its age says how long
 *   the standby has held it, not how long ago the active destroyed it;
 * - otherwise the difference must persist across polls: the result's `memo` records when each
 *   difference was first seen, and the next compareFlows (given it as `previous`) reports it once
 *   it is G seconds old. Until then it is `pending`.
 * The kernel timeout is not used: it is refreshed by every packet, so "timeout close to the
 * protocol default" marks busy flows, not new ones, and would hide long-lived flows that never
 * reached the standby.
 *
 * States that moved on: a TCP state difference along the connection's life (standby behind =
 * update still in flight; standby ahead = the flow progressed between the two dumps) is
 * `movedOn`, and only reported if it persists for G seconds (by memo), since even old flows
 * change state.
 */

export interface CompareOptions {
  /** Differences younger than this are not divergence (default 5 s; 0 reports everything). */
  graceSeconds?: number
  /** The memo of the previous poll (see CompareResult.memo). */
  previous?: CompareMemo
  /** Clock in ms (tests); default Date.now(). */
  now?: number
  /** Samples kept per category (default 10). */
  samples?: number
  /** The active node's conntrackd Filter: entries it would never sync are excluded, not missing. */
  activeFilter?: SyncFilter | FlowPredicate
  /** Filter for the standby side (e.g. its kernel table after a commit). Default: none. */
  standbyFilter?: SyncFilter | FlowPredicate
  /**
   * The standby was dumped before the active: a standby state ahead of the active's cannot be
   * explained by progress between the dumps and is a mismatch. Default false (active first, or
   * concurrent).
   */
  standbyFirst?: boolean
  signal?: AbortSignal
}

/** When each still-open difference was first seen (ms), keyed by kind + flow key. In-memory only. */
export type CompareMemo = ReadonlyMap<string, number>

export type MismatchField = 'state' | 'mark' | 'reply'

export interface Mismatch {
  key: string
  fields: MismatchField[]
  active: Flow
  standby: Flow
}

export interface CompareCounts {
  /** Entries compared on each side (after the filters). */
  active: number
  standby: number
  /** Entries the filters excluded. */
  ignored: { active: number; standby: number }
  /** Same key on both sides (whether equal or mismatched). */
  matched: number
  /** Reported divergence: on the active, not on the standby. */
  missing: number
  /** Reported divergence: on the standby, not on the active. */
  extra: number
  mismatched: number
  /** State differences along the TCP life cycle (reported as mismatched only once persistent). */
  movedOn: number
  /** Differences on entries younger than the grace window. */
  young: number
  /** Differences of unknown age waiting for a later poll to confirm them. */
  pending: number
}

export interface CompareResult {
  converged: boolean
  counts: CompareCounts
  /** Samples, at most `samples` each. Stored-side samples carry tuple, state, mark, reply, zone. */
  missing: Flow[]
  extra: Flow[]
  mismatched: Mismatch[]
  /** Pass as `previous` to the next poll's compareFlows. */
  memo: CompareMemo
  /** Most entries held at once while streaming (the memory bound: at most both sides' unmatched). */
  peakHeld: number
}

export type FlowSource = AsyncIterable<Flow> | Iterable<Flow>

// Packed record: mark * 2^11 + flags (at most 43 bits, exact in a double).
const STANDBY = 1
const STATE_SHIFT = 1 // 4 bits: 0 none, 1..11 TCP_STATES index + 1, 15 another state (otherState)
const STATE_OTHER = 15
const HAS_MARK = 1 << 5
const REPLY_SHIFT = 6 // 2 bits: 0 none, 1 reversed original (no NAT), 2 NAT (nat map)
const AGE_SHIFT = 8 // 2 bits: 0 unknown, 1 young, 2 old
const DUP = 1 << 10 // more entries with this key on the same side (dup map)
const MARK_MUL = 1 << 11

const AGE_UNKNOWN = 0
const AGE_YOUNG = 1
const AGE_OLD = 2

const STATE_CODE: Record<string, number> = Object.fromEntries(TCP_STATES.map((s, i) => [s, i + 1]))

type Verdict = 'report' | 'young' | 'pending'

export async function compareFlows(active: FlowSource, standby: FlowSource, opts: CompareOptions = {}): Promise<CompareResult> {
  const graceMs = (opts.graceSeconds ?? 5) * 1000
  const graceS = graceMs / 1000
  const now = opts.now ?? Date.now()
  const maxSamples = opts.samples ?? 10
  const previous = opts.previous
  const memo = new Map<string, number>()
  const keep: (FlowPredicate | undefined)[] = [predicate(opts.activeFilter), predicate(opts.standbyFilter)]

  const pending = new Map<string, number>()
  const nat = new Map<string, string>()
  const otherState = new Map<string, string>()
  const dup = new Map<string, number>()
  let peakHeld = 0

  const counts: CompareCounts = {
    active: 0, standby: 0, ignored: { active: 0, standby: 0 }, matched: 0,
    missing: 0, extra: 0, mismatched: 0, movedOn: 0, young: 0, pending: 0,
  }
  const missing: Flow[] = []
  const extra: Flow[] = []
  const mismatched: Mismatch[] = []

  const ageClass = (f: Flow): number => (f.age === undefined ? AGE_UNKNOWN : f.age < graceS ? AGE_YOUNG : AGE_OLD)

  const judge = (id: string, age: number, persistOnly: boolean): Verdict => {
    if (!persistOnly && age === AGE_YOUNG) return 'young'
    if (!persistOnly && age === AGE_OLD) return 'report'
    const first = previous?.get(id) ?? now
    memo.set(id, first)
    return now - first >= graceMs ? 'report' : 'pending'
  }

  const pack = (f: Flow, side: number, key: string): number => {
    let flags = side | (ageClass(f) << AGE_SHIFT)
    if (f.state !== undefined) {
      let code = STATE_CODE[f.state]
      if (code === undefined || f.protonum !== 6) {
        code = STATE_OTHER
        otherState.set(key, f.state)
      }
      flags |= code << STATE_SHIFT
    }
    if (f.reply) {
      if (isNat(f)) {
        nat.set(key, replyText(f)!)
        flags |= 2 << REPLY_SHIFT
      } else flags |= 1 << REPLY_SHIFT
    }
    if (f.mark === undefined) return flags
    return f.mark * MARK_MUL + (flags | HAS_MARK)
  }

  const unpack = (key: string, v: number): Flow => {
    const flags = v % MARK_MUL
    const f = unpackKey(key)
    const code = (flags >> STATE_SHIFT) & 15
    if (code === STATE_OTHER) f.state = otherState.get(key)!
    else if (code) f.state = TCP_STATES[code - 1]!
    if (flags & HAS_MARK) f.mark = Math.floor(v / MARK_MUL)
    const rep = (flags >> REPLY_SHIFT) & 3
    if (rep === 1) f.reply = inverseTuple(f.orig)
    else if (rep === 2) f.reply = replyFromText(f.protonum, nat.get(key)!)
    return f
  }

  const compare = (f: Flow, side: number, key: string, v: number): void => {
    counts.matched++
    const flags = v % MARK_MUL
    const fields: MismatchField[] = []
    let hard = false
    let moved = false
    const code = (flags >> STATE_SHIFT) & 15
    if (code && f.state !== undefined) {
      const stored = code === STATE_OTHER ? otherState.get(key)! : TCP_STATES[code - 1]!
      if (stored !== f.state) {
        fields.push('state')
        const a = side === 0 ? f.state : stored
        const s = side === 0 ? stored : f.state
        const forward = f.protonum === 6 && (tcpStateFollows(s, a) || (!opts.standbyFirst && tcpStateFollows(a, s)))
        if (forward) moved = true
        else hard = true
      }
    }
    if (flags & HAS_MARK && f.mark !== undefined && Math.floor(v / MARK_MUL) !== f.mark) {
      fields.push('mark')
      hard = true
    }
    const rep = (flags >> REPLY_SHIFT) & 3
    if (rep && f.reply) {
      const same = rep === 1 ? !isNat(f) : isNat(f) && replyText(f) === nat.get(key)
      if (!same) {
        fields.push('reply')
        hard = true
      }
    }
    if (!fields.length) return
    if (moved) counts.movedOn++
    const age = side === 0 ? ageClass(f) : (flags >> AGE_SHIFT) & 3
    const verdict = judge('d' + key, age, !hard)
    if (verdict !== 'report') {
      counts[verdict]++
      return
    }
    counts.mismatched++
    if (mismatched.length < maxSamples) {
      const stored = unpack(key, v)
      mismatched.push({ key: flowKey(f), fields, active: side === 0 ? f : stored, standby: side === 0 ? stored : f })
    }
  }

  const forget = (key: string, v: number): void => {
    const n = dup.get(key)
    if (n !== undefined) {
      if (n > 1) dup.set(key, n - 1)
      else {
        dup.delete(key)
        pending.set(key, v - DUP) // arithmetic: v may exceed 32 bits
      }
      return
    }
    pending.delete(key)
    nat.delete(key)
    otherState.delete(key)
  }

  const add = (f: Flow, side: number): void => {
    if (keep[side] && !keep[side]!(f)) {
      if (side === 0) counts.ignored.active++
      else counts.ignored.standby++
      return
    }
    if (side === 0) counts.active++
    else counts.standby++
    const key = packedKey(f)
    const v = pending.get(key)
    if (v === undefined) {
      pending.set(key, pack(f, side, key))
      if (pending.size > peakHeld) peakHeld = pending.size
    } else if ((v & STANDBY) === side) {
      // Same key again on one side: ICMP flows differing only in id, or a dump repeating an entry.
      dup.set(key, (dup.get(key) ?? 0) + 1)
      if (!(v & DUP)) pending.set(key, v + DUP)
    } else {
      compare(f, side, key, v)
      forget(key, v) // after compare: it reads the side maps
    }
  }

  let stop = false
  const consume = async (src: FlowSource, side: number): Promise<void> => {
    let n = 0
    try {
      if (isFlowStream(src)) {
        // parseFlows: a batch per arriving chunk, no await per flow
        for await (const batch of src.batches()) {
          if (stop) break
          throwIfAborted(opts.signal)
          for (let i = 0; i < batch.length; i++) add(batch[i]!, side)
        }
        return
      }
      for await (const f of src) {
        if (stop) break
        add(f, side)
        if ((++n & 4095) === 0) throwIfAborted(opts.signal)
      }
    } catch (e) {
      stop = true
      throw e
    }
  }
  await Promise.all([consume(active, 0), consume(standby, STANDBY)])
  throwIfAborted(opts.signal)

  for (const [key, v] of pending) {
    const side = v & STANDBY
    const n = 1 + (dup.get(key) ?? 0)
    const age = ((v % MARK_MUL) >> AGE_SHIFT) & 3
    // An extra entry's age is how long the standby has held it, not how long ago the active
    // dropped it (a destroy may be in flight): old extras must persist, young ones are skipped.
    const verdict = side === 0 ? judge('m' + key, age, false) : age === AGE_YOUNG ? 'young' : judge('x' + key, age, true)
    if (verdict !== 'report') {
      counts[verdict] += n
      continue
    }
    const list = side === 0 ? missing : extra
    if (side === 0) counts.missing += n
    else counts.extra += n
    if (list.length < maxSamples) list.push(unpack(key, v))
  }
  return {
    converged: counts.missing + counts.extra + counts.mismatched === 0,
    counts,
    missing,
    extra,
    mismatched,
    memo,
    peakHeld,
  }
}

/** Compact map key: IPv4 tuples as numbers in a short string, anything else the text flowKey. */
function packedKey(f: Flow): string {
  const o = f.orig
  const a = parseIPv4(o.src)
  const b = a < 0 ? -1 : parseIPv4(o.dst)
  if (b < 0) return flowKey(f)
  // First unit >= 0x100 never starts a text key (those begin with an ASCII digit).
  const head = 0x100 + f.protonum
  const z = f.zone ?? 0
  const sp = o.sport ?? 0
  const dp = o.dport ?? 0
  if (z > 0xffff || sp > 0xffff || dp > 0xffff) return flowKey(f) // not 16-bit: keep every bit
  return hasPorts(f.protonum)
    ? String.fromCharCode(head, z, a >>> 16, a & 0xffff, b >>> 16, b & 0xffff, sp, dp)
    : String.fromCharCode(head, z, a >>> 16, a & 0xffff, b >>> 16, b & 0xffff)
}

function unpackKey(k: string): Flow {
  if (k.charCodeAt(0) < 0x100) return flowFromKey(k)
  const protonum = k.charCodeAt(0) - 0x100
  const ip = (i: number) => {
    const n = k.charCodeAt(i) * 65536 + k.charCodeAt(i + 1)
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`
  }
  const f: Flow = { proto: protoName(protonum), protonum, orig: { src: ip(2), dst: ip(4) } }
  if (k.length === 8) {
    f.orig.sport = k.charCodeAt(6)
    f.orig.dport = k.charCodeAt(7)
  }
  if (k.charCodeAt(1)) f.zone = k.charCodeAt(1)
  return f
}

function predicate(f: SyncFilter | FlowPredicate | undefined): FlowPredicate | undefined {
  return typeof f === 'function' ? f : f && compileSyncFilter(f)
}
