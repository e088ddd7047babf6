// vitest config of subscriptions.test.mjs (see there); the CLI's cases use vitest.config.mjs.
import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["subscriptions.test.mjs"],
    testTimeout: 30000,
  },
})
