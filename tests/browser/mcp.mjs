// The demo page shows an MCP tool call like any other tool call, in Debian's Chromium, driven by
// playwright-core.
//
//   node tests/browser/mcp.mjs <base_url> <screenshot_path>
//
// Run by `tests/browser.rs` (cargo test), which starts the server with an `assistant` agent whose
// scripted model calls `mcp__everything__echo` (server-everything over stdio), then answers.
// Picks that agent on the page, asks, and checks the run card: one tool call named
// `mcp:everything/echo`, completed ok, its arguments and the echoed result shown, then the answer.
// Exits 0 on success.
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { TestBrowser, check } from "./chromium.mjs";

const [base, screenshot] = process.argv.slice(2);
if (!base || !screenshot) {
  console.error("usage: node mcp.mjs <base_url> <screenshot_path>");
  process.exit(2);
}
const browser = new TestBrowser("mcp", 60_000);

async function main() {
  const context = await browser.launch(15_000);
  const page = browser.watch(context.pages()[0] || (await context.newPage()), "page");

  const user = `mcp-${Date.now().toString(36)}`;
  await page.goto(`${base}/?user=${user}`);
  await page.waitForSelector('[data-testid=connection-badge][data-state=connected]');
  // The picker lists the configured agent (GET /v1/agents); pick it and ask.
  await page.waitForSelector('[data-testid=agent] option[value=assistant]', { state: "attached" });
  await page.selectOption("[data-testid=agent]", "assistant");
  await page.fill("[data-testid=message]", "Echo something through MCP");
  await page.keyboard.press("Enter");

  const card = page.locator("[data-testid=run-card]").first();
  await card.waitFor();
  const runId = await card.getAttribute("data-run-id");
  await page.waitForSelector(`[data-testid=run-card][data-run-id="${runId}"][data-state=completed]`);

  const calls = card.locator("[data-testid=tool-call]");
  check((await calls.count()) === 1, `tool calls on the card: ${await calls.count()}`);
  const call = calls.first();
  check((await call.getAttribute("data-state")) === "ok", `call state: ${await call.getAttribute("data-state")}`);
  check((await call.getAttribute("data-call-id")) === "call_echo", "the model's call id");
  const name = (await call.locator("summary code").textContent()).trim();
  check(name === "mcp:everything/echo", `tool name shown: "${name}"`);
  await call.locator("summary").click();
  const shown = await call.locator("pre").allTextContents();
  check(shown.length === 2, `arguments and result blocks: ${shown.length}`);
  check(JSON.parse(shown[0]).message === "hello from MCP", `arguments shown: ${shown[0]}`);
  check(shown[1].includes("Echo: hello from MCP"), `result shown: ${shown[1]}`);
  const answer = (await card.locator("[data-testid=answer]").textContent()).trim();
  check(answer === "The MCP server echoed it.", `answer: "${answer}"`);
  const tag = (await card.locator("header .tag").textContent()).trim();
  check(tag === "assistant", `agent tag: "${tag}"`);

  mkdirSync(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot, fullPage: true });
  check(browser.problems.length === 0, "console or page errors");
  console.log(`browser mcp: ok: ${name} completed with "${shown[1].trim().slice(0, 60)}"; screenshot ${screenshot}`);
  await browser.cleanup();
}

main().catch((e) => browser.fail(e.stack || String(e)));
