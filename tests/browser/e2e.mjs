// End-to-end test of the demo page in Debian's Chromium, driven by playwright-core.
//
//   node tests/browser/e2e.mjs <base_url> <screenshot_path>
//
// Run by `tests/browser.rs` (cargo test), which starts the server. Opens the page as a fresh
// user, sends a question, drops the socket mid-answer through `POST /debug/disconnect`, and
// checks that the page resumes and renders every event exactly once. Exits 0 on success.
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { TestBrowser, check } from "./chromium.mjs";

const [base, screenshot] = process.argv.slice(2);
if (!base || !screenshot) {
  console.error("usage: node e2e.mjs <base_url> <screenshot_path>");
  process.exit(2);
}
const STEP_TIMEOUT = 15_000;
const LIFECYCLE = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"];
const browser = new TestBrowser("e2e", 90_000);

const delivered = (page) => page.evaluate(() => window.__agentwire.events.map((e) => ({ ...e })));

function assertExactlyOnce(events, label) {
  const seqs = events.map((e) => e.seq);
  seqs.forEach((s, i) => check(s === i + 1, `${label}: seqs are not 1..N without gaps or duplicates: ${seqs.join(",")}`));
}

function assertRun(events, runId, label) {
  const run = events.filter((e) => e.run_id === runId);
  const types = run.map((e) => e.type);
  for (const t of LIFECYCLE) check(types.includes(t), `${label}: no ${t} in ${types.join(",")}`);
  check(types.includes("agent_message_delta"), `${label}: no streamed answer`);
  check(types[0] === "agent_started", `${label}: first event is ${types[0]}`);
  check(types.at(-1) === "agent_completed", `${label}: last event is ${types.at(-1)}`);
  check(types.filter((t) => t === "agent_completed" || t === "agent_error").length === 1, `${label}: terminal events ${types}`);
  check(
    types.filter((t) => t === "tool_executing").length === types.filter((t) => t === "tool_completed").length,
    `${label}: unmatched tool calls ${types}`,
  );
  return run;
}

async function main() {
  const context = await browser.launch(STEP_TIMEOUT);
  const user = `e2e-${Date.now().toString(36)}`;
  const page = context.pages()[0] || (await context.newPage());
  browser.watch(page, "page");

  // 1. Open the page, connect as a fresh dev user.
  await page.goto(`${base}/?user=${user}`);
  await page.waitForSelector('[data-testid=connection-badge][data-state=connected]');
  check((await page.textContent("#who")) === user, "the page does not show the user");

  // Accessibility basics: every form control has a label, every button a name.
  const unlabeled = await page.evaluate(() => [
    ...[...document.querySelectorAll("input, textarea, select")]
      .filter((el) => !el.labels?.length && !el.getAttribute("aria-label")).map((el) => el.id || el.name),
    ...[...document.querySelectorAll("button")].filter((b) => !(b.textContent.trim() || b.getAttribute("aria-label")))
      .map((b) => b.outerHTML),
  ]);
  check(unlabeled.length === 0, `controls without a label: ${unlabeled}`);

  // 2. Ask with the keyboard only: focus the box, type, press Enter.
  await page.focus("[data-testid=message]");
  await page.keyboard.type("What is 6 * 7?");
  await page.keyboard.press("Enter");
  const card = page.locator("[data-testid=run-card]").first();
  await card.waitFor();
  const runId = await card.getAttribute("data-run-id");

  // 3. Mid-answer, drop the socket from the server side, as a node restart would.
  await page.waitForFunction(
    () => window.__agentwire.events.some((e) => e.type === "agent_message_delta"),
    null,
    { polling: 10 },
  );
  const res = await fetch(`${base}/debug/disconnect?user=${encodeURIComponent(user)}`, { method: "POST" });
  check(res.ok, `POST /debug/disconnect: HTTP ${res.status}`);
  const { closed } = await res.json();
  check(closed >= 1, `the debug route closed ${closed} connections`);

  // 4. The page reconnects, resumes, and the run completes.
  await page.waitForSelector('[data-testid=connection-badge][data-state=resumed]');
  await page.waitForSelector(`[data-testid=run-card][data-run-id="${runId}"][data-state=completed]`);
  const badge = await page.textContent("[data-testid=connection-badge]");
  const m = /^resumed \((\d+) events? replayed\)$/.exec(badge);
  check(m, `badge says "${badge}"`);
  const replayed = Number(m[1]);
  check(replayed >= 1, `nothing was replayed (the run ended before the disconnect?): "${badge}"`);
  const states = await page.evaluate(() => window.__agentwire.statuses.map((s) => s.state));
  check(
    /connected,(reconnecting,)+resumed$/.test(states.join(",")),
    `status sequence: ${states.join(",")}`,
  );

  // 5. Every event exactly once, in order; the card shows the whole lifecycle and the answer.
  let events = await delivered(page);
  assertExactlyOnce(events, "page");
  const run = assertRun(events, runId, "first run");
  check(events.filter((e) => e.replayed).length === replayed, `replayed marks != ${replayed}`);
  const cardSeqs = (await card.getAttribute("data-seqs")).split(" ").map(Number);
  check(JSON.stringify(cardSeqs) === JSON.stringify(run.map((e) => e.seq)), `card rendered seqs ${cardSeqs}`);
  const kinds = await card.evaluate((c) => [...c.querySelectorAll("[data-testid=step], [data-testid=tool-call]")]
    .map((li) => `${li.dataset.type}:${li.dataset.state || ""}`));
  check(kinds.filter((k) => k.startsWith("agent_started")).length === 1, `started items: ${kinds}`);
  check(kinds.filter((k) => k.startsWith("agent_thinking")).length === 3, `thinking items: ${kinds}`);
  check(kinds.filter((k) => k === "tool_executing:ok").length === 2, `completed tool calls: ${kinds}`);
  check(kinds.filter((k) => k.startsWith("agent_completed")).length === 1, `completed items: ${kinds}`);
  const answer = (await card.locator("[data-testid=answer]").textContent()).trim();
  check(answer.startsWith("6 * 7 = 42."), `answer: "${answer}"`);
  const deltas = events.filter((e) => e.run_id === runId && e.type === "agent_message_delta").length;
  check(answer.split(" ").length === deltas, `answer has ${answer.split(" ").length} words for ${deltas} deltas`);

  // 6. A second question in the same thread, after the resume: live delivery goes on.
  await page.fill("[data-testid=message]", "What is (12 + 30) / 7?");
  await page.click("[data-testid=send]");
  const second = page.locator("[data-testid=run-card]").nth(1);
  await second.waitFor();
  const secondId = await second.getAttribute("data-run-id");
  await page.waitForSelector(`[data-testid=run-card][data-run-id="${secondId}"][data-state=completed]`);
  check(
    (await second.getAttribute("data-thread-id")) === (await card.getAttribute("data-thread-id")),
    "the second run is not in the same thread",
  );
  events = await delivered(page);
  assertExactlyOnce(events, "page after the second run");
  assertRun(events, secondId, "second run");
  check((await second.locator("[data-testid=answer]").textContent()).startsWith("(12 + 30) / 7 = 6."), "second answer");
  check((await page.locator("[data-testid=thread]").count()) === 1, "one thread in the list");

  // 7. Cancel: a run in a new thread, cancelled from its card.
  await page.click("[data-testid=new-thread]");
  await page.fill("[data-testid=message]", "What time is it?");
  await page.keyboard.press("Enter");
  const visible = page.locator("[data-testid=run-card]:not([hidden])").first();
  await visible.waitFor();
  const thirdId = await visible.getAttribute("data-run-id");
  const third = page.locator(`[data-testid=run-card][data-run-id="${thirdId}"]`);
  check(thirdId !== runId && thirdId !== secondId, "the new thread shows an old run");
  await page.waitForFunction((id) => window.__agentwire.events.some((e) => e.run_id === id), thirdId);
  await third.locator("[data-testid=cancel]").click();
  await page.waitForSelector(`[data-testid=run-card][data-run-id="${thirdId}"][data-state=error]`);
  check((await third.locator("[data-testid=run-state]").textContent()) === "cancelled", "cancelled run state");
  check((await page.locator("[data-testid=thread]").count()) === 2, "two threads in the list");
  events = await delivered(page);
  assertExactlyOnce(events, "page after the cancel");
  const cancelled = events.filter((e) => e.run_id === thirdId).map((e) => e.type);
  check(cancelled.at(-1) === "agent_error" && !cancelled.includes("agent_completed"), `cancelled run: ${cancelled}`);
  // Back to the first thread (the list is newest first).
  await page.locator("[data-testid=thread]").nth(1).click();
  await card.waitFor({ state: "visible" });
  check(await third.isHidden(), "the other thread's run is still shown");

  // 8. A fresh tab, signed in through the user form with the keyboard, rebuilds the same
  //    timeline from the server's history.
  const other = await context.newPage();
  browser.watch(other, "history tab");
  await other.goto(`${base}/`);
  await other.waitForSelector('[data-testid=connection-badge][data-state=connected]');
  await other.click("[data-testid=identity-summary]");
  await other.fill("#user", user);
  await other.press("#user", "Enter");
  await other.waitForFunction((u) => document.getElementById("who").textContent === u, user);
  await other.waitForFunction((n) => window.__agentwire.events.length >= n, events.length);
  await other.waitForTimeout(100);
  const history = await delivered(other);
  check(
    JSON.stringify(history.map((e) => [e.seq, e.type, e.run_id])) ===
      JSON.stringify(events.map((e) => [e.seq, e.type, e.run_id])),
    "the history tab differs from what the first tab was delivered",
  );
  await other.close();

  // 9. Screenshots: open the calculator call, then wide and narrow.
  await card.locator("[data-testid=tool-call]").nth(1).locator("summary").click();
  await page.evaluate(() => window.scrollTo(0, 0));
  mkdirSync(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot, fullPage: true });
  await page.setViewportSize({ width: 380, height: 800 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the page scrolls sideways by ${overflow}px at 380px wide`);
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-narrow.png"), fullPage: true });

  check(browser.problems.length === 0, "console or page errors");
  console.log(
    `browser e2e: ok: ${events.length} events (seq 1..${events.length}, each once), ` +
      `${run.length} in the interrupted run, badge "${badge}", answer "${answer}"; screenshot ${screenshot}`,
  );
  await browser.cleanup();
}

main().catch((e) => browser.fail(e.stack || String(e)));
