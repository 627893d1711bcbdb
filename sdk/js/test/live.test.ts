// Opt-in: the SDK against a real `keystead serve --dev` (real enclave, real envelopes).
//
//   $CARGO_TARGET_DIR/debug/keystead serve --dev --data-dir $(mktemp -d) --listen 127.0.0.1:18081
//   KEYSTEAD_LIVE_SERVER=http://127.0.0.1:18081 KEYSTEAD_LIVE_APP_KEY=ksa_... npx vitest run test/live.test.ts
//
// Add `--network local=31337@http://127.0.0.1:18545` to the server, an anvil on that port
// and KEYSTEAD_LIVE_RPC=http://127.0.0.1:18545 to also send a transaction.
//
// The test's approver plays the widget: attests, computes digests, seals the PIN, opens
// the recovery kit with its own one-time key.
import { describe, expect, it } from "vitest";
import { recoverMessageAddress, recoverTypedDataAddress } from "viem";
import {
  Keystead,
  checkNewPin,
  generateClientKeyPair,
  openRecoveryKit,
  operationDigest,
  operationsForApproval,
  sealPinEnvelope,
  verifyAttestation,
  type ApprovalRequest,
  type Approver,
  type ClientKeyPair,
  type WidgetChannel,
} from "../src/index.js";

const SERVER = process.env.KEYSTEAD_LIVE_SERVER;
const APP_KEY = process.env.KEYSTEAD_LIVE_APP_KEY;
const rpcUrl = process.env.KEYSTEAD_LIVE_RPC;

describe.skipIf(!SERVER || !APP_KEY)("live server (--dev)", () => {
  it("logs in, creates a wallet, signs a message and typed data with real envelopes", async () => {
    const pin = "482915";
    expect(checkNewPin(pin)).toBeNull();
    const sub = `sdk-${Date.now()}`;
    const { idToken } = (await (
      await fetch(`${SERVER}/dev/oidc/token`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ sub, email: `${sub}@example.com` }),
      })
    ).json()) as { idToken: string };

    const keys = new Map<ApprovalRequest, ClientKeyPair>();
    const recovery: string[] = [];
    let pins = ["000001", pin]; // the first signing attempt uses a wrong PIN
    const retries: Array<string | undefined> = [];
    const approver: Approver = {
      async approve(request, retry) {
        retries.push(retry?.code);
        const att = verifyAttestation(await ks.api.getAttestation(), { accept: "dev" });
        let clientKey: string | undefined;
        if (request.purpose === "create_wallet" || request.purpose === "export") {
          const pair = await generateClientKeyPair();
          keys.set(request, pair);
          clientKey = pair.clientKey;
        }
        const [op] = operationsForApproval(request, clientKey);
        const typed = request.purpose === "create_wallet" ? pin : (pins.shift() ?? pin);
        const sealed = await sealPinEnvelope({ pin: typed, purpose: op!.purpose, digest: await operationDigest(op!), publicKey: att.publicKey });
        return (clientKey ? { pin: sealed, clientKey } : { pin: sealed }) as never;
      },
      async reveal(request, kind, sealed) {
        expect(kind).toBe("recoveryKit");
        recovery.push(await openRecoveryKit(keys.get(request)!, sealed));
      },
    };
    const channel: WidgetChannel = {
      widgetOrigin: "https://widget.invalid",
      request: (async (type: string) => {
        if (type === "login") return { provider: "dev", idToken };
        throw new Error("unexpected widget request");
      }) as WidgetChannel["request"],
      notify() {},
      on: () => () => {},
      close() {},
    };
    const ks = new Keystead({ appKey: APP_KEY!, serverUrl: SERVER!, approver, channel, storage: "memory",
      ...(rpcUrl ? { networks: { local: { rpcUrl } } } : {}),
    });
    expect(await ks.init()).toBe("logged_out");
    expect(await ks.loginWithUI()).toBe("pin_required");
    const { accounts } = await ks.register();
    expect(ks.getStatus()).toBe("ready");
    expect(recovery[0]).toMatch(/^[0-9A-Z]{5}(-[0-9A-Z]{5}){4}$/);
    const address = accounts[0]!.address as `0x${string}`;

    const provider = ks.getProvider();
    expect(await provider.request({ method: "eth_requestAccounts" })).toEqual([address]);
    const sig = (await provider.request({ method: "personal_sign", params: ["hello keystead", address] })) as `0x${string}`;
    expect(await recoverMessageAddress({ message: "hello keystead", signature: sig })).toBe(address);
    // create_wallet, then personal_sign twice: the wrong PIN first, asked again with wrong_pin.
    expect(retries).toEqual([undefined, undefined, "wrong_pin"]);

    const typedData = {
      types: { Mail: [{ name: "contents", type: "string" }] },
      primaryType: "Mail" as const,
      domain: { name: "Keystead", version: "1", chainId: 31337 },
      message: { contents: "Hello, Bob!" },
    };
    const typedSig = (await provider.request({ method: "eth_signTypedData_v4", params: [address, JSON.stringify(typedData)] })) as `0x${string}`;
    expect(await recoverTypedDataAddress({ ...typedData, signature: typedSig })).toBe(address);

    // With KEYSTEAD_LIVE_RPC (the anvil node the server's `local` network uses), fund the
    // account; eth_sendTransaction goes prepare → approve → send and returns the hash.
    if (rpcUrl) {
      const rpc = async (method: string, params: unknown[]) => {
        const r = (await (await fetch(rpcUrl, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) })).json()) as { result?: unknown; error?: unknown };
        if (r.error) throw new Error(JSON.stringify(r.error));
        return r.result;
      };
      await rpc("anvil_setBalance", [address, "0x56bc75e2d63100000"]);
      const to = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
      const hash = (await provider.request({ method: "eth_sendTransaction", params: [{ from: address, to, value: "0x38d7ea4c68000" }] })) as string;
      expect(hash).toMatch(/^0x[0-9a-f]{64}$/);
      let receipt = null as { status?: string } | null;
      for (let i = 0; i < 50 && !receipt; i++) {
        receipt = (await rpc("eth_getTransactionReceipt", [hash])) as typeof receipt;
        if (!receipt) await new Promise((r) => setTimeout(r, 200));
      }
      expect(receipt?.status).toBe("0x1");
      // Read methods go to the configured RPC URL.
      expect(BigInt((await provider.request({ method: "eth_getBalance", params: [to, "latest"] })) as string) > 0n).toBe(true);
    }
  }, 60_000);
});
