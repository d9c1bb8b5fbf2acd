/**
 * How a lab bench runs: main, then its cleanup whatever happened (an error, SIGINT or SIGTERM;
 * a second signal exits at once), so no lab is left behind.
 */
export function runBench(main: () => Promise<void>, cleanup: () => Promise<void>): void {
  let stopping = false
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (stopping) process.exit(130)
      stopping = true
      console.error(`${sig}: taking the lab down`)
      void cleanup().then(() => process.exit(130))
    })
  }
  main().then(
    () => cleanup(),
    async (e: Error) => {
      console.error(e.stack ?? e.message)
      await cleanup()
      process.exitCode = 1
    },
  )
}
