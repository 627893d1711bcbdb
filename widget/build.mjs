// Bundles the widget into dist/: index.html, widget.js, widget.css (no inline script or
// style, so the page's CSP needs no 'unsafe-inline'). The SDK's crypto and protocol
// helpers are bundled from ../sdk/js/src (their dependencies from sdk/js/node_modules).
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "dist");
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { widget: join(here, "src/main.ts"), "widget-style": join(here, "src/style.css") },
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: false,
  legalComments: "none",
  outdir: out,
  entryNames: "[name]",
  logLevel: "warning",
  nodePaths: [join(here, "node_modules"), join(here, "../sdk/js/node_modules")],
});
copyFileSync(join(here, "src/index.html"), join(out, "index.html"));
