// `npm test`: bundles the e2e test (TypeScript) and the test dApp, then runs the test with
// node's test runner. Needs: /usr/bin/chromium, KEYSTEAD_ANVIL, KEYSTEAD_OIDC_PROVIDER_DIR and
// the debug `keystead` (scripts/test sets all of them up).
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const widget = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(widget, ".e2e");
mkdirSync(out, { recursive: true });
const nodePaths = [join(widget, "node_modules"), join(widget, "../sdk/js/node_modules")];
await build({
  entryPoints: [join(widget, "test/dapp/dapp.ts")],
  bundle: true,
  format: "iife",
  target: "es2022",
  outfile: join(out, "dapp.js"),
  logLevel: "warning",
  nodePaths,
});
await build({
  entryPoints: [join(widget, "test/e2e.test.ts")],
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  outfile: join(out, "e2e.test.mjs"),
  logLevel: "warning",
});
const r = spawnSync(process.execPath, ["--test", "--test-reporter=spec", join(out, "e2e.test.mjs")], { stdio: "inherit", cwd: widget });
process.exit(r.status ?? 1);
