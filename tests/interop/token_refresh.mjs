// The browser client (/agentwire.js) against a JWT server whose tokens expire: with a token
// callback it must refresh before the server's expiry and keep the same connection open past
// it; when a refresh fails, the server closes with 4001 and the client reconnects with a fresh
// token from the callback and resumes.
// Usage: node token_refresh.mjs http://127.0.0.1:PORT <jwt secret>
import { createHmac } from "node:crypto";
import { AgentwireClient } from "../../crates/agentwire-server/static/agentwire.js";

const [base, secret] = process.argv.slice(2);
const url = `${base.replace(/^http/, "ws")}/ws`;
const problems = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
// An HS256 token. `exp` 3 s in the past is still accepted (5 s of leeway), and the server
// closes the connection when the token stops being accepted: 1–2 s from now.
function token(user, expInSecs) {
  const exp = Math.floor(Date.now() / 1000) + expInSecs;
  const unsigned = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: user, exp })}`;
  return `${unsigned}.${createHmac("sha256", secret).update(unsigned).digest("base64url")}`;
}

function watch(client) {
  const seen = { statuses: [], hellos: [], refreshes: [] };
  client.on("status", (s) => seen.statuses.push(s));
  client.on("connection_established", (d) => seen.hellos.push(d));
  client.on("refresh", (r) => seen.refreshes.push(r));
  return seen;
}

async function echo(client, content) {
  const events = [];
  let done;
  const finished = new Promise((r) => { done = r; });
  await client.send(content, {
    agent: "echo",
    onEvent: (e) => {
      events.push(e.type);
      if (e.type === "agent_completed") done();
    },
  });
  await Promise.race([finished, sleep(5000)]);
  return events;
}

// 1. The callback refreshes before the expiry: one connection, open past the first expiry.
{
  const calls = [];
  const client = new AgentwireClient({
    url,
    token: async () => {
      calls.push(Date.now());
      return token("rae", calls.length === 1 ? -3 : 300);
    },
  });
  const seen = watch(client);
  client.connect();
  await sleep(3000); // past the first token's expiry (at most 2 s)
  const events = await echo(client, "still open");
  if (calls.length < 2) problems.push(`refresh: the callback was called ${calls.length} time(s)`);
  if (seen.hellos.length !== 1) problems.push(`refresh: ${seen.hellos.length} connections`);
  if (!seen.hellos[0]?.expires_in_ms) problems.push("refresh: no expires_in_ms in the greeting");
  if (!seen.refreshes.some((r) => r.ok && r.expiresInMs > 290000)) {
    problems.push(`refresh: no accepted refresh: ${JSON.stringify(seen.refreshes)}`);
  }
  if (seen.statuses.some((s) => s.state === "reconnecting")) problems.push("refresh: it reconnected");
  if (events.at(-1) !== "agent_completed") problems.push(`refresh: run events ${events}`);
  client.close();
}

// 2. The refresh fails (the callback throws once): the server closes with 4001 at the expiry,
//    and the client reconnects with a fresh token from the callback.
{
  let calls = 0;
  const client = new AgentwireClient({
    url,
    backoff: { initialMs: 50, maxMs: 100 },
    token: async () => {
      calls += 1;
      if (calls === 2) throw new Error("identity provider unreachable");
      return token("sam", calls === 1 ? -3 : 300);
    },
  });
  const seen = watch(client);
  client.connect();
  await sleep(3000);
  const events = await echo(client, "after the reconnect");
  const lost = seen.statuses.find((s) => s.state === "reconnecting");
  if (lost?.code !== 4001) problems.push(`expiry: closed with ${JSON.stringify(lost)}`);
  if (seen.hellos.length !== 2) problems.push(`expiry: ${seen.hellos.length} connections`);
  if (client.state !== "resumed") problems.push(`expiry: state ${client.state}`);
  if (!seen.refreshes.some((r) => !r.ok)) problems.push("expiry: the failed refresh was not reported");
  if (events.at(-1) !== "agent_completed") problems.push(`expiry: run events ${events}`);
  client.close();
}

if (problems.length) {
  console.error(`FAIL: ${problems.join("; ")}`);
  process.exit(1);
}
console.log("ok: refreshed before the expiry; reconnected with a fresh token after a 4001");
process.exit(0);
