// hafw lab probe responder: echoes TCP streams and UDP datagrams on the ports given as
// arguments, on every address of the network namespace it runs in. Prints "ready" once every
// port listens, so `lab up` knows the probe is usable. No dependencies: runs with the host's node.
import net from 'node:net'
import dgram from 'node:dgram'

const ports = process.argv.slice(2).map(Number)
if (!ports.length || ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) {
  console.error('usage: echo.mjs PORT...')
  process.exit(2)
}
const listening = []
for (const port of ports) {
  const tcp = net.createServer((s) => {
    s.on('error', () => s.destroy())
    s.pipe(s)
  })
  listening.push(new Promise((ok, fail) => { tcp.once('error', fail); tcp.listen({ port, host: '0.0.0.0' }, ok) }))
  const udp = dgram.createSocket('udp4')
  udp.on('message', (msg, from) => udp.send(msg, from.port, from.address))
  listening.push(new Promise((ok, fail) => { udp.once('error', fail); udp.bind(port, '0.0.0.0', ok) }))
}
Promise.all(listening).then(
  () => console.log(`ready tcp+udp ${ports.join(',')}`),
  (e) => { console.error(`echo: ${e.message}`); process.exit(1) },
)
process.on('SIGTERM', () => process.exit(0))
