import { dirname } from 'node:path'
import { HafwError, type Progress } from '@hafw/core'
import type { Model, NodeModel } from '@hafw/inventory'
import { connect, type Session } from '@hafw/transport'

/**
 * One SSH session per node, opened on first use and kept for every poll of a run (verify's
 * re-polls, status --watch). A session whose connection failed is dropped and reopened on the
 * next use, so a node that comes back is reached again.
 */
export class SessionPool {
  private readonly sessions = new Map<string, Promise<Session>>()

  constructor(
    private readonly model: Pick<Model, 'source'>,
    private readonly opts: { acceptNew?: boolean; progress?: Progress; signal?: AbortSignal } = {},
  ) {}

  private session(node: NodeModel): Promise<Session> {
    let s = this.sessions.get(node.name)
    if (!s) {
      s = connect(node.ssh, { name: node.name, baseDir: dirname(this.model.source), commandTimeoutMs: 120_000, ...this.opts })
      s.catch(() => this.sessions.delete(node.name))
      this.sessions.set(node.name, s)
    }
    return s
  }

  /** Run fn on the node's session; a transient fault (connection lost) drops the session. */
  async run<T>(node: NodeModel, fn: (s: Session) => Promise<T>): Promise<T> {
    const p = this.session(node)
    const s = await p
    try {
      return await fn(s)
    } catch (e) {
      if (e instanceof HafwError && e.transient && this.sessions.get(node.name) === p) {
        this.sessions.delete(node.name)
        void s.close()
      }
      throw e
    }
  }

  async close(): Promise<void> {
    const all = [...this.sessions.values()]
    this.sessions.clear()
    await Promise.all(all.map((p) => p.then((s) => s.close(), () => undefined)))
  }
}
