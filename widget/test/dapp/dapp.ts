// The e2e test's dApp: a page on another origin that uses the SDK (bundled from
// ../sdk/js/src) through its EIP-1193 provider, with viem and with ethers v6, as dApps do.
import { Keystead, type ApprovalRequest, type Approver } from "../../../sdk/js/src/index.js";
import { createWalletClient, custom, defineChain, encodeFunctionData, erc20Abi, type Address, type Hex } from "viem";
import { BrowserProvider } from "ethers";

const q = new URLSearchParams(location.search);
const server = q.get("server")!;
const appKey = q.get("appKey")!;
const rpc = q.get("rpc")!;
const chain = defineChain({
  id: 31337,
  name: "local",
  nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
  rpcUrls: { default: { http: [rpc] } },
});

const keystead = new Keystead({ appKey, serverUrl: server, networks: { local: { rpcUrl: rpc } }, storage: "memory" });

function wallet() {
  return createWalletClient({ chain, transport: custom(keystead.getProvider("local")) });
}

async function address(): Promise<Address> {
  const [a] = (await keystead.getProvider("local").request({ method: "eth_accounts" })) as Address[];
  return a!;
}

/** Runs `fn`, answering `{ok, value}` or `{ok: false, code, message}` (EIP-1193 errors keep their numeric code). */
async function wrap<T>(fn: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; code: unknown; message: string }> {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    const err = e as { code?: unknown; message?: string; cause?: unknown };
    // viem nests the provider's error (writeContract: two causes deep); the first code found.
    let code = err.code;
    for (let c = err.cause as { code?: unknown; cause?: unknown } | undefined, i = 0; code === undefined && c && i < 8; c = c.cause as typeof c, i++) code = c.code;
    return { ok: false, code, message: String(err.message ?? e) };
  }
}

/** The provider as ethers gets it, logging each call's method and outcome to the console (test debugging). */
function traced() {
  const p = keystead.getProvider("local");
  return {
    on: p.on.bind(p),
    removeListener: p.removeListener.bind(p),
    request: async (a: { method: string; params?: unknown }) => {
      console.log(`rpc ${a.method}`);
      try {
        const r = await p.request(a as never);
        console.log(`rpc ${a.method} ok`);
        return r;
      } catch (e) {
        console.log(`rpc ${a.method} failed: ${(e as Error).message}`);
        throw e;
      }
    },
  };
}

/** The user's account on `local` as an approval names it. */
async function localAccountRef() {
  const [account] = (await keystead.getAccounts()).filter((a) => a.network === "local");
  return { appId: keystead.getApp().appId, accountId: account!.id, address: account!.address, network: account!.network };
}

/** Sends `request` to the widget as the SDK would, past the SDK's own checks (a hostile page). */
async function approveDirectly(request: ApprovalRequest): Promise<string> {
  await (keystead as unknown as { approver(): Approver }).approver().approve(request);
  return "approved";
}

type TypedArgs = { domain: Record<string, unknown>; types: Record<string, Array<{ name: string; type: string }>>; primaryType: string; message: Record<string, unknown> };

(window as unknown as { dapp: unknown }).dapp = {
  init: () => wrap(() => keystead.init()),
  status: () => wrap(async () => keystead.getStatus()),
  login: () => wrap(() => keystead.loginWithUI()),
  register: () => wrap(async () => (await keystead.register()).walletId),
  address: () => wrap(address),
  viemSend: (to: Address, value: string) =>
    wrap(async () => wallet().sendTransaction({ account: await address(), to, value: BigInt(value), chain })),
  viemSignTypedData: (td: TypedArgs) =>
    wrap(async () => wallet().signTypedData({ account: await address(), ...(td as never) })),
  viemSignMessage: (message: string) => wrap(async () => wallet().signMessage({ account: await address(), message })),
  ethersSignTypedData: (td: TypedArgs) =>
    wrap(async () => {
      const signer = await new BrowserProvider(traced() as never).getSigner();
      return signer.signTypedData(td.domain as never, td.types as never, td.message);
    }),
  ethersSend: (to: string, value: string) =>
    wrap(async () => {
      const signer = await new BrowserProvider(traced() as never).getSigner();
      const tx = await signer.sendTransaction({ to, value: BigInt(value) });
      return tx.hash as Hex;
    }),
  /** An ERC-20 `transfer` or `approve` through viem's writeContract (eth_sendTransaction). */
  viemErc20: (token: Address, fn: "transfer" | "approve", to: Address, amount: string) =>
    wrap(async () => wallet().writeContract({ account: await address(), address: token, abi: erc20Abi, functionName: fn, args: [to, BigInt(amount)], chain })),
  /** The same call data, signed only (eth_signTransaction, nothing broadcast). */
  viemSignErc20: (token: Address, fn: "transfer" | "approve", to: Address, amount: string) =>
    wrap(async () => {
      const data = encodeFunctionData({ abi: erc20Abi, functionName: fn, args: [to, BigInt(amount)] });
      return wallet().signTransaction({ account: await address(), to: token, data, chain } as never);
    }),
  /**
   * A hostile page's approval: a genuine prepared transfer whose request labels are then
   * changed (`network`: the label names another network; `fee`: a smaller fee than the
   * intent's cap; `from`: another sender; `none`: unchanged, the control), sent to the
   * widget as the SDK would send it.
   */
  tamperedApproval: (change: "none" | "network" | "fee" | "from", to: Address, value: string) =>
    wrap(async () => {
      const ref = await localAccountRef();
      const prepared = await keystead.api.prepareTx({ accountId: ref.accountId, to, value });
      const request = { ...ref, purpose: "sign_transaction" as const, intent: prepared.intent, maxFee: prepared.maxFee, broadcast: false };
      if (change === "network") request.network = "mainnet";
      if (change === "fee") request.maxFee = "1";
      if (change === "from") request.address = to;
      return approveDirectly(request);
    }),
  /** A hostile page's message approval showing `address` for the user's account. */
  messageShowing: (address: Address, message: string) =>
    wrap(async () => {
      const hex = Array.from(new TextEncoder().encode(message), (b) => b.toString(16).padStart(2, "0")).join("");
      return approveDirectly({ ...(await localAccountRef()), address, purpose: "sign_message", message: `0x${hex}`, encoding: "utf8" });
    }),
  /** A hostile page's typed-data approval for `chainId`, sent past the provider's check. */
  typedDataForChain: (typedData: TypedArgs, chainId: number) =>
    wrap(async () => {
      const domain = { ...typedData.domain, chainId };
      return approveDirectly({ ...(await localAccountRef()), purpose: "sign_typed_data", typedData: { ...typedData, domain } as never });
    }),
  openWidget: (view: "home" | "settings") => wrap(() => keystead.openWidget(view)),
  exportWallet: () => wrap(() => keystead.exportWallet()),
};
document.body.dataset.ready = "1";
