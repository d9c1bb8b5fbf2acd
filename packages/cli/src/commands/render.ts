import { Args, Flags } from '@oclif/core'
import { resolve } from 'node:path'
import { loadInventory } from '@hafw/inventory'
import { renderInventory, writeRendered } from '@hafw/render'
import { BaseCommand } from '../lib/base.js'

export default class Render extends BaseCommand {
  static override summary = "Render every node's files: keepalived, conntrackd, state script, ruleset, routing, sysctls, units"
  static override description = `Writes OUT/<node>/<path on the node> for every file and OUT/<node>/manifest.json (path, mode, owner, sha256, the service each file belongs to and whether it reloads, restarts or runs). Nothing is contacted; the same inventory always gives byte-identical files.`
  static override examples = [
    '<%= config.bin %> render inventory/lab.yaml --out /tmp/hafw-out',
    '<%= config.bin %> render inventory/reference.yaml --out out --pair edge1 --node cent7i',
    '<%= config.bin %> render inventory/reference.yaml --out out --profile rhel',
  ]
  static override args = { file: Args.string({ description: 'inventory file', required: true }) }
  static override flags = {
    out: Flags.string({ char: 'o', description: 'output directory', required: true, helpValue: 'DIR' }),
    pair: Flags.string({ char: 'p', description: 'only this pair', helpValue: 'PAIR' }),
    node: Flags.string({ char: 'n', description: 'only this node (or host)', helpValue: 'NODE' }),
    profile: Flags.string({ description: "target layout instead of the inventory's profile", options: ['debian', 'rhel'] }),
  }

  async run(): Promise<{ nodes: { node: string; files: number; dir: string }[] }> {
    const { args, flags } = await this.parse(Render)
    const model = await loadInventory(args.file)
    const nodes = renderInventory(model, { pair: flags.pair, node: flags.node, profile: flags.profile as 'debian' | 'rhel' | undefined })
    const written = await writeRendered(nodes, resolve(flags.out))
    for (const w of written) this.log(`${w.node}: ${w.files} files and manifest.json in ${w.dir}`)
    return { nodes: written }
  }
}
