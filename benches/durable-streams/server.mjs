// The reference Durable Streams server (@durable-streams/server, pinned in package-lock.json),
// in memory (no dataDir), for benches/ds.sh. Streams are at the root: http://127.0.0.1:PORT/<path>.
// Usage: node server.mjs [port]
import { DurableStreamTestServer } from "@durable-streams/server"

const port = Number(process.argv[2] ?? 4437)
const server = new DurableStreamTestServer({ port, host: "127.0.0.1" })
await server.start()
console.log(`ready ${server.baseUrl}`)
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, async () => {
    await server.stop()
    process.exit(0)
  })
}
