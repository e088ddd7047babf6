// Follows one agentwire run with the stock Durable Streams client (@durable-streams/client,
// pinned in package-lock.json) in SSE mode from the start, until the stream closes (the run
// ended), and prints the events it received as one JSON array.
// Usage: node follow_run.mjs <stream-url> [sse|long-poll]
import { stream } from "@durable-streams/client"

const url = process.argv[2]
if (!url) {
  console.error("usage: node follow_run.mjs <stream-url>")
  process.exit(2)
}
const live = process.argv[3] ?? "sse"
const res = await stream({ url, offset: "-1", live, json: true })
const events = []
for await (const event of res.jsonStream()) {
  events.push(event)
}
console.log(JSON.stringify(events))
