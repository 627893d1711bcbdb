// End to end, in headless Chromium (playwright-core, the system's /usr/bin/chromium): a real
// `keystead serve` (real enclave), anvil, and panva's oidc-provider; a dApp on another
// loopback origin using the SDK through viem and ethers v6; the widget served by keystead.
// Every screen is saved to widget/screenshots/.
import { after, afterEach, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { createServer as netServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium, type Browser, type BrowserContext, type FrameLocator, type Page, type Response } from "playwright-core";
import { createPublicClient, defineChain, encodeFunctionData, erc20Abi, getAddress, http, verifyMessage, verifyTypedData, type Hex } from "viem";

const WIDGET = resolve(process.cwd());
const REPO = resolve(WIDGET, "..");
const SHOTS = join(WIDGET, "screenshots");
const TARGET = process.env.CARGO_TARGET_DIR ?? join(process.env.HOME ?? "/root", ".cache/keystead/target");
const KEYSTEAD = process.env.KEYSTEAD_BIN ?? join(TARGET, "debug/keystead");
const ANVIL = process.env.KEYSTEAD_ANVIL;
const OIDC_DIR = process.env.KEYSTEAD_OIDC_PROVIDER_DIR;
const CHROMIUM = process.env.KEYSTEAD_CHROMIUM ?? "/usr/bin/chromium";
const PIN = "480927";
const WRONG_PIN = "905173";
const RECIPIENT = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
const SEND_TO = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";
const CHANGED_PIN = "592046";
const RECOVERED_PIN = "613809";
/** Anvil's first dev account (unlocked): deploys the test tokens and holds their supply. */
const DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
/** Receives the ERC-20 transfer; is named as the spender of the unlimited approval. */
const TOKEN_TO = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65";
const SPENDER = "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc";
const MAX_UINT256 = (1n << 256n) - 1n;
/**
 * The server's access-token lifetime for the whole suite (KEYSTEAD_ACCESS_TOKEN_TTL_SECS):
 * short, so tokens expire during the run. Every case must cope (the SDK refreshes on a 401,
 * the widget asks the SDK with `session-expired`), and one case waits past it on purpose.
 */
const ACCESS_TOKEN_TTL_SECS = 10;

const TYPED = {
  domain: { name: "Keystead demo", version: "1", chainId: 31337, verifyingContract: "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC" },
  types: {
    Person: [
      { name: "name", type: "string" },
      { name: "wallet", type: "address" },
    ],
    Mail: [
      { name: "from", type: "Person" },
      { name: "to", type: "Person" },
      { name: "contents", type: "string" },
    ],
  },
  primaryType: "Mail",
  message: {
    from: { name: "Alice", wallet: "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826" },
    to: { name: "Bob", wallet: "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB" },
    contents: "Hello, Bob!",
  },
} as const;

const children: ChildProcess[] = [];
let dappServer: Server;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let dataDir: string;
let serverUrl: string;
let rpcUrl: string;
let dappOrigin: string;
let foreignOrigin: string;
let appKey: string;
let account: Hex;
/** TestToken ("TST", 6 decimals) listed in keystead's configuration for `local`. */
let token: Hex;
/** The same contract deployed again and not listed: the widget must not call it TST. */
let unlisted: Hex;
/** The PIN the wallet has now (changed and reset by the settings cases). */
let pin = PIN;
/** The recovery code shown once at set-up (kept for the recovery case; never logged). */
let recoveryCode = "";

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = netServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
    s.on("error", rej);
  });
}

function start(cmd: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let log = "";
  child.stdout!.on("data", (d) => (log += d));
  child.stderr!.on("data", (d) => (log += d));
  child.on("exit", (code) => {
    if (code && code !== 0 && !stopping) process.stderr.write(`${cmd} exited ${code}:\n${log.slice(-4000)}\n`);
  });
  return child;
}
let stopping = false;

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function rpc(method: string, params: unknown[]): Promise<unknown> {
  const r = await fetch(rpcUrl, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) });
  const body = (await r.json()) as { result?: unknown; error?: unknown };
  if (body.error) throw new Error(JSON.stringify(body.error));
  return body.result;
}

/** Deploys crates/testkit/contracts/TestToken.bin (`TestToken(uint256 supply)`) from DEPLOYER. */
async function deployTestToken(supply: bigint): Promise<Hex> {
  const bin = readFileSync(join(REPO, "crates/testkit/contracts/TestToken.bin"), "utf8").trim();
  const hash = (await rpc("eth_sendTransaction", [{ from: DEPLOYER, data: `0x${bin}${supply.toString(16).padStart(64, "0")}` }])) as Hex;
  const receipt = await waitFor("the token's deployment", async () => ((await rpc("eth_getTransactionReceipt", [hash])) as { status: string; contractAddress: string } | null) ?? undefined);
  assert.equal(receipt.status, "0x1");
  return getAddress(receipt.contractAddress);
}

/** `balanceOf(who)` of an ERC-20, read from anvil. */
async function tokenBalance(contract: Hex, who: string): Promise<bigint> {
  const data = encodeFunctionData({ abi: erc20Abi, functionName: "balanceOf", args: [who as Hex] });
  return BigInt((await rpc("eth_call", [{ to: contract, data }, "latest"])) as string);
}

/** An ERC-20 transfer from DEPLOYER (anvil signs it), waited for. */
async function fundToken(contract: Hex, to: string, amount: bigint): Promise<void> {
  const data = encodeFunctionData({ abi: erc20Abi, functionName: "transfer", args: [to as Hex, amount] });
  const hash = (await rpc("eth_sendTransaction", [{ from: DEPLOYER, to: contract, data }])) as Hex;
  const receipt = await waitFor("the token funding", async () => ((await rpc("eth_getTransactionReceipt", [hash])) as { status: string } | null) ?? undefined);
  assert.equal(receipt.status, "0x1");
}

async function shot(name: string): Promise<void> {
  await page.waitForTimeout(150);
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

function widget(): FrameLocator {
  return page.frameLocator('iframe[title="Keystead wallet"]');
}

/** Starts a dApp call in the page without waiting for it (the widget must be driven first). */
function call<T = unknown>(fn: string, ...args: unknown[]): Promise<{ ok: boolean; value?: T; code?: unknown; message?: string }> {
  return page.evaluate(([f, a]) => (window as unknown as Record<string, Record<string, (...x: unknown[]) => Promise<never>>>).dapp[f as string]!(...(a as unknown[])), [fn, args] as const);
}

/**
 * Waits for a hostile approval to be refused with `invalid_request` and `message`, and
 * fails if the widget shows it for a PIN instead (closing it so the suite goes on).
 */
async function refusedWithoutPin(asked: ReturnType<typeof call>, what: string, message: RegExp): Promise<void> {
  const w = widget();
  const shownInstead = w.locator("#pin").waitFor({ timeout: 5_000 }).then(() => true, () => false);
  if ((await Promise.race([asked, shownInstead])) === true) {
    await w.getByRole("button", { name: "Close" }).click();
    await asked;
    assert.fail(`${what}: the approval was shown for a PIN`);
  }
  const out = await asked;
  assert.equal(out.ok, false, what);
  assert.equal(out.code, "invalid_request", `${what}: ${JSON.stringify(out)}`);
  assert.match(out.message ?? "", message, what);
  assert.equal(await w.locator("input[type=password]").count(), 0, `${what}: no PIN asked`);
}

async function enterPin(pin: string, button?: RegExp): Promise<void> {
  const w = widget();
  await w.locator("#pin").fill(pin);
  if (button) await w.getByRole("button", { name: button }).click();
  else await w.locator("form.pin button[type=submit]").click();
}

before(async () => {
  assert.ok(ANVIL, "KEYSTEAD_ANVIL is not set (scripts/lib/anvil.sh ensure_anvil)");
  assert.ok(OIDC_DIR, "KEYSTEAD_OIDC_PROVIDER_DIR is not set (scripts/lib/oidc_provider.sh)");
  mkdirSync(SHOTS, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), "keystead-widget-e2e-"));
  const [anvilPort, oidcPort, serverPort, dappPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  rpcUrl = `http://127.0.0.1:${anvilPort}`;
  serverUrl = `http://127.0.0.1:${serverPort}`;
  dappOrigin = `http://127.0.0.1:${dappPort}`;
  foreignOrigin = `http://localhost:${dappPort}`;
  const issuer = `http://127.0.0.1:${oidcPort}`;

  start(ANVIL!, ["--host", "127.0.0.1", "--port", String(anvilPort), "--silent"]);
  const clients = [{ client_id: "keystead-e2e", token_endpoint_auth_method: "none", redirect_uris: [`${serverUrl}/v1/auth/oauth/callback`] }];
  start(process.execPath, [join(OIDC_DIR!, "server.mjs"), "--port", String(oidcPort), "--clients", JSON.stringify(clients)]);

  const created = spawnSync(KEYSTEAD, ["app", "create", "--data-dir", dataDir, "--name", "Widget e2e", "--origin", dappOrigin, "--oidc", `real=${issuer}@keystead-e2e`, "--json"], { encoding: "utf8" });
  assert.equal(created.status, 0, created.stderr);
  appKey = JSON.parse(created.stdout).appKey;

  // The tokens exist before keystead starts: one listed in its configuration, one not.
  await waitFor("anvil", async () => ((await rpc("eth_chainId", [])) ? true : undefined));
  token = await deployTestToken(1_000_000_000_000n); // 1,000,000 TST
  unlisted = await deployTestToken(1_000_000_000_000n);
  const config = join(dataDir, "keystead.toml");
  writeFileSync(
    config,
    ["[[networks]]", 'id = "local"', "chain_id = 31337", `rpc_urls = ["${rpcUrl}"]`, `tokens = [{ contract = "${token}", symbol = "TST", decimals = 6 }]`, ""].join("\n"),
  );
  start(KEYSTEAD, ["serve", "--config", config, "--data-dir", dataDir, "--listen", `127.0.0.1:${serverPort}`], {
    KEYSTEAD_WIDGET_DIR: join(WIDGET, "dist"),
    KEYSTEAD_LOG: "warn",
    KEYSTEAD_ACCESS_TOKEN_TTL_SECS: String(ACCESS_TOKEN_TTL_SECS),
  });

  // The dApp (and, on the other host name, a "foreign" page): static files.
  const dappJs = readFileSync(join(WIDGET, ".e2e/dapp.js"));
  dappServer = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname === "/dapp.js") {
      res.writeHead(200, { "content-type": "text/javascript" }).end(dappJs);
    } else if (url.pathname === "/foreign.html") {
      res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>foreign</title><body>foreign</body>");
    } else {
      res.writeHead(200, { "content-type": "text/html" }).end('<!doctype html><html><head><meta charset="utf-8"><title>Test dApp</title></head><body><h1>Test dApp</h1><script src="/dapp.js"></script></body></html>');
    }
  });
  await new Promise<void>((r) => dappServer.listen(dappPort, "127.0.0.1", r));

  await waitFor("oidc-provider", async () => ((await fetch(`${issuer}/.well-known/openid-configuration`)).ok ? true : undefined));
  await waitFor("keystead /readyz", async () => ((await fetch(`${serverUrl}/readyz`)).ok ? true : undefined), 60_000);

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  context = await browser.newContext({ viewport: { width: 900, height: 760 }, locale: "en-US" });
  page = await context.newPage();
  page.on("pageerror", (e) => process.stderr.write(`page error: ${e.message}\n`));
  if (process.env.KEYSTEAD_E2E_DEBUG) page.on("console", (m) => process.stderr.write(`console: ${m.text()}\n`));
  const q = new URLSearchParams({ server: serverUrl, appKey, rpc: rpcUrl });
  await page.goto(`${dappOrigin}/?${q}`);
  await page.waitForSelector("body[data-ready='1']");
});

after(async () => {
  stopping = true;
  await browser?.close().catch(() => {});
  dappServer?.close();
  for (const c of children) c.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 300));
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

// A failed case must not leave its dialog open for the next one.
let failures = 0;
afterEach(async (t) => {
  if (process.env.KEYSTEAD_E2E_DEBUG) {
    failures++;
    await page.screenshot({ path: join(SHOTS, `debug-${failures}.png`) }).catch(() => {});
    const text = await page.frames().find((f) => f.url().includes("/widget/"))?.locator("#app").textContent().catch(() => "?");
    process.stderr.write(`[after ${t.name}] widget: ${text}\n`);
  }
  const close = widget().getByRole("button", { name: /^(Close|닫기)$/ });
  if (await close.count().catch(() => 0)) await close.first().click({ timeout: 2000 }).catch(() => {});
});

describe("widget end to end", { concurrency: false }, () => {
  it("serves the widget with a strict CSP whose frame-ancestors are the app's origins", async () => {
    const r = await fetch(`${serverUrl}/widget/?appKey=${encodeURIComponent(appKey)}&parentOrigin=${encodeURIComponent(dappOrigin)}`);
    assert.equal(r.status, 200);
    const csp = r.headers.get("content-security-policy") ?? "";
    assert.match(csp, new RegExp(`frame-ancestors ${serverUrl} ${dappOrigin}$`));
    assert.doesNotMatch(csp, /unsafe-inline|\*/);
    const bare = (await fetch(`${serverUrl}/widget/`)).headers.get("content-security-policy") ?? "";
    assert.match(bare, new RegExp(`frame-ancestors ${serverUrl}$`));
    assert.equal((await fetch(`${serverUrl}/widget/widget.js`)).status, 200);
  });

  it("logs in through the popup (authorization code + PKCE via the server)", async () => {
    assert.equal((await call("init")).value, "logged_out");
    const login = call("login");
    const w = widget();
    await w.getByRole("button", { name: "Continue with real" }).waitFor();
    await shot("01-sign-in");
    const [popup] = await Promise.all([context.waitForEvent("page"), w.getByRole("button", { name: "Continue with real" }).click()]);
    await popup.waitForLoadState();
    await popup.locator("input[name=login]").fill("alice");
    await popup.locator("input[name=password]").fill("anything");
    await popup.screenshot({ path: join(SHOTS, "02-provider-login.png") });
    await popup.locator("button[type=submit]").click();
    // oidc-provider's consent step, when it asks.
    const closed = popup.waitForEvent("close", { timeout: 30_000 });
    const consent = popup.locator("button[type=submit]");
    await Promise.race([
      closed,
      consent.waitFor({ timeout: 30_000 }).then(async () => {
        await popup.screenshot({ path: join(SHOTS, "03-provider-consent.png") }).catch(() => {});
        await consent.click().catch(() => {});
      }),
    ]).catch(() => {});
    await closed;
    const result = await login;
    assert.deepEqual(result, { ok: true, value: "pin_required" });
  });

  it("sets up a PIN (weak PINs refused, entered twice) and shows the recovery code once", async () => {
    const reg = call("register");
    const w = widget();
    await w.locator("#pin").waitFor();
    await w.locator(".banner").waitFor(); // dev attestation warning
    // The pad, for one weak PIN.
    for (const d of "123456") await w.getByRole("button", { name: `Digit ${d}`, exact: true }).click();
    await shot("04-pin-setup");
    await w.locator("form.pin button[type=submit]").click();
    await w.getByText("The PIN must not be a sequence.").waitFor();
    await shot("05-pin-weak");
    await enterPin(PIN);
    await w.getByText("Enter the PIN again").waitFor();
    await shot("06-pin-again");
    await enterPin(PIN);
    await w.locator("#secret").waitFor();
    const code = (await w.locator("#secret").textContent()) ?? "";
    assert.ok(code.trim().length >= 16, "a recovery code is shown");
    recoveryCode = code.trim();
    assert.equal(await w.locator("#reveal-done").isDisabled(), true);
    await shot("07-recovery-code");
    await w.locator("#saved").check();
    await w.locator("#reveal-done").click();
    const out = await reg;
    assert.equal(out.ok, true, JSON.stringify(out));
    const addr = await call<Hex>("address");
    account = addr.value!;
    await rpc("anvil_setBalance", [account, "0x8ac7230489e80000"]); // 10 ETH
  });

  it("viem sendTransaction through the provider; the receipt is read from anvil", async () => {
    const sent = call<Hex>("viemSend", RECIPIENT, "1000000000000000");
    const w = widget();
    await w.getByText("Send a transaction").waitFor();
    await w.getByText("0.001 ETH").waitFor();
    await shot("08-approve-transaction");
    await enterPin(PIN, /^Send$/);
    const out = await sent;
    assert.equal(out.ok, true, JSON.stringify(out));
    const client = createPublicClient({ chain: defineChain({ id: 31337, name: "local", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: [rpcUrl] } } }), transport: http(rpcUrl) });
    const receipt = await client.waitForTransactionReceipt({ hash: out.value!, timeout: 30_000 });
    assert.equal(receipt.status, "success");
    assert.equal(receipt.from.toLowerCase(), account.toLowerCase());
    assert.equal(receipt.to?.toLowerCase(), RECIPIENT.toLowerCase());
  });

  it("viem signTypedData, shown readably and checked with verifyTypedData", async () => {
    const signed = call<Hex>("viemSignTypedData", TYPED);
    const w = widget();
    await w.getByText("Sign typed data").waitFor();
    await w.getByText("Hello, Bob!").waitFor();
    await w.getByText("Keystead demo").waitFor();
    await shot("09-approve-typed-data");
    await enterPin(PIN, /^Sign$/);
    const out = await signed;
    assert.equal(out.ok, true, JSON.stringify(out));
    assert.equal(await verifyTypedData({ address: account, ...(TYPED as never), signature: out.value! }), true);
  });

  it("the same through an ethers v6 BrowserProvider (signTypedData and sendTransaction)", async () => {
    const signed = call<Hex>("ethersSignTypedData", TYPED);
    await widget().getByText("Sign typed data").waitFor();
    await enterPin(PIN, /^Sign$/);
    const out = await signed;
    assert.equal(out.ok, true, JSON.stringify(out));
    assert.equal(await verifyTypedData({ address: account, ...(TYPED as never), signature: out.value! }), true);

    const sent = call<Hex>("ethersSend", RECIPIENT, "2000000000000000");
    await widget().getByText("Send a transaction").waitFor();
    await shot("08b-approve-transaction-ethers");
    const shown = (await widget().locator("dl.details").textContent()) ?? "";
    assert.match(shown, /0\.002 ETH/, shown);
    await enterPin(PIN, /^Send$/);
    const tx = await sent;
    assert.equal(tx.ok, true, JSON.stringify(tx));
    const receipt = await waitFor("the ethers transaction's receipt", async () => ((await rpc("eth_getTransactionReceipt", [tx.value])) as { status: string } | null) ?? undefined);
    assert.equal(receipt.status, "0x1");
  });

  it("an ERC-20 transfer of a listed token is shown as 1.25 TST; approved, it moves 1_250_000 base units (balanceOf)", async () => {
    assert.deepEqual(((await (await fetch(`${serverUrl}/v1/app`, { headers: { "X-App-Key": appKey } })).json()) as { networks: Array<{ tokens: unknown }> }).networks[0]!.tokens, [{ contract: token, symbol: "TST", decimals: 6 }]);
    await fundToken(token, account, 100_000_000n); // 100 TST
    await fundToken(unlisted, account, 100_000_000n);
    const [senderBefore, recipientBefore] = [await tokenBalance(token, account), await tokenBalance(token, TOKEN_TO)];
    const sent = call<Hex>("viemErc20", token, "transfer", TOKEN_TO, "1250000");
    const w = widget();
    await w.locator("#tx-summary").getByText("Send 1.25 TST", { exact: true }).waitFor();
    const shown = (await w.locator("section.card").textContent()) ?? "";
    assert.ok(shown.includes(TOKEN_TO), shown); // the recipient, EIP-55
    assert.ok(shown.toLowerCase().includes(token.toLowerCase()), shown); // the token contract
    assert.equal(await w.locator("#token-amount").textContent(), "1.25 TST");
    assert.equal(await w.locator("#token-unknown").count(), 0, "a listed token is not flagged");
    await shot("34-approve-token-transfer");
    await w.getByRole("button", { name: "Switch language" }).click();
    await w.locator("#tx-summary").getByText("1.25 TST 보내기", { exact: true }).waitFor();
    await shot("35-approve-token-transfer-ko");
    await w.getByRole("button", { name: "언어 바꾸기" }).click();
    await w.locator("#tx-summary").getByText("Send 1.25 TST", { exact: true }).waitFor();
    await enterPin(PIN, /^Send$/);
    const out = await sent;
    assert.equal(out.ok, true, JSON.stringify(out));
    const receipt = await waitFor("the token transfer's receipt", async () => ((await rpc("eth_getTransactionReceipt", [out.value])) as { status: string; from: string; to: string } | null) ?? undefined);
    assert.equal(receipt.status, "0x1");
    assert.equal(receipt.from.toLowerCase(), account.toLowerCase());
    assert.equal(receipt.to.toLowerCase(), token.toLowerCase());
    assert.equal(await tokenBalance(token, TOKEN_TO), recipientBefore + 1_250_000n);
    assert.equal(await tokenBalance(token, account), senderBefore - 1_250_000n);
  });

  it("an ERC-20 transfer of an unlisted contract (sign only) shows raw base units and a warning; cancelled: 4001", async () => {
    const signed = call("viemSignErc20", unlisted, "transfer", TOKEN_TO, "1250000");
    const w = widget();
    await w.locator("#token-unknown").waitFor();
    await w.getByText("Sign a transaction").waitFor();
    assert.match((await w.locator("#token-unknown").textContent()) ?? "", /not one the wallet knows.*smallest units, not in tokens/);
    assert.equal(await w.locator("#token-amount").textContent(), "1250000");
    const shown = (await w.locator("dl.details").textContent()) ?? "";
    assert.equal(await w.locator("#token-units").textContent(), "base units, symbol unknown");
    assert.ok(shown.includes(TOKEN_TO) && shown.toLowerCase().includes(unlisted.toLowerCase()), shown);
    // The contract calls itself TST with 6 decimals: the widget believes only the operator's list.
    assert.doesNotMatch(shown, /TST|1\.25/, shown);
    // The warning is on screen when the dialog opens (not scrolled away by the PIN field's focus).
    const box = await w.locator("#token-unknown").boundingBox();
    assert.ok(box && box.y >= 0 && box.y + box.height <= 760, JSON.stringify(box));
    await shot("36-approve-token-unlisted");
    await w.getByRole("button", { name: "Close" }).click();
    const out = await signed;
    assert.equal(out.ok, false);
    assert.equal(out.code, 4001, JSON.stringify(out));
  });

  it("an ERC-20 approve of 2^256-1 is shown as an unlimited spending allowance; cancelled: 4001", async () => {
    const asked = call("viemErc20", token, "approve", SPENDER, MAX_UINT256.toString());
    const w = widget();
    await w.locator("#token-unlimited").waitFor();
    await w.locator("#tx-summary").getByText("Allow spending of your TST", { exact: true }).waitFor();
    assert.equal(await w.locator("#token-amount").textContent(), "Unlimited");
    const shown = (await w.locator("dl.details").textContent()) ?? "";
    assert.ok(shown.includes(`Spender${SPENDER}`), shown);
    assert.equal(await w.locator("#token-unknown").count(), 0);
    await shot("37-approve-token-unlimited");
    await w.getByRole("button", { name: "Close" }).click();
    const out = await asked;
    assert.equal(out.ok, false);
    assert.equal(out.code, 4001, JSON.stringify(out));
    const allowance = BigInt((await rpc("eth_call", [{ to: token, data: encodeFunctionData({ abi: erc20Abi, functionName: "allowance", args: [account, SPENDER] }) }, "latest"])) as string);
    assert.equal(allowance, 0n);
  });

  it("a wrong PIN shows the remaining tries; the right one then signs", async () => {
    const signed = call<Hex>("viemSignMessage", "hello keystead");
    const w = widget();
    await w.getByText("hello keystead").waitFor();
    await shot("10-approve-message");
    await enterPin(WRONG_PIN, /^Sign$/);
    await w.getByText(/Wrong PIN\. \d+ tries left\./).waitFor();
    await shot("11-wrong-pin");
    await enterPin(PIN, /^Sign$/);
    const out = await signed;
    assert.equal(out.ok, true, JSON.stringify(out));
    assert.equal(await verifyMessage({ address: account, message: "hello keystead", signature: out.value! }), true);
  });

  it("cancelling gives EIP-1193 error 4001", async () => {
    const signed = call("viemSignMessage", "cancel me");
    const w = widget();
    await w.getByText("cancel me").waitFor();
    await w.getByRole("button", { name: "Close" }).click();
    const out = await signed;
    assert.equal(out.ok, false);
    assert.equal(out.code, 4001, JSON.stringify(out));
  });

  it("refuses approvals whose labels are not what is signed: a transaction's network, fee or sender, another address, typed data for another chain", async () => {
    // The control: the same request unchanged is shown, labelled from the intent.
    const shown = call("tamperedApproval", "none", RECIPIENT, "1000");
    const w = widget();
    await w.getByText("Sign a transaction").waitFor();
    const details = (await w.locator("dl.details").textContent()) ?? "";
    assert.match(details, /31337/, details);
    await w.getByRole("button", { name: "Close" }).click();
    const control = await shown;
    assert.equal(control.ok, false);
    assert.equal(control.code, "user_rejected", JSON.stringify(control));
    const refusals: Record<string, RegExp> = {
      network: /network is not the transaction's chain/,
      fee: /fee is not the transaction's fee cap/,
      from: /account is not the transaction's sender/,
    };
    for (const [change, message] of Object.entries(refusals)) {
      await refusedWithoutPin(call("tamperedApproval", change, RECIPIENT, "1000"), change, message);
    }
    // A message approval showing another address for the user's account.
    await refusedWithoutPin(
      call("messageShowing", RECIPIENT, "not mine"),
      "another address",
      /account is not one of this user's/,
    );
    // Typed data for another chain than the account's network (mainnet's 1 on `local`).
    await refusedWithoutPin(
      call("typedDataForChain", TYPED, 1),
      "typed data for chain 1",
      /typed data is for chain 1, not the account's network \(31337\)/,
    );
  });

  it("ignores a postMessage from a foreign origin", async () => {
    // A frame of another origin (localhost vs 127.0.0.1) inside the dApp posts a well-formed
    // `login` request to every frame of the page, the widget's included.
    await page.evaluate(async (foreign) => {
      const f = document.createElement("iframe");
      f.src = `${foreign}/foreign.html`;
      document.body.appendChild(f);
      await new Promise((r) => f.addEventListener("load", r, { once: true }));
    }, foreignOrigin);
    const foreign = page.frames().find((f) => f.url().startsWith(foreignOrigin));
    assert.ok(foreign, "the foreign frame loaded");
    const posted = await foreign.evaluate(() => {
      const msg = { protocol: "keystead-widget", version: 1, kind: "request", id: "0123456789abcdef0123456789abcdef", type: "login", payload: { appId: "x", appName: "evil", loginProviders: [{ name: "real", issuer: "x" }] } };
      for (let i = 0; i < window.parent.frames.length; i++) window.parent.frames[i]!.postMessage(msg, "*");
      return window.parent.frames.length;
    });
    assert.ok(posted >= 2);
    await page.waitForTimeout(800);
    const widgetFrame = page.frames().find((f) => f.url().startsWith(`${serverUrl}/widget/`))!;
    assert.equal(await widgetFrame.locator("#app").evaluate((el) => el.childElementCount), 0, "the widget showed nothing");
    await shot("19-after-foreign-message");
  });

  it("export shows the recovery phrase once", async () => {
    const exp = call("exportWallet");
    const w = widget();
    await w.getByText("Show your recovery phrase").waitFor();
    await enterPin(PIN);
    await w.locator("#secret li").first().waitFor();
    assert.ok((await w.locator("#secret li").count()) >= 12);
    await shot("12-mnemonic");
    await w.locator("#reveal-done").click();
    const out = await exp;
    assert.equal(out.ok, true, JSON.stringify(out));
  });

  it("home, receive (QR), settings, in English and Korean", async () => {
    await rpc("anvil_setBalance", [account, `0x${(9_123456_789012_345678n).toString(16)}`]);
    const opened = call("openWidget", "home");
    const w = widget();
    await w.getByText("Your wallet").waitFor();
    await w.getByText(account).waitFor();
    // The balance is rounded down to 6 decimals for reading; its title is the exact amount.
    const balance = w.locator(".account span.balance").first();
    await balance.waitFor();
    assert.equal(await balance.textContent(), "9.123456 ETH");
    assert.equal(await balance.getAttribute("title"), "9.123456789012345678 ETH");
    // The listed token's balance (100 TST funded, 1.25 sent), from the balance endpoint.
    await w.locator("ul.tokens li", { hasText: "98.75 TST" }).waitFor();
    assert.equal(await w.locator("ul.tokens li").getAttribute("data-contract"), token);
    assert.equal(await w.locator("ul.tokens li").count(), 1, "only listed tokens");
    await shot("13-home");
    await w.getByRole("button", { name: "Receive" }).click();
    await w.locator("canvas.qr").waitFor();
    await shot("14-receive");
    await w.getByRole("button", { name: "Back" }).click();
    await w.getByRole("button", { name: "Settings" }).click();
    await shot("15-settings");
    await w.getByRole("button", { name: "Switch language" }).click();
    await w.getByText("설정").first().waitFor();
    await shot("16-settings-ko");
    await w.getByRole("button", { name: "뒤로" }).click();
    await w.getByText("내 지갑").waitFor();
    await w.getByText("98.75 TST").waitFor();
    await shot("17-home-ko");
    await w.getByRole("button", { name: "언어 바꾸기" }).click();
    await w.getByRole("button", { name: "Close" }).click();
    assert.equal((await opened).ok, true);
  });

  it("sends from the widget's own send screen (fee cap shown, wrong PIN, receipt from anvil)", async () => {
    const opened = call("openWidget", "home");
    const w = widget();
    await w.getByText("Your wallet").waitFor();
    await w.getByRole("button", { name: "Send", exact: true }).click();
    // Refused at once: a bad address and an amount of zero.
    await w.locator("#send-to").fill("0x1234");
    await w.locator("#send-amount").fill("0.003");
    await w.getByRole("button", { name: "Continue" }).click();
    await w.locator("#send-error").getByText("Enter a valid address").waitFor();
    await w.locator("#send-to").fill(SEND_TO);
    await w.locator("#send-amount").fill("0");
    await w.getByRole("button", { name: "Continue" }).click();
    await w.locator("#send-error").getByText("greater than zero").waitFor();
    // More than the balance: insufficient_funds from the server.
    // (Refused when preparing, or, when the node only notices it at broadcast, when sending.)
    await w.locator("#send-amount").fill("1000");
    await w.getByRole("button", { name: "Continue" }).click();
    await w.locator("#send-error, #send-fee").first().waitFor();
    if (await w.locator("#send-fee").count()) await enterPin(pin, /^Send$/);
    await w.locator("#send-error").waitFor();
    assert.match((await w.locator("#send-error").textContent()) ?? "", /Not enough funds/);
    await shot("20-send-insufficient-funds");
    await w.locator("#send-amount").fill("0.003");
    await shot("21-send-form");
    await w.getByRole("button", { name: "Continue" }).click();
    await w.getByText("Check and send").waitFor();
    assert.match((await w.locator("#send-fee").textContent()) ?? "", /^\d+(\.\d+)? ETH$/);
    assert.match((await w.locator("#send-fee-cap").textContent()) ?? "", /gas limit \d+ × at most [\d.]+ gwei/);
    assert.match((await w.locator("dl.details").textContent()) ?? "", /0\.003 ETH/);
    await shot("22-send-review");
    await enterPin(WRONG_PIN, /^Send$/);
    await w.getByText(/Wrong PIN\. \d+ tries left\./).waitFor();
    await enterPin(pin, /^Send$/);
    await w.locator("#tx-hash").waitFor();
    const hash = ((await w.locator("#tx-hash").textContent()) ?? "") as Hex;
    assert.match(hash, /^0x[0-9a-f]{64}$/);
    await w.locator('#tx-status[data-status="confirmed"]').waitFor({ timeout: 60_000 });
    await shot("23-send-confirmed");
    const receipt = await waitFor("the widget's transaction receipt", async () => ((await rpc("eth_getTransactionReceipt", [hash])) as { status: string; from: string; to: string } | null) ?? undefined);
    assert.equal(receipt.status, "0x1");
    assert.equal(receipt.from.toLowerCase(), account.toLowerCase());
    assert.equal(receipt.to.toLowerCase(), SEND_TO.toLowerCase());
    const tx = (await rpc("eth_getTransactionByHash", [hash])) as { value: string };
    assert.equal(BigInt(tx.value), 3_000_000_000_000_000n);
    await w.locator("#tx-done").click();
    await w.getByText("Your wallet").waitFor();
    await w.getByRole("button", { name: "Close" }).click();
    assert.equal((await opened).ok, true);
  });

  it("sends a listed token from the widget's own send screen; balanceOf moves", async () => {
    const before = await tokenBalance(token, SEND_TO);
    const opened = call("openWidget", "home");
    const w = widget();
    await w.getByText("Your wallet").waitFor();
    await w.locator("ul.tokens li", { hasText: "TST" }).waitFor();
    await w.getByRole("button", { name: "Send", exact: true }).click();
    await w.locator("#send-asset").selectOption({ label: "TST" });
    await w.getByText("Amount (TST)").waitFor();
    assert.match((await w.locator("dl.details").textContent()) ?? "", /98\.75 TST/);
    await w.locator("#send-to").fill(SEND_TO);
    await w.locator("#send-amount").fill("0.5");
    await w.getByRole("button", { name: "Continue" }).click();
    await w.getByText("Check and send").waitFor();
    assert.equal(await w.locator("#tx-summary").textContent(), "Send 0.5 TST");
    const shown = (await w.locator("dl.details").textContent()) ?? "";
    assert.ok(shown.includes(SEND_TO) && shown.toLowerCase().includes(token.toLowerCase()), shown);
    assert.match((await w.locator("#send-fee").textContent()) ?? "", /^\d+(\.\d+)? ETH$/);
    await shot("24-send-token-review");
    await enterPin(pin, /^Send$/);
    await w.locator('#tx-status[data-status="confirmed"]').waitFor({ timeout: 60_000 });
    assert.equal(await tokenBalance(token, SEND_TO), before + 500_000n);
    await w.locator("#tx-done").click();
    await w.getByText("Your wallet").waitFor();
    await w.getByRole("button", { name: "Close" }).click();
    assert.equal((await opened).ok, true);
  });

  it("changes the PIN from the widget's settings; the new PIN then signs", async () => {
    const opened = call("openWidget", "settings");
    const w = widget();
    await w.getByRole("button", { name: "Change PIN" }).click();
    await w.getByText("Enter your current PIN").waitFor();
    await shot("24-change-pin-current");
    await enterPin(pin);
    await w.getByText("Choose a PIN").waitFor();
    await enterPin("111111");
    await w.getByText("The PIN must not repeat one digit.").waitFor();
    await enterPin(CHANGED_PIN);
    await w.getByText("Enter the PIN again").waitFor();
    await enterPin(CHANGED_PIN);
    await w.locator("#settings-note").getByText("Your PIN was changed.").waitFor();
    await shot("25-pin-changed");
    await w.getByRole("button", { name: "Close" }).click();
    assert.equal((await opened).ok, true);
    pin = CHANGED_PIN;

    const signed = call<Hex>("viemSignMessage", "after the change");
    await w.getByText("after the change").waitFor();
    await enterPin(PIN, /^Sign$/); // the old PIN no longer works
    await w.getByText(/Wrong PIN\. \d+ tries left\./).waitFor();
    await enterPin(pin, /^Sign$/);
    const out = await signed;
    assert.equal(out.ok, true, JSON.stringify(out));
    assert.equal(await verifyMessage({ address: account, message: "after the change", signature: out.value! }), true);
  });

  it("recovers with the recovery code from the widget's settings; the new PIN then signs", async () => {
    assert.ok(recoveryCode, "the set-up case kept the recovery code");
    const opened = call("openWidget", "settings");
    const w = widget();
    await w.getByRole("button", { name: "Recover with recovery code" }).click();
    await w.locator("#recovery").fill("not-the-code-0000");
    await w.getByRole("button", { name: "Continue" }).click();
    await enterPin(RECOVERED_PIN);
    await enterPin(RECOVERED_PIN);
    await w.getByText("That recovery code is not right.").waitFor();
    await shot("26-recover-wrong-code");
    await w.locator("#recovery").fill(recoveryCode);
    await w.getByRole("button", { name: "Continue" }).click();
    await w.getByText("Choose a PIN").waitFor();
    await enterPin(RECOVERED_PIN);
    await w.getByText("Enter the PIN again").waitFor();
    await enterPin(RECOVERED_PIN);
    await w.locator("#settings-note").getByText("Your PIN was reset with the recovery code.").waitFor();
    await shot("27-recovered");
    await w.getByRole("button", { name: "Close" }).click();
    assert.equal((await opened).ok, true);
    pin = RECOVERED_PIN;

    const signed = call<Hex>("viemSignMessage", "after recovery");
    await w.getByText("after recovery").waitFor();
    await enterPin(pin, /^Sign$/);
    const out = await signed;
    assert.equal(out.ok, true, JSON.stringify(out));
    assert.equal(await verifyMessage({ address: account, message: "after recovery", signature: out.value! }), true);
  });

  it("exports the recovery phrase from the widget's settings, shown once", async () => {
    const opened = call("openWidget", "settings");
    const w = widget();
    await w.getByRole("button", { name: "Show recovery phrase" }).click();
    await w.getByText("Show your recovery phrase").waitFor();
    await enterPin(pin);
    await w.locator("#secret li").first().waitFor();
    assert.ok((await w.locator("#secret li").count()) >= 12);
    await shot("28-settings-export");
    await w.locator("#reveal-done").click();
    await w.getByRole("button", { name: "Change PIN" }).waitFor();
    assert.equal(await w.locator("#secret").count(), 0, "the phrase is gone");
    await w.getByRole("button", { name: "Close" }).click();
    assert.equal((await opened).ok, true);
  });

  it("the widget's send outlives its access token: session-expired, one SDK refresh, one retry, one broadcast", async () => {
    const opened = call("openWidget", "home");
    const w = widget();
    await w.getByText("Your wallet").waitFor();
    await w.getByRole("button", { name: "Send", exact: true }).click();
    await w.locator("#send-to").fill(SEND_TO);
    await w.locator("#send-amount").fill("0.004");
    await w.getByRole("button", { name: "Continue" }).click();
    await w.getByText("Check and send").waitFor();
    const nonceBefore = BigInt((await rpc("eth_getTransactionCount", [account, "latest"])) as string);
    // Every API answer from here on, in order (the dApp's and the widget's).
    const seen: Array<{ from: "widget" | "dapp"; method: string; path: string; status: number; key?: string; body?: Promise<unknown> }> = [];
    const record = (r: Response) => {
      const req = r.request();
      const url = new URL(req.url());
      if (url.origin !== serverUrl || !url.pathname.startsWith("/v1/") || req.method() === "OPTIONS") return;
      const from = req.frame().url().startsWith(`${serverUrl}/widget/`) ? "widget" : "dapp";
      const key = req.headers()["idempotency-key"];
      seen.push({ from, method: req.method(), path: url.pathname, status: r.status(), ...(key ? { key } : {}), ...(url.pathname === "/v1/auth/refresh" ? { body: r.json().catch(() => null) } : {}) });
    };
    page.on("response", record);
    try {
      // Idle past the lifetime: the widget's own access token (and the SDK's) expire.
      await page.waitForTimeout((ACCESS_TOKEN_TTL_SECS + 2) * 1000);
      await shot("32-send-review-token-expired");
      await enterPin(pin, /^Send$/);
      await w.locator("#tx-hash").waitFor({ timeout: 30_000 });
      await w.locator('#tx-status[data-status="confirmed"]').waitFor({ timeout: 60_000 });
      await shot("33-send-after-session-expired");
    } finally {
      page.off("response", record);
    }
    const hash = ((await w.locator("#tx-hash").textContent()) ?? "") as Hex;
    const sends = seen.filter((x) => x.path === "/v1/tx/send");
    const refreshes = seen.filter((x) => x.path === "/v1/auth/refresh");
    const trace = JSON.stringify(seen.map(({ body: _b, ...x }) => x));
    // Refused (expired), then retried once with the same Idempotency-Key after the SDK's refresh.
    assert.equal(sends.length, 2, trace);
    assert.deepEqual(sends.map((x) => [x.from, x.status]), [["widget", 401], ["widget", 202]], trace);
    assert.ok(sends[0]!.key && sends[0]!.key === sends[1]!.key, trace);
    // Exactly one refresh, by the SDK (the host page), between the two; its token lives TTL.
    assert.equal(refreshes.length, 1, trace);
    assert.deepEqual([refreshes[0]!.from, refreshes[0]!.status], ["dapp", 200], trace);
    assert.ok(seen.indexOf(sends[0]!) < seen.indexOf(refreshes[0]!) && seen.indexOf(refreshes[0]!) < seen.indexOf(sends[1]!), trace);
    assert.equal(((await refreshes[0]!.body) as { expiresIn?: number } | null)?.expiresIn, ACCESS_TOKEN_TTL_SECS);
    assert.ok(!seen.some((x) => x.from === "widget" && x.path === "/v1/auth/refresh"), "the widget never refreshes");
    // On chain: this transaction, and it alone.
    const receipt = await waitFor("the transaction's receipt", async () => ((await rpc("eth_getTransactionReceipt", [hash])) as { status: string; from: string; to: string } | null) ?? undefined);
    assert.equal(receipt.status, "0x1");
    assert.equal(receipt.from.toLowerCase(), account.toLowerCase());
    assert.equal(receipt.to.toLowerCase(), SEND_TO.toLowerCase());
    assert.equal(BigInt(((await rpc("eth_getTransactionByHash", [hash])) as { value: string }).value), 4_000_000_000_000_000n);
    assert.equal(BigInt((await rpc("eth_getTransactionCount", [account, "latest"])) as string), nonceBefore + 1n, "one broadcast");
    await w.locator("#tx-done").click();
    await w.getByText("Your wallet").waitFor();
    await w.getByRole("button", { name: "Close" }).click();
    assert.equal((await opened).ok, true);
    assert.equal((await call("status")).value, "ready");
  });

  it("five wrong PINs lock the wallet", async () => {
    const signed = call("viemSignMessage", "lock me");
    const w = widget();
    await w.getByText("lock me").waitFor();
    for (let i = 0; i < 5; i++) {
      await w.locator("#pin").waitFor();
      await enterPin(WRONG_PIN, /^Sign$/);
      if (i < 4) await w.getByText(/Wrong PIN\.|wallet locks/).waitFor();
      if (i === 3) await shot("18-last-try");
    }
    const out = await signed;
    assert.equal(out.ok, false);
    assert.match(out.message ?? "", /lock|wrong/i, JSON.stringify(out));
    // Now locked: the next attempt with the right PIN is refused as locked.
    const again = call("viemSignMessage", "after lock");
    await w.getByText("after lock").waitFor();
    await enterPin(pin, /^Sign$/);
    const refused = await again;
    assert.equal(refused.ok, false);
    assert.match(refused.message ?? "", /lock/i, JSON.stringify(refused));
  });

  it("the widget's send screen shows wallet_locked with the time left", async () => {
    const opened = call("openWidget", "home");
    const w = widget();
    await w.getByRole("button", { name: "Send", exact: true }).click();
    await w.locator("#send-to").fill(SEND_TO);
    await w.locator("#send-amount").fill("0.001");
    await w.getByRole("button", { name: "Continue" }).click();
    await w.locator("#send-fee").waitFor();
    await enterPin(pin, /^Send$/);
    await w.locator("#send-error").waitFor();
    assert.match((await w.locator("#send-error").textContent()) ?? "", /The wallet is locked; try again in \d+ (s|min)\./);
    await shot("31-send-locked");
    await w.getByRole("button", { name: "Close" }).click();
    assert.equal((await opened).ok, true);
  });

  it("logs out from the widget's settings; the SDK learns it (logged-out event)", async () => {
    assert.equal((await call("status")).value, "ready");
    const opened = call("openWidget", "settings");
    const w = widget();
    await w.getByRole("button", { name: "Log out" }).waitFor();
    await shot("29-settings-with-session");
    await w.getByRole("button", { name: "Log out" }).click();
    assert.equal((await opened).ok, true);
    await waitFor("the SDK's logged_out status", async () => ((await call("status")).value === "logged_out" ? true : undefined), 10_000);
    await shot("30-logged-out");
  });
});
