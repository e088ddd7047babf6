// What the browser scripts share: Debian's Chromium (never a downloaded browser) through npm's
// playwright-core, a time bound, and the console errors, page errors and failed requests each
// page had.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

export function check(ok, message) {
  if (!ok) throw new Error(message);
}

// One test's browser. `name` labels its failure line; the whole test is bounded by `limitMs`.
export class TestBrowser {
  constructor(name, limitMs) {
    this.name = name;
    this.problems = []; // console errors, page errors, failed requests
    this.userDataDir = mkdtempSync(join(tmpdir(), "agentwire-chromium-"));
    this.context = undefined;
    // Never hang: the whole test is bounded.
    this.deadline = setTimeout(() => this.fail(`the test took longer than ${limitMs / 1000} s`), limitMs);
  }

  async launch(stepTimeoutMs) {
    this.context = await chromium.launchPersistentContext(this.userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
      ],
      viewport: { width: 1100, height: 860 },
      timeout: 30_000,
    });
    this.context.setDefaultTimeout(stepTimeoutMs);
    return this.context;
  }

  // `page` with its problems collected under `label`.
  watch(page, label) {
    page.on("console", (m) => {
      if (m.type() === "error") this.problems.push(`[${label}] console.error: ${m.text()}`);
    });
    page.on("pageerror", (e) => this.problems.push(`[${label}] uncaught: ${e.message}`));
    page.on("response", (r) => {
      if (r.status() >= 400) this.problems.push(`[${label}] HTTP ${r.status()} ${r.url()}`);
    });
    return page;
  }

  async cleanup() {
    clearTimeout(this.deadline);
    try {
      await this.context?.close();
    } catch {
      // already gone
    }
    rmSync(this.userDataDir, { recursive: true, force: true });
  }

  async fail(message) {
    console.error(`browser ${this.name}: FAILED: ${message}`);
    if (this.problems.length) console.error(`console/page errors:\n  ${this.problems.join("\n  ")}`);
    await this.cleanup();
    process.exit(1);
  }
}
