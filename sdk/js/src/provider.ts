// An EIP-1193 provider over the Keystead API and an Approver (the widget).
//
// Wallet methods go through the API with the user's approval; read methods go to the
// network's own JSON-RPC URL, from the SDK's configuration.

import { getAddress, isAddress } from "viem";
import type { Account, ApiClient, FetchLike } from "./api.js";
import { KeysteadError } from "./api.js";
import {
  isUserRejection,
  signMessageWithApproval,
  signTypedDataWithApproval,
  transactionWithApproval,
  type Approver,
  type WalletApi,
} from "./approval.js";
import { isHex0x } from "./bytes.js";
import { messageHex, type TypedData } from "./crypto.js";

/** EIP-1193 / EIP-1474 error. */
export class ProviderRpcError extends Error {
  readonly code: number;
  readonly data: unknown;
  constructor(code: number, message: string, data?: unknown) {
    super(message);
    this.name = "ProviderRpcError";
    this.code = code;
    this.data = data;
  }
}

export const RpcErrorCode = {
  USER_REJECTED: 4001,
  UNAUTHORIZED: 4100,
  UNSUPPORTED_METHOD: 4200,
  DISCONNECTED: 4900,
  CHAIN_DISCONNECTED: 4901,
  UNRECOGNIZED_CHAIN: 4902,
  INVALID_PARAMS: -32602,
  INTERNAL: -32603,
} as const;

export interface RequestArguments {
  readonly method: string;
  readonly params?: readonly unknown[] | object;
}

export interface ProviderNetwork {
  /** The network id the API uses (`/v1/app` networks[].id, Account.network). */
  id: string;
  chainId: number;
  name?: string;
  /** JSON-RPC endpoint read methods are forwarded to. */
  rpcUrl?: string;
}

export type ProviderApi = WalletApi & Pick<ApiClient, "getAccounts" | "isAuthenticated">;

export interface ProviderOptions {
  api: ProviderApi;
  approver: Approver;
  /** The networks the app has; `wallet_switchEthereumChain` can switch among them. */
  networks: ProviderNetwork[];
  /** Id of the network the provider starts on. */
  network: string;
  /** The app's id (`/v1/app`), or a function that fetches it. */
  appId: string | (() => Promise<string>);
  /** Logs the user in (the widget) when `eth_requestAccounts` finds no session. */
  connect?: () => Promise<void>;
  /** fetch for the RPC forwarding; defaults to the global fetch. */
  fetch?: FetchLike;
}

/** Read-only methods answered by the network's RPC node. */
export const FORWARDED_METHODS: ReadonlySet<string> = new Set([
  "eth_blockNumber",
  "eth_call",
  "eth_estimateGas",
  "eth_feeHistory",
  "eth_gasPrice",
  "eth_getBalance",
  "eth_getBlockByHash",
  "eth_getBlockByNumber",
  "eth_getBlockTransactionCountByHash",
  "eth_getBlockTransactionCountByNumber",
  "eth_getCode",
  "eth_getFilterChanges",
  "eth_getFilterLogs",
  "eth_getLogs",
  "eth_getProof",
  "eth_getStorageAt",
  "eth_getTransactionByBlockHashAndIndex",
  "eth_getTransactionByBlockNumberAndIndex",
  "eth_getTransactionByHash",
  "eth_getTransactionCount",
  "eth_getTransactionReceipt",
  "eth_getUncleByBlockHashAndIndex",
  "eth_getUncleByBlockNumberAndIndex",
  "eth_getUncleCountByBlockHash",
  "eth_getUncleCountByBlockNumber",
  "eth_maxPriorityFeePerGas",
  "eth_newBlockFilter",
  "eth_newFilter",
  "eth_newPendingTransactionFilter",
  "eth_syncing",
  "eth_uninstallFilter",
  "eth_blobBaseFee",
  "web3_clientVersion",
]);

type Listener = (...args: unknown[]) => void;

const toChainHex = (chainId: number) => "0x" + chainId.toString(16);

function paramsArray(args: RequestArguments): readonly unknown[] {
  if (args.params === undefined) return [];
  if (!Array.isArray(args.params)) throw new ProviderRpcError(RpcErrorCode.INVALID_PARAMS, `${args.method} takes an array of params`);
  return args.params;
}

/** Maps any failure to the ProviderRpcError dApps expect. */
export function toProviderError(e: unknown): ProviderRpcError {
  if (e instanceof ProviderRpcError) return e;
  if (isUserRejection(e)) return new ProviderRpcError(RpcErrorCode.USER_REJECTED, "User rejected the request.");
  if (e instanceof KeysteadError) {
    const data = e.toJSON();
    if (e.code === "unauthenticated") return new ProviderRpcError(RpcErrorCode.UNAUTHORIZED, e.message, data);
    if (e.code === "invalid_request" && e.status === undefined) return new ProviderRpcError(RpcErrorCode.INVALID_PARAMS, e.message, data);
    if (e.code === "network_error") return new ProviderRpcError(RpcErrorCode.DISCONNECTED, e.message, data);
    return new ProviderRpcError(RpcErrorCode.INTERNAL, e.message, data);
  }
  return new ProviderRpcError(RpcErrorCode.INTERNAL, (e as Error)?.message ?? "internal error");
}

export class KeysteadProvider {
  /** Lets dApps that look for it tell this provider apart. */
  readonly isKeystead = true;
  private readonly api: ProviderApi;
  private readonly approver: Approver;
  private readonly networks: ProviderNetwork[];
  private readonly connectHook: (() => Promise<void>) | undefined;
  private readonly fetchImpl: FetchLike | undefined;
  private readonly appIdSource: string | (() => Promise<string>);
  private appIdValue: string | undefined;
  private current: ProviderNetwork;
  /** All the user's accounts (every network); null until loaded. */
  private allAccounts: Account[] | null = null;
  private connected = false;
  private rpcId = 0;
  private readonly listeners = new Map<string, Set<Listener>>();

  constructor(options: ProviderOptions) {
    this.api = options.api;
    this.approver = options.approver;
    this.networks = options.networks.slice();
    const start = this.networks.find((n) => n.id === options.network);
    if (!start) throw new KeysteadError("invalid_request", `unknown network ${JSON.stringify(options.network)}`);
    this.current = start;
    this.connectHook = options.connect;
    // Bound: a browser's fetch called as a method of another object throws "Illegal invocation".
    const f = options.fetch ?? (globalThis.fetch as FetchLike | undefined);
    this.fetchImpl = f ? (input, init) => f(input, init) : undefined;
    this.appIdSource = options.appId;
    if (typeof options.appId === "string") this.appIdValue = options.appId;
  }

  // --- events ---------------------------------------------------------------------------

  on(event: string, listener: Listener): this {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener);
    return this;
  }

  removeListener(event: string, listener: Listener): this {
    this.listeners.get(event)?.delete(listener);
    return this;
  }

  off(event: string, listener: Listener): this {
    return this.removeListener(event, listener);
  }

  once(event: string, listener: Listener): this {
    const wrapped: Listener = (...args) => {
      this.removeListener(event, wrapped);
      listener(...args);
    };
    return this.on(event, wrapped);
  }

  listenerCount(event: string): number {
    return this.listeners.get(event)?.size ?? 0;
  }

  removeAllListeners(event?: string): this {
    if (event === undefined) this.listeners.clear();
    else this.listeners.delete(event);
    return this;
  }

  private emit(event: string, ...args: unknown[]): void {
    for (const listener of [...(this.listeners.get(event) ?? [])]) {
      try {
        listener(...args);
      } catch {
        // A dApp's listener throwing must not break the provider.
      }
    }
  }

  // --- state ----------------------------------------------------------------------------

  get chainId(): string {
    return toChainHex(this.current.chainId);
  }

  get network(): ProviderNetwork {
    return { ...this.current };
  }

  /** Addresses on the current network, as eth_accounts returns them. */
  private addresses(): string[] {
    return (this.allAccounts ?? []).filter((a) => a.network === this.current.id).map((a) => a.address);
  }

  private accountFor(address: unknown): Account {
    if (typeof address !== "string" || !isAddress(address, { strict: false })) {
      throw new ProviderRpcError(RpcErrorCode.INVALID_PARAMS, "invalid address");
    }
    const lower = address.toLowerCase();
    const account = (this.allAccounts ?? []).find((a) => a.network === this.current.id && a.address.toLowerCase() === lower);
    if (!account) throw new ProviderRpcError(RpcErrorCode.UNAUTHORIZED, "the requested account is not authorized");
    return account;
  }

  private async appId(): Promise<string> {
    if (this.appIdValue === undefined) {
      this.appIdValue = typeof this.appIdSource === "string" ? this.appIdSource : await this.appIdSource();
    }
    return this.appIdValue;
  }

  private async loadAccounts(): Promise<string[]> {
    const before = this.addresses();
    this.allAccounts = await this.api.getAccounts();
    const after = this.addresses();
    if (!this.connected && after.length > 0) {
      this.connected = true;
      this.emit("connect", { chainId: this.chainId });
    }
    if (before.join() !== after.join()) this.emit("accountsChanged", after);
    return after;
  }

  /** Call after a login (or a wallet creation): reloads accounts and emits the events. */
  async sessionStarted(): Promise<void> {
    await this.loadAccounts();
  }

  /** Call after a logout: accountsChanged([]) then disconnect. */
  sessionEnded(): void {
    const had = this.addresses().length > 0;
    this.allAccounts = null;
    if (had) this.emit("accountsChanged", []);
    if (this.connected) {
      this.connected = false;
      this.emit("disconnect", new ProviderRpcError(RpcErrorCode.DISCONNECTED, "the user logged out"));
    }
  }

  /** Switches networks by id or chain id; emits chainChanged (and accountsChanged if they differ). */
  switchNetwork(target: string | number): void {
    const next = this.networks.find((n) => (typeof target === "number" ? n.chainId === target : n.id === target));
    if (!next) throw new ProviderRpcError(RpcErrorCode.UNRECOGNIZED_CHAIN, `Unrecognized chain ID ${String(target)}`);
    if (next.id === this.current.id) return;
    const before = this.addresses();
    this.current = next;
    this.emit("chainChanged", this.chainId);
    const after = this.addresses();
    if (before.join() !== after.join()) this.emit("accountsChanged", after);
  }

  // --- EIP-1193 -------------------------------------------------------------------------

  async request(args: RequestArguments): Promise<unknown> {
    if (typeof args !== "object" || args === null || typeof args.method !== "string") {
      throw new ProviderRpcError(RpcErrorCode.INVALID_PARAMS, "request expects { method, params }");
    }
    try {
      return await this.dispatch(args);
    } catch (e) {
      throw toProviderError(e);
    }
  }

  private async dispatch(args: RequestArguments): Promise<unknown> {
    const { method } = args;
    switch (method) {
      case "eth_chainId":
        return this.chainId;
      case "net_version":
        return String(this.current.chainId);
      case "eth_accounts":
        if (this.allAccounts === null && this.api.isAuthenticated()) {
          try {
            return await this.loadAccounts();
          } catch {
            return [];
          }
        }
        return this.addresses();
      case "eth_requestAccounts":
        return this.requestAccounts();
      case "eth_coinbase":
        return this.addresses()[0] ?? null;
      case "personal_sign":
        return this.personalSign(paramsArray(args));
      case "eth_signTypedData_v4":
        return this.signTypedData(paramsArray(args));
      case "eth_sendTransaction":
        return this.transaction(paramsArray(args), true);
      case "eth_signTransaction":
        return this.transaction(paramsArray(args), false);
      case "wallet_switchEthereumChain":
        return this.switchChain(paramsArray(args));
      case "wallet_addEthereumChain": {
        // Networks are configured on the server: a known chain is "added" already.
        const chain = this.chainParam(paramsArray(args));
        if (!this.networks.some((n) => n.chainId === chain)) {
          throw new ProviderRpcError(RpcErrorCode.UNSUPPORTED_METHOD, "this wallet cannot add networks; the app's server configures them");
        }
        return null;
      }
      default:
        if (FORWARDED_METHODS.has(method)) return this.forward(method, args.params ?? []);
        throw new ProviderRpcError(RpcErrorCode.UNSUPPORTED_METHOD, `The Provider does not support the requested method: ${method}`);
    }
  }

  private async requestAccounts(): Promise<string[]> {
    if (!this.api.isAuthenticated()) {
      if (!this.connectHook) throw new ProviderRpcError(RpcErrorCode.UNAUTHORIZED, "not logged in");
      await this.connectHook();
      if (!this.api.isAuthenticated()) throw new ProviderRpcError(RpcErrorCode.USER_REJECTED, "User rejected the request.");
    }
    const addresses = await this.loadAccounts();
    if (addresses.length === 0) {
      throw new ProviderRpcError(RpcErrorCode.UNAUTHORIZED, `the user has no account on ${this.current.id}`);
    }
    return addresses;
  }

  private async ensureAccounts(): Promise<void> {
    if (this.allAccounts === null) {
      if (!this.api.isAuthenticated()) throw new ProviderRpcError(RpcErrorCode.UNAUTHORIZED, "not logged in: call eth_requestAccounts");
      await this.loadAccounts();
    }
  }

  private async personalSign(params: readonly unknown[]): Promise<string> {
    await this.ensureAccounts();
    let [message, address] = params;
    // Some dApps send (address, message): accept it when unambiguous, as wallets do.
    if (typeof message === "string" && typeof address === "string" && isAddress(message, { strict: false }) && !isAddress(address, { strict: false })) {
      [message, address] = [address, message];
    }
    if (typeof message !== "string") throw new ProviderRpcError(RpcErrorCode.INVALID_PARAMS, "personal_sign: message must be a string");
    const account = this.accountFor(address);
    // A 0x-prefixed hex string is bytes; anything else is UTF-8 text.
    const encoding = isHex0x(message) ? "hex" : "utf8";
    const hex = messageHex(message, encoding);
    return signMessageWithApproval(await this.context(), account, hex, encoding);
  }

  private async signTypedData(params: readonly unknown[]): Promise<string> {
    await this.ensureAccounts();
    const [address, raw] = params;
    const account = this.accountFor(address);
    let typedData: TypedData;
    try {
      typedData = (typeof raw === "string" ? JSON.parse(raw) : raw) as TypedData;
    } catch {
      throw new ProviderRpcError(RpcErrorCode.INVALID_PARAMS, "eth_signTypedData_v4: typed data is not JSON");
    }
    if (typeof typedData !== "object" || typedData === null || typeof typedData.types !== "object" || typeof typedData.primaryType !== "string") {
      throw new ProviderRpcError(RpcErrorCode.INVALID_PARAMS, "eth_signTypedData_v4: typed data needs types, primaryType, domain, message");
    }
    const domainChain = typedData.domain?.chainId;
    if (domainChain !== undefined && domainChain !== null) {
      let chain: bigint;
      try {
        chain = BigInt(domainChain as string | number | bigint);
      } catch {
        throw new ProviderRpcError(RpcErrorCode.INVALID_PARAMS, "eth_signTypedData_v4: bad domain chainId");
      }
      if (chain !== BigInt(this.current.chainId)) {
        throw new ProviderRpcError(RpcErrorCode.INVALID_PARAMS, `the typed data's chainId ${chain} is not the active chain ${this.current.chainId}`);
      }
    }
    try {
      return await signTypedDataWithApproval(await this.context(), account, typedData);
    } catch (e) {
      if (e instanceof Error && !(e instanceof KeysteadError) && !isUserRejection(e)) {
        throw new ProviderRpcError(RpcErrorCode.INVALID_PARAMS, `eth_signTypedData_v4: ${e.message}`);
      }
      throw e;
    }
  }

  private async transaction(params: readonly unknown[], broadcast: boolean): Promise<unknown> {
    await this.ensureAccounts();
    const tx = params[0] as Record<string, unknown> | undefined;
    if (typeof tx !== "object" || tx === null) throw new ProviderRpcError(RpcErrorCode.INVALID_PARAMS, "expected a transaction object");
    const account = this.accountFor(tx.from ?? this.addresses()[0]);
    if (typeof tx.to !== "string" || !isAddress(tx.to, { strict: false })) {
      throw new ProviderRpcError(RpcErrorCode.INVALID_PARAMS, "`to` is required (contract creation is not supported)");
    }
    if (tx.chainId !== undefined && BigInt(tx.chainId as string) !== BigInt(this.current.chainId)) {
      throw new ProviderRpcError(RpcErrorCode.INVALID_PARAMS, "the transaction's chainId is not the active chain");
    }
    let value: bigint;
    try {
      value = tx.value === undefined || tx.value === null ? 0n : BigInt(tx.value as string);
    } catch {
      throw new ProviderRpcError(RpcErrorCode.INVALID_PARAMS, "`value` must be a hex quantity");
    }
    const data = (tx.data ?? tx.input ?? "0x") as unknown;
    if (typeof data !== "string" || !isHex0x(data)) throw new ProviderRpcError(RpcErrorCode.INVALID_PARAMS, "`data` must be 0x-hex");
    const ctx = await this.context();
    const request = { to: getAddress(tx.to), value, data };
    if (broadcast) {
      const sent = await transactionWithApproval(ctx, account, request, { broadcast: true, chainId: this.current.chainId });
      return sent.hash;
    }
    const signed = await transactionWithApproval(ctx, account, request, { broadcast: false, chainId: this.current.chainId });
    return signed.signedTransaction;
  }

  private chainParam(params: readonly unknown[]): number {
    const p = params[0] as { chainId?: unknown } | undefined;
    const raw = p?.chainId;
    if (typeof raw !== "string" || !/^0x[0-9a-fA-F]+$/.test(raw)) {
      throw new ProviderRpcError(RpcErrorCode.INVALID_PARAMS, "expected [{ chainId: <0x-hex> }]");
    }
    return Number.parseInt(raw, 16);
  }

  private async switchChain(params: readonly unknown[]): Promise<null> {
    const chainId = this.chainParam(params);
    this.switchNetwork(chainId);
    return null;
  }

  private async context() {
    return { api: this.api, approver: this.approver, appId: await this.appId() };
  }

  private async forward(method: string, params: unknown): Promise<unknown> {
    const url = this.current.rpcUrl;
    if (!url) throw new ProviderRpcError(RpcErrorCode.DISCONNECTED, `no RPC URL is configured for network ${this.current.id}`);
    if (!this.fetchImpl) throw new ProviderRpcError(RpcErrorCode.DISCONNECTED, "no fetch implementation available");
    let response: Response;
    try {
      response = await this.fetchImpl(url, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: ++this.rpcId, method, params }),
      });
    } catch (e) {
      throw new ProviderRpcError(RpcErrorCode.CHAIN_DISCONNECTED, `the ${this.current.id} RPC is unreachable: ${(e as Error)?.message ?? "fetch failed"}`);
    }
    let body: { result?: unknown; error?: { code?: unknown; message?: unknown; data?: unknown } };
    try {
      body = (await response.json()) as typeof body;
    } catch {
      throw new ProviderRpcError(RpcErrorCode.INTERNAL, `the ${this.current.id} RPC answered HTTP ${response.status} without JSON`);
    }
    if (body.error) {
      const code = typeof body.error.code === "number" ? body.error.code : RpcErrorCode.INTERNAL;
      throw new ProviderRpcError(code, typeof body.error.message === "string" ? body.error.message : "RPC error", body.error.data);
    }
    if (!("result" in body)) throw new ProviderRpcError(RpcErrorCode.INTERNAL, "the RPC answer has no result");
    return body.result;
  }
}
