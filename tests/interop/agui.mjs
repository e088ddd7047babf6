// Interop test: the published AG-UI client (@ag-ui/client, pinned in package-lock.json) runs
// agentwire's `demo` agent over `POST /agui/demo` and verifies the event stream.
//
// Run: npm ci && node agui.mjs http://127.0.0.1:8080
// Exits 0 when the client's verifier accepted every event and the sequence is the expected one;
// non-zero (with the reason on stderr) otherwise. Used by `tests/interop.rs`.
import { HttpAgent } from "@ag-ui/client";

const base = process.argv[2];
if (!base) {
  console.error("usage: node agui.mjs <base_url>");
  process.exit(2);
}
const user = process.argv[3] ?? "interop";

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

// Consecutive TEXT_MESSAGE_CONTENT events collapse into one, so the expected order does not
// depend on how many words the answer has.
function collapse(types) {
  return types.filter((t, i) => !(t === "TEXT_MESSAGE_CONTENT" && types[i - 1] === t));
}

const toolCall = ["TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END", "TOOL_CALL_RESULT"];
const expected = [
  "RUN_STARTED",
  "STEP_STARTED", ...toolCall, "STEP_FINISHED",          // 1. read the question, clock
  "STEP_STARTED", ...toolCall, "STEP_FINISHED",          // 2. arithmetic, calculator
  "STEP_STARTED", "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END",
  "STEP_FINISHED",                                       // 3. the answer
  "RUN_FINISHED",
];

async function runOnce(agent, question, runId) {
  agent.addMessage({ id: `u-${runId}`, role: "user", content: question });
  const seen = [];
  const { newMessages } = await agent.runAgent(
    { runId },
    { onEvent: ({ event }) => { seen.push(event.type); } },
  );
  const got = collapse(seen);
  if (JSON.stringify(got) !== JSON.stringify(expected)) {
    fail(`wrong event sequence for ${runId}:\n  got      ${got.join(" ")}\n  expected ${expected.join(" ")}`);
  }
  const assistant = newMessages.find((m) => m.role === "assistant" && typeof m.content === "string" && m.content.length > 0);
  if (!assistant) fail(`no assistant message in ${JSON.stringify(newMessages)}`);
  const tools = newMessages.filter((m) => m.role === "tool");
  if (tools.length !== 2) fail(`expected 2 tool results, got ${JSON.stringify(tools)}`);
  return assistant.content;
}

const agent = new HttpAgent({
  url: `${base}/agui/demo?user=${encodeURIComponent(user)}`,
  threadId: `thread-${Date.now()}`,
});

try {
  const first = await runOnce(agent, "What is 6 * 7?", `run-a-${Date.now()}`);
  if (!first.startsWith("6 * 7 = 42")) fail(`unexpected answer: ${first}`);
  // A second run in the same thread: ids stay unique, the verifier accepts a new RUN_STARTED.
  const second = await runOnce(agent, "And 2 + 3?", `run-b-${Date.now()}`);
  if (!second.startsWith("2 + 3 = 5")) fail(`unexpected answer: ${second}`);
} catch (e) {
  fail(`the AG-UI client rejected the stream: ${e?.stack ?? e}`);
}
console.log("ok: @ag-ui/client accepted two demo runs");
