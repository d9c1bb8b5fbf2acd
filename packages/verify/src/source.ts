import { HafwError } from '@hafw/core'

/** A piece of a dump as it arrives: from a child process, an SSH channel, a file. */
export type Chunk = string | Uint8Array

/**
 * Anything that yields chunks: a Node Readable (child.stdout, an ssh2 channel), an async
 * generator a transport writes, or an array in tests.
 */
export type ChunkSource = AsyncIterable<Chunk> | Iterable<Chunk>

/** Push parser: feed chunks in any split, get flows through the callback given at construction. */
export interface FlowParser {
  write(chunk: Chunk): void
  /** Input is complete: flushes the last entry, throws if the dump was cut short. */
  end(): void
}

/** A dump that is not what conntrack-tools prints; names the source, line and field. */
export class DumpParseError extends HafwError {
  constructor(
    readonly source: string,
    readonly line: number,
    readonly field: string,
    detail: string,
  ) {
    super(`${source}:${line}: ${field}: ${detail}`)
    this.name = 'DumpParseError'
  }
}

/** Bytes of a chunk (strings are UTF-8 encoded). */
export function bytesOf(chunk: Chunk): Buffer {
  return typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
}

/**
 * Unconsumed tail plus the next chunk. The tail is at most one partial entry, so the copy is
 * small next to the chunk; parsers work on bytes and never decode a whole chunk to a string.
 */
export function joinBytes(rest: Buffer | undefined, chunk: Chunk): Buffer {
  const b = bytesOf(chunk)
  return rest && rest.length ? Buffer.concat([rest, b]) : b
}

/**
 * The unsigned integer written in b[from, to), decimal or the 0x.. hex conntrack prints for GRE
 * keys; -1 when it is not one.
 */
export function uintAt(b: Uint8Array, from: number, to: number): number {
  if (from >= to || to - from > 15) return -1
  let n = 0
  if (to - from > 2 && b[from] === 48 && (b[from + 1]! | 32) === 120) {
    for (let i = from + 2; i < to; i++) {
      const c = b[i]! | 32
      const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1
      if (d < 0) return -1
      n = n * 16 + d
    }
    return n
  }
  for (let i = from; i < to; i++) {
    const d = b[i]! - 48
    if (d < 0 || d > 9) return -1
    n = n * 10 + d
  }
  return n
}

/**
 * 31-hash of a name, the same as the parsers compute while scanning a token, so element and key
 * names are recognised without making strings (a 32-bit collision between one of conntrack's few
 * dozen names and an unknown one is not a practical concern).
 */
export function nameHash(name: string): number {
  let h = 0
  for (let i = 0; i < name.length; i++) h = (Math.imul(h, 31) + name.charCodeAt(i)) | 0
  return h
}

// Buffer's own slice-to-string binding: toString() costs a third of the text parser in argument
// checks alone. Every field made into a string (addresses, states) is ASCII.
const latin1 = (Buffer.prototype as unknown as { latin1Slice(this: Buffer, from: number, to: number): string }).latin1Slice

/** Text of b[from, to): addresses, states, names. */
export function textAt(b: Buffer, from: number, to: number): string {
  return latin1.call(b, from, to)
}

/** b[from, ...) starts with the ASCII string s. */
export function bytesStartWith(b: Uint8Array, from: number, s: string): boolean {
  if (from + s.length > b.length) return false
  for (let i = 0; i < s.length; i++) if (b[from + i] !== s.charCodeAt(i)) return false
  return true
}

export function countNewlines(b: Uint8Array, from: number, to: number): number {
  let n = 0
  for (let i = b.indexOf(10, from); i >= 0 && i < to; i = b.indexOf(10, i + 1)) n++
  return n
}
