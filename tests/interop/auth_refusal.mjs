// The browser client (/agentwire.js) against a JWT server with a bad token: it must stop after
// the refusal, report it as `closed` with `auth: true` and the server's message, and not retry.
// Usage: node auth_refusal.mjs http://127.0.0.1:PORT
import { AgentwireClient } from "../../crates/agentwire-server/static/agentwire.js";

const base = process.argv[2];
const url = `${base.replace(/^http/, "ws")}/ws`;
const statuses = [];
const client = new AgentwireClient({ url, token: "not-a-jwt", backoff: { initialMs: 50, maxMs: 100 } });
const closed = new Promise((resolve, reject) => {
  client.on("status", (s) => {
    statuses.push(s);
    if (s.state === "closed") resolve(s);
  });
  setTimeout(() => reject(new Error(`no "closed" status in 10 s: ${JSON.stringify(statuses)}`)), 10_000);
});
client.connect();
const status = await closed;
// Long enough for several reconnects at 50-100 ms, had the client kept trying.
await new Promise((r) => setTimeout(r, 600));
const problems = [];
if (status.code !== 401 || status.auth !== true) problems.push(`closed with ${JSON.stringify(status)}`);
if (!/not a JWT/.test(status.reason || "")) problems.push(`reason ${JSON.stringify(status.reason)}`);
if (statuses.some((s) => s.state === "reconnecting")) problems.push("it retried");
if (problems.length) {
  console.error(`FAIL: ${problems.join("; ")}\nstatuses: ${JSON.stringify(statuses)}`);
  process.exit(1);
}
console.log(`ok: ${status.reason}`);
process.exit(0);
