import type { Flow } from './flow.js'
import { type Chunk, type ChunkSource, type FlowParser } from './source.js'
import { FlowTextParser } from './text.js'
import { FlowXmlParser } from './xml.js'

/** xml: `conntrack -L -o xml`, `conntrackd -i/-e -x`; text: `conntrack -L`, `conntrackd -i/-e`. */
export type DumpFormat = 'xml' | 'text' | 'auto'

export interface ParseOptions {
  /** Default auto: XML when the first non-blank character is "<". */
  format?: DumpFormat
  /** Names the dump in errors, e.g. "fw1: conntrackd -e -x". */
  source?: string
}

/** A push parser for the format; `auto` decides on the first non-blank character. */
export function createFlowParser(onFlow: (f: Flow) => void, opts: ParseOptions = {}): FlowParser {
  const { format = 'auto', source } = opts
  if (format === 'xml') return new FlowXmlParser(onFlow, source ?? 'xml')
  if (format === 'text') return new FlowTextParser(onFlow, source ?? 'text')
  let inner: FlowParser | undefined
  const head: Chunk[] = []
  const pick = (force: boolean): FlowParser | undefined => {
    const text = head.map((c) => (typeof c === 'string' ? c : Buffer.from(c).toString('latin1'))).join('')
    const m = /\S/.exec(text)
    if (!m && !force) return undefined
    inner = m?.[0] === '<' ? new FlowXmlParser(onFlow, source ?? 'xml') : new FlowTextParser(onFlow, source ?? 'text')
    for (const c of head.splice(0)) inner.write(c)
    return inner
  }
  return {
    write(chunk) {
      if (inner) return inner.write(chunk)
      head.push(chunk)
      pick(false)
    },
    end() {
      ;(inner ?? pick(true))!.end()
    },
  }
}

const COALESCE = 64 * 1024

/** Flows one by one, or per 64 KB of input through `batches()` (no await per flow). */
export interface FlowStream extends AsyncIterable<Flow> {
  batches(): AsyncIterable<Flow[]>
}

/**
 * Streams flows out of a dump as its chunks arrive; never holds more than 64 KB of input plus
 * one partial entry. Works on child.stdout, an SSH channel, or any (async) iterable of chunks.
 */
export function parseFlows(source: ChunkSource, opts: ParseOptions = {}): FlowStream {
  async function* batches(): AsyncGenerator<Flow[]> {
    let ready: Flow[] = []
    const parser = createFlowParser((f) => ready.push(f), opts)
    // Each chunk is parsed as it comes (the parsers carry a partial entry without copying the
    // chunk); flows go out per 64 KB of input, so the consumer is not resumed per 4 KB pipe read.
    let size = 0
    for await (const chunk of source) {
      parser.write(chunk)
      size += chunk.length
      if (size < COALESCE || !ready.length) continue
      size = 0
      yield ready
      ready = []
    }
    parser.end()
    if (ready.length) yield ready
  }
  return {
    batches,
    async *[Symbol.asyncIterator]() {
      for await (const b of batches()) yield* b
    },
  }
}

export function isFlowStream(x: unknown): x is FlowStream {
  return typeof (x as FlowStream | undefined)?.batches === 'function'
}

/** All flows of a complete dump held in memory (tests, small tables). */
export function parseFlowsSync(dump: string, opts: ParseOptions = {}): Flow[] {
  const out: Flow[] = []
  const p = createFlowParser((f) => out.push(f), opts)
  p.write(dump)
  p.end()
  return out
}
