// Reads one agentwire run the way two AI front ends do, through agentwire's Durable Streams
// (/ds), with the published packages pinned in package-lock.json:
//
// 1. The Vercel AI SDK: `createDurableChatTransport` (@durable-streams/aisdk-transport) sends
//    the chat's messages to its `api`; the `fetchClient` given here stands in for the app's own
//    chat route: it starts the run with agentwire's `POST /v1/runs` and answers 201 with
//    `Location:` the run's AI SDK view (`/ds/agentwire/runs/<run_id>/ai-sdk`). The transport
//    reads that stream (SSE, JSON) and the AI SDK's own `readUIMessageStream` (what `useChat`
//    runs) builds the assistant's UIMessage from the chunks.
// 2. TanStack AI: `durableStreamConnection` (@durable-streams/tanstack-ai-transport) subscribes
//    to a second run's AG-UI view (`…/ag-ui`) live, its `send` starts the run, and TanStack AI's
//    `StreamProcessor` (what its chat client runs) builds the messages from the chunks;
//    `materializeSnapshotFromDurableStream` reads the finished run too.
//
// Prints one JSON object: {runId, aiSdk: {chunks, message}, tanstack: {runId, chunks, messages,
// snapshot}}.
// Usage: node read_run.mjs <agentwire http base URL> <user> <agent> <question>
import { createDurableChatTransport } from "@durable-streams/aisdk-transport"
import {
  durableStreamConnection,
  materializeSnapshotFromDurableStream,
} from "@durable-streams/tanstack-ai-transport"
import { StreamProcessor } from "@tanstack/ai"
import { readUIMessageStream } from "ai"

const [base, user, agent, question] = process.argv.slice(2)
if (!question) {
  console.error("usage: node read_run.mjs <base-url> <user> <agent> <question>")
  process.exit(2)
}
const auth = `user=${encodeURIComponent(user)}`
let runId

// The app's chat route: the last user message's text becomes an agentwire run.
async function chatRoute(_url, init) {
  const { messages } = JSON.parse(init.body)
  const last = messages.at(-1)
  const content = last.parts.filter((p) => p.type === "text").map((p) => p.text).join("")
  const started = await fetch(`${base}/v1/runs?${auth}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ agent, content }),
  })
  if (!started.ok) return started
  runId = (await started.json()).run_id
  const streamUrl = `${base}/ds/agentwire/runs/${runId}/ai-sdk?${auth}`
  return Response.json({ streamUrl }, { status: 201, headers: { Location: streamUrl } })
}

const transport = createDurableChatTransport({ api: "/api/chat", fetchClient: chatRoute })
const chunkStream = await transport.sendMessages({
  trigger: "submit-message",
  chatId: "chat-1",
  messageId: undefined,
  messages: [{ id: "u1", role: "user", parts: [{ type: "text", text: question }] }],
  abortSignal: undefined,
})
const [forUi, forLog] = chunkStream.tee()
const chunks = []
const logged = (async () => {
  for await (const chunk of forLog) chunks.push(chunk)
})()
let message
for await (const m of readUIMessageStream({
  stream: forUi,
  onError: (e) => {
    throw e
  },
})) {
  message = m
}
await logged

// TanStack AI: subscribe to the run's AG-UI view first (a run not started yet reads as an
// empty open stream), then send; the `fetchClient` stands in for the app's chat route again: it
// starts the run under the chosen id with agentwire's AG-UI endpoint (`POST /agui/{agent}`, whose
// response it does not need: the run goes on without it).
const tanstackRun = `r_tanstack_${process.pid}`
const agUiUrl = `${base}/ds/agentwire/runs/${tanstackRun}/ag-ui?${auth}`
async function tanstackChatRoute(_url, init) {
  const { messages } = JSON.parse(init.body)
  const content = messages.at(-1).parts.map((p) => p.content).join("")
  const started = await fetch(`${base}/agui/${agent}?${auth}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      threadId: "t_tanstack",
      runId: tanstackRun,
      messages: [{ id: "u2", role: "user", content }],
    }),
  })
  await started.body?.cancel()
  return new Response(null, { status: started.ok ? 202 : started.status })
}
const connection = durableStreamConnection({
  sendUrl: "/api/chat",
  readUrl: agUiUrl,
  fetchClient: tanstackChatRoute,
})
const processor = new StreamProcessor()
const tanstackChunks = []
let live
const subscribed = new Promise((resolve) => (live = resolve))
const read = (async () => {
  for await (const chunk of connection.subscribe()) {
    tanstackChunks.push(chunk)
    processor.processChunk(chunk)
    // The first chunk is the snapshot of what the stream held (nothing yet): the subscription
    // is live, the run can start.
    if (chunk.type === "MESSAGES_SNAPSHOT") live()
  }
})()
await subscribed
await connection.send([{ id: "u2", role: "user", parts: [{ type: "text", content: question }] }])
await read
const snapshot = await materializeSnapshotFromDurableStream({ readUrl: agUiUrl })

console.log(
  JSON.stringify({
    runId,
    aiSdk: { chunks, message },
    tanstack: {
      runId: tanstackRun,
      chunks: tanstackChunks,
      messages: processor.getMessages(),
      snapshot,
    },
  }),
)
