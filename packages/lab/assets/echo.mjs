// hafw lab probe responder: echoes TCP streams and UDP datagrams on the ports given as
// arguments, on every address of the network namespace it runs in, IPv4 and IPv6: one socket
// per family and port (an IPv6-only one on "::", so IPv4 peers keep their plain addresses).
// Prints "ready" once every port listens, so `lab up` knows the probe is usable. No
// dependencies: runs with the host's node.
import net from 'node:net'
import dgram from 'node:dgram'

const ports = process.argv.slice(2).map(Number)
if (!ports.length || ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) {
  console.error('usage: echo.mjs PORT...')
  process.exit(2)
}
// A kernel booted with ipv6.disable=1 has no IPv6 sockets: IPv4 only there, and said so.
const NO_IPV6 = new Set(['EAFNOSUPPORT', 'EADDRNOTAVAIL', 'EPROTONOSUPPORT'])
const skipped = []

/** Resolves once `start` listens; an IPv6 socket the kernel cannot make is skipped, not fatal. */
const listen = (sock, v6, start) =>
  new Promise((ok, fail) => {
    sock.once('error', (e) => {
      if (!v6 || !NO_IPV6.has(e.code)) return fail(e)
      skipped.push(e.code)
      ok()
    })
    start(ok)
  })

const listening = []
for (const port of ports) {
  for (const v6 of [false, true]) {
    const host = v6 ? '::' : '0.0.0.0'
    const tcp = net.createServer((s) => {
      s.on('error', () => s.destroy())
      s.pipe(s)
    })
    listening.push(listen(tcp, v6, (ok) => tcp.listen({ port, host, ipv6Only: v6 }, ok)))
    const udp = dgram.createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6 })
    udp.on('message', (msg, from) => udp.send(msg, from.port, from.address))
    listening.push(listen(udp, v6, (ok) => udp.bind(port, host, ok)))
  }
}
Promise.all(listening).then(
  () => console.log(`ready tcp+udp ${ports.join(',')} ${skipped.length ? `IPv4 only (IPv6: ${skipped[0]})` : 'IPv4 and IPv6'}`),
  (e) => { console.error(`echo: ${e.message}`); process.exit(1) },
)
process.on('SIGTERM', () => process.exit(0))
