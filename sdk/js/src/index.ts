// @keystead/sdk: the Keystead embedded wallet for web apps.
//
//   const keystead = new Keystead({ appKey, serverUrl, networks: { local: { rpcUrl } } });
//   await keystead.init();
//   if (keystead.getStatus() === "logged_out") await keystead.loginWithUI();
//   if (keystead.getStatus() !== "ready") await keystead.register();
//   const provider = keystead.getProvider("local"); // EIP-1193, for viem / ethers
//
// Everything that needs the user (login, PIN entry, showing the recovery kit) happens in
// the widget, in its own origin, over the channel of PROTOCOL.md: the host page never sees
// a PIN, a recovery code or a mnemonic.

import {
  ApiClient,
  KeysteadError,
  type Account,
  type AppInfo,
  type Balance,
  type FetchLike,
  type Session,
  type TxResponse,
} from "./api.js";
import {
  signMessageWithApproval,
  signTypedDataWithApproval,
  transactionWithApproval,
  withApproval,
  type Approver,
  type TransactionRequest,
} from "./approval.js";
import {
  PostMessageChannel,
  WidgetApprover,
  mountWidgetFrame,
  type WidgetChannel,
  type WindowLike,
} from "./channel.js";
import { messageHex, type TypedData } from "./crypto.js";
import { KeysteadProvider, type ProviderNetwork } from "./provider.js";

export * from "./api.js";
export * from "./approval.js";
export * from "./channel.js";
export * from "./crypto.js";
export * from "./provider.js";
export { fromBase64, fromHex, toBase64, toHex, toHex0x } from "./bytes.js";

export type KeysteadStatus =
  | "uninitialized"
  | "initializing"
  /** No session: call loginWithUI(). */
  | "logged_out"
  /** Logged in, no wallet yet: call register() (the user chooses a PIN). */
  | "pin_required"
  /** Logged in, has a Keystead wallet in another app: call register() for this app. */
  | "register_required"
  /** Logged in with a wallet: everything works. */
  | "ready"
  | "error";

export interface KeysteadEvents {
  status: KeysteadStatus;
  login: { userId: string; email: string | null | undefined };
  logout: undefined;
  accountsChanged: Account[];
  error: KeysteadError;
}

export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface KeysteadOptions {
  appKey: string;
  /** The Keystead server, e.g. `https://wallet.example.com`. */
  serverUrl: string;
  /** The widget page (default `${serverUrl}/widget/`); its exact origin is trusted, no other. */
  widgetUrl?: string;
  /** JSON-RPC URLs for read methods, by network id (`/v1/app` networks[].id). */
  networks?: Record<string, { rpcUrl?: string }>;
  /**
   * Where the session (access and refresh token) is kept: "session" (sessionStorage,
   * default in browsers), "local", "memory", or your own storage.
   */
  storage?: "session" | "local" | "memory" | StorageLike;
  fetch?: FetchLike;
  /** Injection points for tests and non-browser hosts. */
  channel?: WidgetChannel;
  approver?: Approver;
  window?: WindowLike & { location?: { origin: string }; document?: Document };
}

type Handler<T> = (payload: T) => void;

class MemoryStorage implements StorageLike {
  private readonly map = new Map<string, string>();
  getItem(key: string) {
    return this.map.get(key) ?? null;
  }
  setItem(key: string, value: string) {
    this.map.set(key, value);
  }
  removeItem(key: string) {
    this.map.delete(key);
  }
}

function pickStorage(option: KeysteadOptions["storage"]): StorageLike {
  if (typeof option === "object") return option;
  const g = globalThis as { sessionStorage?: StorageLike; localStorage?: StorageLike };
  try {
    if ((option ?? "session") === "session" && g.sessionStorage) return g.sessionStorage;
    if (option === "local" && g.localStorage) return g.localStorage;
  } catch {
    // storage can throw when blocked (third-party contexts)
  }
  return new MemoryStorage();
}

function statusOf(apiStatus: string): KeysteadStatus {
  switch (apiStatus) {
    case "complete":
      return "ready";
    case "pin_required":
      return "pin_required";
    case "register_required":
      return "register_required";
    default:
      return "error";
  }
}

export class Keystead {
  readonly api: ApiClient;
  private readonly options: KeysteadOptions;
  private readonly storage: StorageLike;
  private readonly storageKey: string;
  private status: KeysteadStatus = "uninitialized";
  /** Set while endSession clears the API session, so its change callback does not end it twice. */
  private endingSession = false;
  private app: AppInfo | null = null;
  private initPromise: Promise<KeysteadStatus> | null = null;
  private channelValue: WidgetChannel | null;
  private approverValue: Approver | null;
  private readonly providers = new Map<string, KeysteadProvider>();
  private readonly handlers = new Map<keyof KeysteadEvents, Set<Handler<never>>>();

  constructor(options: KeysteadOptions) {
    this.options = options;
    this.storage = pickStorage(options.storage);
    this.storageKey = `keystead:session:${options.appKey.slice(0, 12)}`;
    this.api = new ApiClient({
      serverUrl: options.serverUrl,
      appKey: options.appKey,
      ...(options.fetch ? { fetch: options.fetch } : {}),
      onSessionChange: (session) => {
        this.persist(session);
        // A new session while logged in (a refresh rotated it, or a new login): the widget
        // gets the new access token (PROTOCOL.md §5). Before a status is known, setStatus sends it.
        if (session && this.loggedIn()) this.notifySession();
        // Gone without a logout (the server refused the refresh: revoked or expired): the
        // app and the widget learn it now, not at their next call.
        else if (!session && !this.endingSession && this.loggedIn()) this.endSession();
      },
    });
    this.channelValue = options.channel ?? null;
    this.approverValue = options.approver ?? null;
    if (this.channelValue) this.wire(this.channelValue);
  }

  /** Listens for what the widget reports unasked (PROTOCOL.md §3). */
  private wire(channel: WidgetChannel): void {
    // The user logged out from the widget's settings: the server session is gone already.
    channel.on("logged-out", () => this.endSession());
    // One of the widget's own calls was refused with 401: its access token expired.
    channel.on("session-expired", () => void this.widgetSessionExpired());
  }

  /**
   * Refreshes for the widget. The SDK is the only one that uses the refresh token, and
   * `refreshSession()` shares one refresh with the SDK's own, so rotation never races and
   * reuse detection never revokes the session. The new access token reaches the widget in
   * the `session` notice (onSessionChange); a session that is gone ends here, which sends
   * `logged_out`. Other failures (the server unreachable) send nothing: the widget gives up
   * after its own timeout.
   */
  private async widgetSessionExpired(): Promise<void> {
    const hadSession = this.api.session !== null;
    try {
      if (!hadSession) throw new KeysteadError("unauthenticated", "not logged in");
      await this.api.refreshSession();
    } catch (e) {
      if (!(e instanceof KeysteadError && e.code === "unauthenticated")) return;
      // Nothing to refresh: tell the widget again. A refused refresh has ended the session
      // already (the session callback), which told the widget.
      if (!hadSession) this.notifySession();
      else if (this.loggedIn()) this.endSession();
    }
  }


  private loggedIn(): boolean {
    return this.status === "ready" || this.status === "pin_required" || this.status === "register_required";
  }

  /**
   * The `session` notice: the login state and, while logged in, the current access token
   * (never the refresh token) so the widget can keep its own session working.
   */
  private notifySession(): void {
    const channel = this.channelValue;
    if (!channel) return;
    const s = this.status;
    const status = s === "ready" ? "complete" : s === "pin_required" || s === "register_required" ? s : "logged_out";
    const session = this.api.session;
    if (status === "logged_out" || !session) {
      channel.notify("session", { status });
      return;
    }
    channel.notify("session", {
      status,
      userId: session.user.id,
      email: session.user.email ?? null,
      accessToken: session.accessToken,
      expiresIn: session.expiresIn,
    });
  }

  /** Forgets the session locally: storage, providers, status, listeners. */
  private endSession(): void {
    this.endingSession = true;
    try {
      this.api.setSession(null);
    } finally {
      this.endingSession = false;
    }
    for (const p of this.providers.values()) p.sessionEnded();
    if (this.status !== "uninitialized") this.setStatus("logged_out");
    this.emit("logout", undefined);
  }

  // --- lifecycle ------------------------------------------------------------------------

  on<E extends keyof KeysteadEvents>(event: E, handler: Handler<KeysteadEvents[E]>): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler as Handler<never>);
    return () => this.off(event, handler);
  }

  off<E extends keyof KeysteadEvents>(event: E, handler: Handler<KeysteadEvents[E]>): void {
    this.handlers.get(event)?.delete(handler as Handler<never>);
  }

  private emit<E extends keyof KeysteadEvents>(event: E, payload: KeysteadEvents[E]): void {
    for (const h of [...(this.handlers.get(event) ?? [])]) {
      try {
        (h as Handler<KeysteadEvents[E]>)(payload);
      } catch {
        // listeners' failures are theirs
      }
    }
  }

  private setStatus(status: KeysteadStatus): void {
    if (status === this.status) return;
    this.status = status;
    this.emit("status", status);
    this.notifySession();
  }

  getStatus(): KeysteadStatus {
    return this.status;
  }

  /** The app as `/v1/app` describes it (after init). */
  getApp(): AppInfo {
    if (!this.app) throw new KeysteadError("not_initialized", "call init() first");
    return this.app;
  }

  /** Loads the app, restores a stored session (refreshing it if needed). Idempotent. */
  init(): Promise<KeysteadStatus> {
    this.initPromise ??= (async () => {
      this.setStatus("initializing");
      try {
        this.app = await this.api.getApp();
      } catch (e) {
        this.setStatus("error");
        this.initPromise = null;
        throw e;
      }
      const stored = this.restore();
      if (!stored) {
        this.setStatus("logged_out");
        return this.status;
      }
      this.api.setSession(stored);
      try {
        const me = await this.api.me();
        this.setStatus(statusOf(me.status));
        if (this.status === "ready") await this.afterLogin();
      } catch (e) {
        if (e instanceof KeysteadError && e.code === "unauthenticated") {
          this.api.setSession(null);
          this.setStatus("logged_out");
        } else {
          this.setStatus("error");
          this.emit("error", e instanceof KeysteadError ? e : new KeysteadError("internal", String(e)));
        }
      }
      return this.status;
    })();
    return this.initPromise;
  }

  private requireInit(): AppInfo {
    if (!this.app) throw new KeysteadError("not_initialized", "call init() first");
    return this.app;
  }

  private persist(session: Session | null): void {
    try {
      if (session) this.storage.setItem(this.storageKey, JSON.stringify(session));
      else this.storage.removeItem(this.storageKey);
    } catch {
      // storage full or blocked: the session lives in memory only
    }
  }

  private restore(): Session | null {
    try {
      const raw = this.storage.getItem(this.storageKey);
      const session = raw ? (JSON.parse(raw) as Session) : null;
      return session && typeof session.accessToken === "string" ? session : null;
    } catch {
      return null;
    }
  }

  private async afterLogin(): Promise<void> {
    const accounts = await this.api.getAccounts();
    this.emit("accountsChanged", accounts);
    await Promise.all([...this.providers.values()].map((p) => p.sessionStarted().catch(() => {})));
  }

  // --- the widget -----------------------------------------------------------------------

  private widgetUrl(): string {
    return this.options.widgetUrl ?? `${this.api.serverUrl}/widget/`;
  }

  /** The channel to the widget, mounting the widget's iframe on first use (browsers). */
  private channel(): WidgetChannel {
    if (!this.channelValue) {
      const win = this.options.window ?? (globalThis as unknown as { window?: KeysteadOptions["window"] }).window;
      const doc = win?.document;
      const origin = win?.location?.origin;
      if (!win || !doc || !origin) {
        throw new KeysteadError("widget_unavailable", "the widget needs a browser window; pass `channel` or `approver` elsewhere");
      }
      const host = mountWidgetFrame({ widgetUrl: this.widgetUrl(), appKey: this.options.appKey, parentOrigin: origin, document: doc });
      this.channelValue = new PostMessageChannel({ widgetUrl: this.widgetUrl(), window: win, host });
      this.wire(this.channelValue);
    }
    return this.channelValue;
  }

  private approver(): Approver {
    this.approverValue ??= new WidgetApprover(this.channel());
    return this.approverValue;
  }

  /** Logs the user in through the widget (OpenID), then exchanges the ID token for a session. */
  async loginWithUI(): Promise<KeysteadStatus> {
    const app = this.requireInit();
    const result = await this.channel().request("login", {
      appId: app.appId,
      appName: app.name,
      loginProviders: app.loginProviders,
    });
    let session: Session;
    if ("session" in result && result.session && typeof result.session.accessToken === "string") {
      // The widget's popup login (authorization code + PKCE through the server).
      session = result.session;
      this.api.setSession(session);
    } else if ("idToken" in result && typeof result.idToken === "string") {
      session = await this.api.loginWithIdToken(result.provider, result.idToken);
    } else {
      throw new KeysteadError("internal", "the widget answered login without a session or an ID token");
    }
    this.emit("login", { userId: session.user.id, email: session.user.email });
    this.setStatus(statusOf(session.status));
    if (this.status === "ready") await this.afterLogin();
    return this.status;
  }

  /**
   * Creates the user's wallet for this app: the user chooses a PIN in the widget, and the
   * widget alone opens and shows the recovery kit.
   */
  async register(): Promise<{ walletId: string; accounts: Account[] }> {
    const app = this.requireInit();
    const me = await this.api.me();
    if (me.status === "complete") throw new KeysteadError("wallet_exists", "the user already has a wallet");
    const approver = this.approver();
    const request = { purpose: "create_wallet" as const, appId: app.appId, userId: me.user.id };
    const created = await withApproval(approver, request, ({ pin, clientKey }) => this.api.createWallet({ pin, clientKey }));
    if (approver.reveal) await approver.reveal(request, "recoveryKit", created.recoveryKit);
    this.setStatus("ready");
    await this.afterLogin();
    return { walletId: created.walletId, accounts: created.accounts };
  }

  /** Opens the widget's own UI (accounts, settings); resolves when the user closes it. */
  async openWidget(view: "home" | "accounts" | "settings" = "home"): Promise<void> {
    this.requireInit();
    const accounts = this.status === "ready" ? await this.api.getAccounts() : [];
    await this.channel().request("open", {
      view,
      accounts: accounts.map(({ id, network, address }) => ({ id, network, address })),
    });
  }

  // --- wallet ---------------------------------------------------------------------------

  async getAccounts(): Promise<Account[]> {
    return this.api.getAccounts();
  }

  private async account(accountId?: string): Promise<Account> {
    const accounts = await this.api.getAccounts();
    const account = accountId ? accounts.find((a) => a.id === accountId) : accounts[0];
    if (!account) throw new KeysteadError(accountId ? "not_found" : "wallet_required", accountId ? "no such account" : "the user has no account");
    return account;
  }

  async getBalance(accountId?: string): Promise<Balance> {
    return this.api.getBalance((await this.account(accountId)).id);
  }

  private async ctx() {
    return { api: this.api, approver: this.approver(), appId: this.requireInit().appId };
  }

  /** Sends a transaction after the user approves it; resolves to `{id, hash, status}`. */
  async send(tx: TransactionRequest & { accountId?: string }): Promise<TxResponse> {
    const account = await this.account(tx.accountId);
    return transactionWithApproval(await this.ctx(), account, tx, { broadcast: true });
  }

  /** EIP-191 personal_sign over a UTF-8 message (or bytes with `encoding: "hex"`). */
  async signMessage(message: string | Uint8Array, options: { accountId?: string; encoding?: "utf8" | "hex" } = {}): Promise<string> {
    const account = await this.account(options.accountId);
    const encoding = message instanceof Uint8Array ? "hex" : (options.encoding ?? "utf8");
    return signMessageWithApproval(await this.ctx(), account, messageHex(message, encoding), encoding);
  }

  async signTypedData(typedData: TypedData, options: { accountId?: string } = {}): Promise<string> {
    const account = await this.account(options.accountId);
    return signTypedDataWithApproval(await this.ctx(), account, typedData);
  }

  /** Shows the wallet's mnemonic in the widget (never to this page). */
  async exportWallet(): Promise<void> {
    const app = this.requireInit();
    const me = await this.api.me();
    if (!me.walletId) throw new KeysteadError("wallet_required", "the user has no wallet");
    const approver = this.approver();
    const request = { purpose: "export" as const, appId: app.appId, walletId: me.walletId };
    const out = await withApproval(approver, request, ({ pin, clientKey }) => this.api.exportWallet({ pin, clientKey }));
    if (approver.reveal) await approver.reveal(request, "mnemonic", out.mnemonic);
  }

  /** Changes the PIN (current and new PIN entered in the widget). */
  async changePin(): Promise<void> {
    const app = this.requireInit();
    const me = await this.api.me();
    if (!me.walletId) throw new KeysteadError("wallet_required", "the user has no wallet");
    const request = { purpose: "change_pin" as const, appId: app.appId, walletId: me.walletId };
    await withApproval(this.approver(), request, ({ pin, newPin }) => this.api.changePin({ pin, newPin }));
  }

  /** Sets a new PIN with the recovery code (both entered in the widget). */
  async recover(): Promise<void> {
    const app = this.requireInit();
    const me = await this.api.me();
    if (!me.walletId) throw new KeysteadError("wallet_required", "the user has no wallet");
    const request = { purpose: "recover" as const, appId: app.appId, walletId: me.walletId };
    await withApproval(this.approver(), request, ({ recovery, newPin }) => this.api.recover({ recovery, newPin }));
  }

  async logout(): Promise<void> {
    try {
      await this.api.logout();
    } catch {
      // the local session is gone either way
    }
    this.endSession();
  }

  // --- EIP-1193 -------------------------------------------------------------------------

  /** The EIP-1193 provider starting on `network` (id or chain id; default the app's first). */
  getProvider(network?: string | number): KeysteadProvider {
    const app = this.requireInit();
    const networks: ProviderNetwork[] = app.networks
      .filter((n) => n.family === "evm")
      .map((n) => {
        const rpcUrl = this.options.networks?.[n.id]?.rpcUrl;
        return { id: n.id, chainId: n.chainId, name: n.name, ...(rpcUrl ? { rpcUrl } : {}) };
      });
    const start =
      network === undefined
        ? networks[0]
        : networks.find((n) => (typeof network === "number" ? n.chainId === network : n.id === network));
    if (!start) throw new KeysteadError("invalid_request", `the app has no EVM network ${JSON.stringify(network ?? "")}`);
    let provider = this.providers.get(start.id);
    if (!provider) {
      provider = new KeysteadProvider({
        api: this.api,
        approver: {
          // Resolved lazily: the widget is mounted only when an approval is needed.
          approve: (request, retry) => this.approver().approve(request, retry),
          complete: (request, outcome) => this.approver().complete?.(request, outcome),
        },
        networks,
        network: start.id,
        appId: app.appId,
        connect: async () => {
          if (this.status === "logged_out") await this.loginWithUI();
          if (this.status === "pin_required" || this.status === "register_required") await this.register();
        },
        ...(this.options.fetch ? { fetch: this.options.fetch } : {}),
      });
      this.providers.set(start.id, provider);
    }
    return provider;
  }
}

export default Keystead;
