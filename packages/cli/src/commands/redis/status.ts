import { embeddedRedisStatus } from '@hafw/queue'
import { BaseCommand } from '../../lib/base.js'

export default class RedisStatus extends BaseCommand {
  static override summary = "Show whether hafw's embedded redis-server runs and answers, and which Redis the queue uses"
  static override examples = ['<%= config.bin %> redis status --json']

  async run(): Promise<{ using: string; embedded: { running: boolean; pid?: number; socket: string; answers: boolean } }> {
    await this.parse(RedisStatus)
    const embedded = await embeddedRedisStatus()
    const using = process.env.REDIS_SENTINELS ? 'sentinel (REDIS_SENTINELS)' : process.env.REDIS_URL ? 'REDIS_URL' : 'embedded'
    if (!this.jsonEnabled()) {
      this.log(`queue Redis: ${using}`)
      this.log(`embedded redis-server: ${embedded.running ? `running, PID ${embedded.pid}` : 'not running'}; ${embedded.answers ? 'answers' : 'does not answer'} on ${embedded.socket}`)
    }
    return { using, embedded }
  }
}
