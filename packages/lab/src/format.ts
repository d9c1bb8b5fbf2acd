import type { LabStatus } from './status.js'

/** Columns padded to their widest cell. */
export function table(head: string[], rows: string[][]): string {
  const w = head.map((h, k) => Math.max(h.length, ...rows.map((r) => (r[k] ?? '').length)))
  return [head, ...rows].map((r) => r.map((c, k) => (k === r.length - 1 ? c : c.padEnd(w[k]!))).join('  ')).join('\n')
}

const mb = (kib?: number) => (kib === undefined ? '-' : `${(kib / 1024).toFixed(0)} MB`)

/** Human-readable `lab status`: one block per site. */
export function formatLabStatus(labs: LabStatus[]): string {
  if (!labs.length) return 'no lab is up'
  return labs
    .map((l) =>
      [
        `site ${l.site}: ${l.state} since ${l.created} (${l.inventory}); management ${l.mgmtSubnet} via ${l.rootPort}`,
        table(
          ['HOST', 'PAIR', 'STATE', 'MGMT', 'RSS', 'INTERFACES'],
          l.hosts.map((h) => [
            h.name,
            h.pair ?? '-',
            h.running ? 'running' : 'stopped',
            h.mgmt.address.split('/')[0]!,
            mb(h.rssKiB),
            [...h.interfaces].sort((a, b) => a.device.localeCompare(b.device)).map((i) => `${i.device}=${[i.address, i.address6].filter(Boolean).join(',') || i.logical}`).join(' '),
          ]),
        ),
        ...(l.probes.length
          ? [
              table(
                ['PROBE', 'ROLE', 'STATE', 'ADDRESS', 'VIA', 'PORTS'],
                l.probes.map((p) => [
                  p.name,
                  p.role,
                  p.running ? 'running' : 'stopped',
                  [p.address, p.address6].filter(Boolean).join(' '),
                  [p.gateway, p.gateway6].filter(Boolean).join(' ') || '-',
                  p.ports.join(','),
                ]),
              ),
            ]
          : []),
        `overlay: ${l.overlay}`,
      ].join('\n\n'),
    )
    .join('\n\n')
}
