import { Help, type Command, type Interfaces } from '@oclif/core'

/**
 * oclif's root and topic help list topics and summaries only; operators learn a CLI from
 * examples, so `hafw --help` and `hafw <topic> --help` also list every command with its first
 * example.
 */
export default class HafwHelp extends Help {
  protected override async showRootHelp(): Promise<void> {
    await super.showRootHelp()
    // the root lists topics only; list every command too
    this.withExamples(this.sortedCommands, true)
  }

  protected override async showTopicHelp(topic: Interfaces.Topic): Promise<void> {
    await super.showTopicHelp(topic)
    // ids may already carry the space separator here ("inventory show")
    this.withExamples(this.sortedCommands.filter((c) => c.id.replaceAll(' ', ':').startsWith(`${topic.name.replaceAll(' ', ':')}:`)))
  }

  private withExamples(commands: Command.Loadable[], listCommands = false): void {
    const visible = commands.filter((c) => !c.hidden)
    if (!visible.length) return
    if (listCommands) {
      const sep = this.config.topicSeparator
      this.log(this.section('ALL COMMANDS', visible.map((c): [string, string | undefined] => [c.id.replaceAll(':', sep), c.summary ?? c.description?.split('\n')[0]])))
      this.log('')
    }
    const lines = visible.flatMap((c) => {
      const ex = [c.examples ?? []].flat()[0]
      if (!ex) return []
      const text = typeof ex === 'string' ? ex : ex.command
      return [`$ ${this.render(text)}`]
    })
    if (lines.length) this.log(this.section('EXAMPLES', lines.join('\n')))
    this.log('')
  }
}
