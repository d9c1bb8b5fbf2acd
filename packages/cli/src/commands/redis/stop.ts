import { stopEmbeddedRedis } from '@hafw/queue'
import { BaseCommand } from '../../lib/base.js'

export default class RedisStop extends BaseCommand {
  static override summary = "Stop hafw's embedded redis-server (queued jobs are kept in its AOF)"
  static override description = 'Only the private server hafw starts when REDIS_URL is not set; it starts again on the next command that needs the queue.'
  static override examples = ['<%= config.bin %> redis stop']

  async run(): Promise<{ stopped: boolean; pid?: number; dir: string }> {
    await this.parse(RedisStop)
    const r = await stopEmbeddedRedis()
    if (!this.jsonEnabled()) this.log(r.stopped ? `stopped redis-server PID ${r.pid} (${r.dir})` : `no embedded redis-server running (${r.dir})`)
    return r
  }
}
