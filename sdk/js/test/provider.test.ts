import { describe, expect, it, vi } from "vitest";
import { createWalletClient, custom, hashMessage, createPublicClient } from "viem";
import { KeysteadError, type Account, type Intent } from "../src/api.js";
import {
  UserRejectedError,
  operationsForApproval,
  type ApprovalRequest,
  type Approver,
  type ProviderApi,
} from "../src/index.js";
import { KeysteadProvider, ProviderRpcError } from "../src/provider.js";
import { hpkeOpen, INFO_PIN, operationDigest, sealPinEnvelope, type Operation } from "../src/crypto.js";
import { fromHex, utf8Decode } from "../src/bytes.js";

// The vectors' enclave key pair: the fake server opens envelopes like the enclave would.
const ENCLAVE_SK = fromHex("084300850cfb307927560265e23a2f0d9801f87d775efe954dca0c0f7a012215");
const ENCLAVE_PK = fromHex("32d92ed538af2e0c9160ecec13b88eb8d7092680d2ca4693af8e0ef20cef4566");
const PIN = "482915";

const ALICE = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
const ALICE_BASE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

const accounts: Account[] = [
  { id: "acc_local", network: "local", family: "evm", address: ALICE, path: "m/44'/60'/0'/0/0" },
  { id: "acc_base", network: "base", family: "evm", address: ALICE_BASE, path: "m/44'/60'/0'/0/0" },
];

const SIG = "0x" + "11".repeat(65);

/** A fake API that, like the enclave, opens each envelope and checks its digest. */
function fakeApi(overrides: Partial<ProviderApi> = {}) {
  let authenticated = true;
  const seen: Array<{ op: Operation; plaintext: Record<string, unknown> }> = [];
  async function check(pin: { enc: string; ciphertext: string }, op: Operation) {
    const plaintext = JSON.parse(utf8Decode(await hpkeOpen(ENCLAVE_SK, INFO_PIN, pin))) as Record<string, unknown>;
    expect(plaintext.purpose).toBe(op.purpose);
    expect(plaintext.digest).toBe(await operationDigest(op));
    seen.push({ op, plaintext });
    if (plaintext.pin !== PIN) throw new KeysteadError("wrong_pin", "wrong PIN", { remainingTries: 4 }, 403);
  }
  const intentFor = (body: { accountId: string; to: string; value: string; data?: string | null }): Intent => ({
    network: "local",
    chainId: 31337,
    from: ALICE,
    to: body.to,
    value: body.value,
    data: body.data ?? "0x",
    gasLimit: "21000",
    maxFeePerGas: "2000000000",
    maxPriorityFeePerGas: "1000000000",
  });
  const api: ProviderApi & { seen: typeof seen; setAuthenticated(v: boolean): void } = {
    seen,
    setAuthenticated: (v: boolean) => {
      authenticated = v;
    },
    isAuthenticated: () => authenticated,
    getAccounts: vi.fn(async () => accounts),
    signMessage: vi.fn(async (body) => {
      await check(body.pin, { purpose: "sign_message", appId: "app_01", accountId: body.accountId, message: body.message });
      return SIG;
    }),
    signTypedData: vi.fn(async () => SIG),
    prepareTx: vi.fn(async (body) => ({ intent: intentFor(body), digest: "", maxFee: "42000000000000" })),
    signTx: vi.fn(async () => ({ signedTransaction: "0x02f8", hash: "0x" + "cd".repeat(32) })),
    sendTx: vi.fn(async (body) => {
      const { network: _n, from: _f, ...fields } = body.intent;
      await check(body.pin, { purpose: "sign_transaction", appId: "app_01", accountId: "acc_local", intent: fields });
      return { id: "tx_1", hash: "0x" + "ab".repeat(32), status: "pending", network: "local", from: ALICE, nonce: 0 };
    }),
    ...overrides,
  };
  return api;
}

/** A widget double: computes digests from what it "showed" and seals the PIN typed. */
function sealingApprover(pins: string[] = [PIN]) {
  const requests: Array<{ request: ApprovalRequest; retry: unknown }> = [];
  const outcomes: unknown[] = [];
  const approver: Approver = {
    async approve(request, retry) {
      requests.push({ request, retry });
      const [op] = operationsForApproval(request);
      const pin = pins[Math.min(requests.length - 1, pins.length - 1)]!;
      return { pin: await sealPinEnvelope({ pin, purpose: op!.purpose, digest: await operationDigest(op!), publicKey: ENCLAVE_PK }) } as never;
    },
    complete(_request, outcome) {
      outcomes.push(outcome);
    },
  };
  return { approver, requests, outcomes };
}

const rejecting: Approver = {
  async approve() {
    throw new UserRejectedError();
  },
};

function provider(api: ProviderApi, approver: Approver, extra: Partial<ConstructorParameters<typeof KeysteadProvider>[0]> = {}) {
  return new KeysteadProvider({
    api,
    approver,
    networks: [
      { id: "local", chainId: 31337, rpcUrl: "http://rpc.local/" },
      { id: "base", chainId: 8453 },
    ],
    network: "local",
    appId: "app_01",
    ...extra,
  });
}

async function rpcError(p: Promise<unknown>): Promise<ProviderRpcError> {
  const e = await p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => e,
  );
  expect(e).toBeInstanceOf(ProviderRpcError);
  return e as ProviderRpcError;
}

describe("KeysteadProvider", () => {
  it("answers chain and account methods and emits connect + accountsChanged", async () => {
    const p = provider(fakeApi(), sealingApprover().approver);
    const events: Array<[string, unknown]> = [];
    for (const e of ["connect", "accountsChanged", "chainChanged", "disconnect"]) p.on(e, (x) => events.push([e, x]));
    expect(await p.request({ method: "eth_chainId" })).toBe("0x7a69");
    expect(await p.request({ method: "net_version" })).toBe("31337");
    expect(await p.request({ method: "eth_requestAccounts" })).toEqual([ALICE]);
    expect(await p.request({ method: "eth_accounts" })).toEqual([ALICE]);
    expect(events).toEqual([
      ["connect", { chainId: "0x7a69" }],
      ["accountsChanged", [ALICE]],
    ]);
    p.sessionEnded();
    expect(events.slice(2).map(([e]) => e)).toEqual(["accountsChanged", "disconnect"]);
    expect((events[3]![1] as ProviderRpcError).code).toBe(4900);
    expect(await p.request({ method: "eth_accounts" })).toEqual([ALICE]); // the session is still there in the fake
  });

  it("eth_requestAccounts logs in through the connect hook, and 4001 when the user declines", async () => {
    const api = fakeApi();
    api.setAuthenticated(false);
    expect(await provider(api, rejecting).request({ method: "eth_accounts" })).toEqual([]);
    const declined = provider(api, rejecting, { connect: async () => Promise.reject(new UserRejectedError()) });
    expect((await rpcError(declined.request({ method: "eth_requestAccounts" }))).code).toBe(4001);
    const accepting = provider(api, rejecting, { connect: async () => api.setAuthenticated(true) });
    expect(await accepting.request({ method: "eth_requestAccounts" })).toEqual([ALICE]);
  });

  it("personal_sign (message, address) seals the right digest, hex or utf8", async () => {
    const api = fakeApi();
    const { approver, requests, outcomes } = sealingApprover();
    const p = provider(api, approver);
    await p.request({ method: "eth_requestAccounts" });
    expect(await p.request({ method: "personal_sign", params: ["hello keystead", ALICE.toLowerCase()] })).toBe(SIG);
    expect(requests[0]!.request).toMatchObject({
      purpose: "sign_message",
      message: "0x68656c6c6f206b65797374656164",
      encoding: "utf8",
      accountId: "acc_local",
      address: ALICE,
    });
    expect(await p.request({ method: "personal_sign", params: ["0x68656C6C6F", ALICE] })).toBe(SIG);
    expect(requests[1]!.request).toMatchObject({ message: "0x68656c6c6f", encoding: "hex" });
    // (address, message) order is recognised too.
    await p.request({ method: "personal_sign", params: [ALICE, "hi"] });
    expect(requests[2]!.request).toMatchObject({ message: "0x6869" });
    expect(api.seen.map((s) => s.plaintext.purpose)).toEqual(["sign_message", "sign_message", "sign_message"]);
    expect(outcomes).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
    // An address the user does not own: 4100.
    expect((await rpcError(p.request({ method: "personal_sign", params: ["hi", BOB] }))).code).toBe(4100);
  });

  it("asks again after a wrong PIN, with the error, then succeeds", async () => {
    const api = fakeApi();
    const { approver, requests } = sealingApprover(["111111", PIN]);
    const p = provider(api, approver);
    await p.request({ method: "eth_requestAccounts" });
    expect(await p.request({ method: "personal_sign", params: ["0x00", ALICE] })).toBe(SIG);
    expect(requests.map((r) => r.retry)).toEqual([undefined, { code: "wrong_pin", message: "wrong PIN", details: { remainingTries: 4 } }]);
    // Each attempt had its own nonce.
    expect(api.seen[0]!.plaintext.nonce).not.toBe(api.seen[1]!.plaintext.nonce);
  });

  it("maps a user rejection to 4001 for every signing method", async () => {
    const api = fakeApi();
    const p = provider(api, rejecting);
    await p.request({ method: "eth_requestAccounts" });
    const typed = {
      types: { Mail: [{ name: "contents", type: "string" }] },
      primaryType: "Mail",
      domain: { name: "x", chainId: 31337 },
      message: { contents: "hi" },
    };
    for (const args of [
      { method: "personal_sign", params: ["hi", ALICE] },
      { method: "eth_signTypedData_v4", params: [ALICE, JSON.stringify(typed)] },
      { method: "eth_sendTransaction", params: [{ from: ALICE, to: BOB, value: "0x1" }] },
      { method: "eth_signTransaction", params: [{ from: ALICE, to: BOB }] },
    ]) {
      const e = await rpcError(p.request(args));
      expect(e.code, args.method).toBe(4001);
    }
    expect(api.signMessage).not.toHaveBeenCalled();
    expect(api.sendTx).not.toHaveBeenCalled();
  });

  it("eth_sendTransaction goes prepare → approver → send and resolves to the hash", async () => {
    const api = fakeApi();
    const { approver, requests } = sealingApprover();
    const p = provider(api, approver);
    await p.request({ method: "eth_requestAccounts" });
    const hash = await p.request({
      method: "eth_sendTransaction",
      params: [{ from: ALICE, to: BOB.toLowerCase(), value: "0x38d7ea4c68000", data: "0x" }],
    });
    expect(hash).toBe("0x" + "ab".repeat(32));
    expect(api.prepareTx).toHaveBeenCalledWith({ accountId: "acc_local", to: BOB, value: "1000000000000000" });
    expect(requests[0]!.request).toMatchObject({ purpose: "sign_transaction", broadcast: true, maxFee: "42000000000000" });
    expect(api.seen[0]!.plaintext.purpose).toBe("sign_transaction");
    const send = vi.mocked(api.sendTx).mock.calls[0]!;
    expect(send[1]).toMatch(/^[0-9a-f]{32}$/); // Idempotency-Key

    expect(await p.request({ method: "eth_signTransaction", params: [{ from: ALICE, to: BOB }] })).toBe("0x02f8");
  });

  it("refuses an intent the server changed", async () => {
    const api = fakeApi({
      prepareTx: vi.fn(async (body) => ({
        intent: { network: "local", chainId: 31337, from: ALICE, to: ALICE, value: body.value, data: "0x", gasLimit: "1", maxFeePerGas: "1", maxPriorityFeePerGas: "1" },
        digest: "",
        maxFee: "1",
      })),
    });
    const { approver, requests } = sealingApprover();
    const p = provider(api, approver);
    await p.request({ method: "eth_requestAccounts" });
    const e = await rpcError(p.request({ method: "eth_sendTransaction", params: [{ from: ALICE, to: BOB, value: "0x1" }] }));
    expect(e.code).toBe(-32603);
    expect((e.data as { code: string }).code).toBe("intent_mismatch");
    expect(requests).toHaveLength(0);
  });

  it("unsupported methods → 4200", async () => {
    const p = provider(fakeApi(), rejecting);
    for (const method of ["eth_sign", "eth_sendRawTransaction_nope", "wallet_watchAsset", "eth_signTypedData_v3"]) {
      expect((await rpcError(p.request({ method }))).code).toBe(4200);
    }
  });

  it("wallet_switchEthereumChain: known chains emit chainChanged (+accountsChanged), unknown → 4902", async () => {
    const p = provider(fakeApi(), rejecting);
    await p.request({ method: "eth_requestAccounts" });
    const events: Array<[string, unknown]> = [];
    p.on("chainChanged", (c) => events.push(["chainChanged", c]));
    p.on("accountsChanged", (a) => events.push(["accountsChanged", a]));
    expect((await rpcError(p.request({ method: "wallet_switchEthereumChain", params: [{ chainId: "0x1" }] }))).code).toBe(4902);
    expect(events).toEqual([]);
    expect(await p.request({ method: "wallet_switchEthereumChain", params: [{ chainId: "0x2105" }] })).toBeNull();
    expect(events).toEqual([
      ["chainChanged", "0x2105"],
      ["accountsChanged", [ALICE_BASE]],
    ]);
    expect(await p.request({ method: "eth_chainId" })).toBe("0x2105");
    // Switching to the current chain is silent.
    await p.request({ method: "wallet_switchEthereumChain", params: [{ chainId: "0x2105" }] });
    expect(events).toHaveLength(2);
    expect((await rpcError(p.request({ method: "wallet_switchEthereumChain", params: [{}] }))).code).toBe(-32602);
  });

  it("eth_signTypedData_v4 refuses a domain on another chain", async () => {
    const p = provider(fakeApi(), sealingApprover().approver);
    await p.request({ method: "eth_requestAccounts" });
    const typed = { types: { M: [{ name: "a", type: "uint256" }] }, primaryType: "M", domain: { chainId: 1 }, message: { a: 1 } };
    expect((await rpcError(p.request({ method: "eth_signTypedData_v4", params: [ALICE, typed] }))).code).toBe(-32602);
    expect(await p.request({ method: "eth_signTypedData_v4", params: [ALICE, { ...typed, domain: { chainId: 31337 } }] })).toBe(SIG);
  });

  it("forwards read methods to the network's RPC URL and surfaces RPC errors", async () => {
    const bodies: unknown[] = [];
    const fetch = vi.fn(async (url: string, init?: RequestInit) => {
      expect(url).toBe("http://rpc.local/");
      const body = JSON.parse(init!.body as string) as { id: number; method: string };
      bodies.push(body);
      if (body.method === "eth_call") {
        return new Response(JSON.stringify({ jsonrpc: "2.0", id: body.id, error: { code: 3, message: "execution reverted", data: "0x08c379a0" } }));
      }
      return new Response(JSON.stringify({ jsonrpc: "2.0", id: body.id, result: "0x10" }));
    });
    const p = provider(fakeApi(), rejecting, { fetch });
    expect(await p.request({ method: "eth_blockNumber" })).toBe("0x10");
    expect(await p.request({ method: "eth_getBalance", params: [ALICE, "latest"] })).toBe("0x10");
    expect(bodies[1]).toMatchObject({ jsonrpc: "2.0", method: "eth_getBalance", params: [ALICE, "latest"] });
    const e = await rpcError(p.request({ method: "eth_call", params: [{ to: BOB, data: "0x" }, "latest"] }));
    expect([e.code, e.message, e.data]).toEqual([3, "execution reverted", "0x08c379a0"]);
    // The base network has no RPC URL: disconnected.
    p.switchNetwork("base");
    expect((await rpcError(p.request({ method: "eth_blockNumber" }))).code).toBe(4900);
  });

  it("removeListener stops events; a throwing listener does not break the provider", async () => {
    const p = provider(fakeApi(), rejecting);
    const seen: unknown[] = [];
    const listener = (c: unknown) => seen.push(c);
    p.on("chainChanged", () => {
      throw new Error("dApp bug");
    });
    p.on("chainChanged", listener);
    p.switchNetwork("base");
    p.removeListener("chainChanged", listener);
    p.switchNetwork("local");
    expect(seen).toEqual(["0x2105"]);
  });

  it("works under viem's custom transport, as dApps drive it", async () => {
    const api = fakeApi();
    const p = provider(api, sealingApprover().approver, {
      fetch: async (_u, init) => {
        const body = JSON.parse(init!.body as string) as { id: number };
        return new Response(JSON.stringify({ jsonrpc: "2.0", id: body.id, result: "0x5" }));
      },
    });
    const wallet = createWalletClient({ transport: custom(p) });
    expect(await wallet.requestAddresses()).toEqual([ALICE]);
    expect(await wallet.getChainId()).toBe(31337);
    expect(await wallet.signMessage({ account: ALICE, message: "hello keystead" })).toBe(SIG);
    expect(api.seen[0]!.op).toMatchObject({ message: "0x68656c6c6f206b65797374656164" });
    const reader = createPublicClient({ transport: custom(p) });
    expect(await reader.getBlockNumber()).toBe(5n);
    expect(hashMessage("x")).toMatch(/^0x/);
    const err = await createWalletClient({ transport: custom(provider(api, rejecting)) })
      .signMessage({ account: ALICE, message: "x" })
      .catch((e: unknown) => e);
    expect(String((err as Error).name)).toBe("UserRejectedRequestError");
  });
});
