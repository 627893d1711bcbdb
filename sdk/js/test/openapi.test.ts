import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));

describe("generated API types", () => {
  it("src/generated/openapi.d.ts is what `npm run gen:api` makes from openapi.json", () => {
    const out = join(mkdtempSync(join(tmpdir(), "keystead-sdk-")), "openapi.d.ts");
    const cli = join(root, "node_modules", "openapi-typescript", "bin", "cli.js");
    const run = spawnSync(process.execPath, [cli, "openapi.json", "--empty-objects-unknown", "-o", out], { cwd: root, encoding: "utf8" });
    expect(run.status, run.stderr).toBe(0);
    expect(readFileSync(out, "utf8")).toBe(readFileSync(join(root, "src", "generated", "openapi.d.ts"), "utf8"));
  });

  it("the snapshot has every path of the API.md contract", () => {
    const doc = JSON.parse(readFileSync(join(root, "openapi.json"), "utf8")) as { paths: Record<string, Record<string, unknown>> };
    for (const [method, path] of [
      ["get", "/v1/app"],
      ["get", "/v1/enclave/attestation"],
      ["post", "/v1/auth/id-token"],
      ["post", "/v1/auth/refresh"],
      ["post", "/v1/auth/logout"],
      ["get", "/v1/me"],
      ["post", "/v1/wallet"],
      ["post", "/v1/wallet/pin"],
      ["post", "/v1/wallet/recover"],
      ["post", "/v1/wallet/export"],
      ["get", "/v1/accounts"],
      ["get", "/v1/accounts/{id}/balance"],
      ["post", "/v1/sign/message"],
      ["post", "/v1/sign/typed-data"],
      ["post", "/v1/tx/prepare"],
      ["post", "/v1/tx/sign"],
      ["post", "/v1/tx/send"],
      ["get", "/v1/tx/{id}"],
    ] as const) {
      expect(doc.paths[path]?.[method], `${method} ${path}`).toBeDefined();
    }
  });
});
