// The demo dApp's tiny static server (scripts/run starts it): bundles demo.ts with esbuild in
// memory at start, then serves index.html, demo.js, demo.css and config.json on
// http://localhost:5173, the origin `keystead serve --dev` registers for its demo app.
//
//   node widget/demo/serve.mjs --server http://127.0.0.1:8080 --app-key KEY \
//     [--rpc http://127.0.0.1:8545] [--network local] [--port 5173] [--dev-issuer]
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    server: { type: "string" },
    "app-key": { type: "string" },
    rpc: { type: "string", default: "http://127.0.0.1:8545" },
    network: { type: "string", default: "local" },
    port: { type: "string", default: "5173" },
    "dev-issuer": { type: "boolean", default: false },
  },
});
if (!values.server || !values["app-key"]) {
  console.error("demo/serve.mjs: --server and --app-key are required");
  process.exit(2);
}
const serverUrl = new URL(values.server).origin;
const rpcUrl = new URL(values.rpc).toString().replace(/\/$/, "");

const bundle = await build({
  entryPoints: [join(here, "demo.ts")],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  write: false,
  legalComments: "none",
  logLevel: "warning",
  nodePaths: [join(here, "../node_modules"), join(here, "../../sdk/js/node_modules")],
});

const files = {
  "/": { type: "text/html; charset=utf-8", body: readFileSync(join(here, "index.html")) },
  "/demo.js": { type: "text/javascript; charset=utf-8", body: Buffer.from(bundle.outputFiles[0].contents) },
  "/demo.css": { type: "text/css; charset=utf-8", body: readFileSync(join(here, "demo.css")) },
  "/config.json": {
    type: "application/json",
    body: Buffer.from(JSON.stringify({ serverUrl, appKey: values["app-key"], rpcUrl, network: values.network, devIssuer: values["dev-issuer"] })),
  },
};
files["/index.html"] = files["/"];

const csp = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  `connect-src 'self' ${serverUrl} ${new URL(rpcUrl).origin}`,
  `frame-src ${serverUrl}`,
  "img-src 'self' data:",
  "object-src 'none'",
  "base-uri 'none'",
].join("; ");

function handler(req, res) {
  const path = new URL(req.url ?? "/", "http://localhost").pathname;
  if (path === "/favicon.ico") {
    res.writeHead(204).end();
    return;
  }
  const file = req.method === "GET" || req.method === "HEAD" ? files[path] : undefined;
  if (!file) {
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    return;
  }
  res.writeHead(200, {
    "content-type": file.type,
    "content-security-policy": csp,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
  });
  res.end(req.method === "HEAD" ? undefined : file.body);
}

// localhost: IPv4 and, where there is one, IPv6 loopback (browsers may try either).
const port = Number(values.port);
const v4 = createServer(handler);
v4.on("error", (e) => {
  console.error(`demo/serve.mjs: cannot listen on 127.0.0.1:${port}: ${e.message}`);
  process.exit(1);
});
v4.listen(port, "127.0.0.1", () => console.error(`demo dApp: http://localhost:${port}`));
const v6 = createServer(handler);
v6.on("error", () => {}); // no IPv6 loopback: IPv4 is enough
v6.listen(port, "::1");
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(0));
