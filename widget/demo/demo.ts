// The demo dApp `scripts/run` serves on http://localhost:5173 (the origin `keystead serve
// --dev` registers for its demo app): the SDK with viem, as a dApp uses it. Connect, show
// the address and balance, send ETH, sign a message and typed data, and check the
// signatures here with viem's verifyMessage / verifyTypedData. Text only in the DOM.
import { Keystead, KeysteadError, UserRejectedError } from "../../sdk/js/src/index.js";
import {
  createPublicClient,
  createWalletClient,
  custom,
  defineChain,
  formatEther,
  http,
  isAddress,
  parseEther,
  verifyMessage,
  verifyTypedData,
  type Address,
  type Chain,
  type Hex,
} from "viem";

interface Config {
  serverUrl: string;
  appKey: string;
  rpcUrl: string;
  network: string;
  devIssuer: boolean;
}

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const say = (id: string, text: string, cls = "") => {
  const el = $(id);
  el.textContent = text;
  el.className = `result ${cls}`.trim();
};

let config: Config;
let keystead: Keystead;
let chain: Chain;
let address: Address | null = null;

function typedData(chainId: number) {
  return {
    domain: { name: "Keystead demo", version: "1", chainId, verifyingContract: "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC" as Address },
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
    primaryType: "Mail" as const,
    message: {
      from: { name: "Alice", wallet: "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826" as Address },
      to: { name: "Bob", wallet: "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB" as Address },
      contents: "Hello, Bob!",
    },
  };
}

function wallet() {
  return createWalletClient({ chain, transport: custom(keystead.getProvider(config.network)) });
}

function publicClient() {
  return createPublicClient({ chain, transport: http(config.rpcUrl) });
}

function describe(e: unknown): string {
  if (e instanceof UserRejectedError || (e as { code?: unknown })?.code === 4001) return "You declined in the wallet.";
  if (e instanceof KeysteadError) return `${e.code}: ${e.message}`;
  const err = e as { shortMessage?: string; message?: string };
  return String(err.shortMessage ?? err.message ?? e).slice(0, 400);
}

/** Runs an action with the page's buttons disabled, showing its error. */
async function run(action: () => Promise<void>): Promise<void> {
  $("error").textContent = "";
  const buttons = [...document.querySelectorAll("button")];
  for (const b of buttons) b.disabled = true;
  try {
    await action();
  } catch (e) {
    $("error").textContent = describe(e);
  } finally {
    await refresh();
  }
}

async function refresh(): Promise<void> {
  const status = keystead.getStatus();
  $("status").textContent = status;
  const ready = status === "ready";
  address = null;
  if (ready) {
    try {
      address = ((await keystead.getAccounts()).find((a) => a.network === config.network)?.address as Address | undefined) ?? null;
    } catch (e) {
      $("error").textContent = describe(e);
    }
  }
  $("address").textContent = address ?? "—";
  $("balance").textContent = "—";
  if (address) {
    try {
      $("balance").textContent = `${formatEther(await publicClient().getBalance({ address }))} ETH`;
    } catch (e) {
      $("balance").textContent = `unavailable (${describe(e)})`;
    }
  }
  const loggedOut = status === "logged_out";
  $("login").hidden = !loggedOut;
  $("dev-login").hidden = !config.devIssuer;
  // The wallet's pop-up sign-in (authorization code + PKCE through the server) works with
  // any provider, the development issuer included; --dev-issuer adds a one-click login.
  $("connect").hidden = false;
  $("sub").hidden = !config.devIssuer;
  (document.querySelector('label[for="sub"]') as HTMLElement).hidden = !config.devIssuer;
  for (const id of ["dev-login", "connect", "sub"]) ($(id) as HTMLButtonElement).disabled = !loggedOut;
  for (const id of ["fund", "refresh", "open", "logout", "send", "sign-message", "sign-typed"]) ($(id) as HTMLButtonElement).disabled = !ready;
}

/** A Keystead instance; init() restores the session kept in sessionStorage. */
async function boot(): Promise<void> {
  keystead = new Keystead({ appKey: config.appKey, serverUrl: config.serverUrl, networks: { [config.network]: { rpcUrl: config.rpcUrl } } });
  keystead.on("status", () => void refresh());
  await keystead.init();
  const network = keystead.getApp().networks.find((n) => n.id === config.network);
  if (!network) throw new Error(`the app has no network ${config.network}`);
  chain = defineChain({
    id: network.chainId,
    name: network.name,
    nativeCurrency: { name: network.symbol, symbol: network.symbol, decimals: network.decimals },
    rpcUrls: { default: { http: [config.rpcUrl] } },
  });
  $("typed-data").textContent = JSON.stringify(typedData(chain.id), null, 2);
}

/** A new user chooses a PIN in the wallet (and sees the recovery code once). */
async function registerIfNeeded(): Promise<void> {
  const status = keystead.getStatus();
  if (status === "pin_required" || status === "register_required") await keystead.register();
}

async function main(): Promise<void> {
  config = (await (await fetch("config.json")).json()) as Config;
  await boot();

  $("connect").addEventListener("click", () =>
    run(async () => {
      await keystead.loginWithUI();
      await registerIfNeeded();
    }),
  );
  // The development issuer of `keystead serve --dev` mints ID tokens for anyone (it has no
  // login page for the pop-up): exchange one for a session, then start over with it.
  $("dev-login").addEventListener("click", () =>
    run(async () => {
      const sub = $<HTMLInputElement>("sub").value.trim() || "alice";
      const r = await fetch(`${config.serverUrl}/dev/oidc/token`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ sub, email: `${sub}@example.test` }),
      });
      if (!r.ok) throw new Error(`the development issuer answered HTTP ${r.status}`);
      const { idToken } = (await r.json()) as { idToken: string };
      await keystead.api.loginWithIdToken("dev", idToken);
      await boot();
      await registerIfNeeded();
    }),
  );
  $("fund").addEventListener("click", () =>
    run(async () => {
      if (!address) return;
      const balance = await publicClient().getBalance({ address });
      const r = await fetch(config.rpcUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "anvil_setBalance", params: [address, `0x${(balance + parseEther("1")).toString(16)}`] }),
      });
      const body = (await r.json()) as { error?: { message?: string } };
      if (body.error) throw new Error(`anvil_setBalance: ${body.error.message ?? "failed"}`);
    }),
  );
  $("refresh").addEventListener("click", () => run(async () => {}));
  $("open").addEventListener("click", () => run(() => keystead.openWidget("home")));
  $("logout").addEventListener("click", () => run(() => keystead.logout()));

  $("send").addEventListener("click", () =>
    run(async () => {
      say("send-result", "");
      if (!address) return;
      const to = $<HTMLInputElement>("to").value.trim();
      if (!isAddress(to, { strict: false })) throw new Error("the recipient is not an address");
      const value = parseEther($<HTMLInputElement>("amount").value.trim() as `${number}`);
      const hash: Hex = await wallet().sendTransaction({ account: address, to, value, chain });
      say("send-result", `sent ${hash}, waiting for the receipt…`);
      const receipt = await publicClient().waitForTransactionReceipt({ hash, timeout: 60_000 });
      say("send-result", `${hash}: ${receipt.status} in block ${receipt.blockNumber}`, receipt.status === "success" ? "ok" : "error");
    }),
  );

  $("sign-message").addEventListener("click", () =>
    run(async () => {
      say("message-result", "");
      if (!address) return;
      const message = $<HTMLInputElement>("message").value;
      const signature = await wallet().signMessage({ account: address, message });
      const valid = await verifyMessage({ address, message, signature });
      say("message-result", `${signature}\nverifyMessage: ${valid ? "valid" : "INVALID"}`, valid ? "ok" : "error");
    }),
  );

  $("sign-typed").addEventListener("click", () =>
    run(async () => {
      say("typed-result", "");
      if (!address) return;
      const td = typedData(chain.id);
      const signature = await wallet().signTypedData({ account: address, ...td });
      const valid = await verifyTypedData({ address, ...td, signature });
      say("typed-result", `${signature}\nverifyTypedData: ${valid ? "valid" : "INVALID"}`, valid ? "ok" : "error");
    }),
  );

  await refresh();
  document.body.dataset.ready = "1";
}

main().catch((e) => {
  $("status").textContent = "error";
  $("error").textContent = describe(e);
});
