// A typed fetch client for the Keystead HTTP API (API.md). Request and response types come
// from the server's OpenAPI document (src/generated/openapi.d.ts, `npm run gen:api`).

import type { components } from "./generated/openapi.js";

export type Schemas = components["schemas"];
export type ApiErrorCode = Schemas["ErrorCode"];
export type Session = Schemas["SessionResponse"];
export type Account = Schemas["Account"];
export type AppInfo = Schemas["AppInfo"];
export type NetworkInfo = Schemas["NetworkInfo"];
export type Intent = Schemas["Intent"];
export type Balance = Schemas["BalanceResponse"];
export type TxResponse = Schemas["TxResponse"];
export type Me = Schemas["MeResponse"];
export type Attestation = Schemas["AttestationResponse"];
export type PrepareResponse = Schemas["PrepareResponse"];

/**
 * Codes a `KeysteadError` carries: the server's error codes, plus a few the SDK raises
 * itself (`network_error`, `bad_response`, `not_initialized`, `user_rejected`,
 * `widget_timeout`, `widget_unavailable`, `attestation_failed`, `intent_mismatch`).
 */
export type KeysteadErrorCode =
  | ApiErrorCode
  | "network_error"
  | "bad_response"
  | "not_initialized"
  | "user_rejected"
  | "widget_timeout"
  | "widget_unavailable"
  | "attestation_failed"
  | "intent_mismatch"
  | (string & {});

/** An API error object `{"error": {"code", "message", "details"}}`, or an SDK failure. */
export class KeysteadError extends Error {
  readonly code: KeysteadErrorCode;
  readonly details: Record<string, unknown>;
  /** HTTP status for server errors; undefined for SDK-side failures. */
  readonly status: number | undefined;

  constructor(code: KeysteadErrorCode, message: string, details: Record<string, unknown> = {}, status?: number) {
    super(message);
    this.name = "KeysteadError";
    this.code = code;
    this.details = details;
    this.status = status;
  }

  toJSON(): { code: string; message: string; details: Record<string, unknown> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface ApiClientOptions {
  serverUrl: string;
  appKey: string;
  /** Defaults to the global fetch. */
  fetch?: FetchLike;
  /** Called whenever the session changes (login, refresh rotation, logout, revocation). */
  onSessionChange?: (session: Session | null) => void;
  /**
   * For a client that does not hold the refresh token (the widget, PROTOCOL.md §3
   * `session-expired`): called instead of `POST /v1/auth/refresh` when an authenticated
   * call is refused with 401; resolves with the session to retry with (once), or rejects.
   * Shared like a refresh: concurrent refusals wait for one call.
   */
  renewSession?: (expired: Session) => Promise<Session>;
}

interface RequestOptions {
  body?: unknown;
  auth?: boolean;
  headers?: Record<string, string>;
  /** Retry once after refreshing an expired access token (default true for auth calls). */
  refresh?: boolean;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export class ApiClient {
  readonly serverUrl: string;
  readonly appKey: string;
  private readonly fetchImpl: FetchLike;
  private readonly onSessionChange: ((session: Session | null) => void) | undefined;
  private readonly renewSession: ((expired: Session) => Promise<Session>) | undefined;
  private currentSession: Session | null = null;
  private refreshing: Promise<Session> | null = null;

  constructor(options: ApiClientOptions) {
    if (!options.appKey) throw new KeysteadError("invalid_request", "appKey is required");
    let url: URL;
    try {
      url = new URL(options.serverUrl);
    } catch {
      throw new KeysteadError("invalid_request", "serverUrl must be an absolute URL");
    }
    this.serverUrl = url.toString().replace(/\/+$/, "");
    this.appKey = options.appKey;
    const f = options.fetch ?? (globalThis.fetch as FetchLike | undefined);
    if (!f) throw new KeysteadError("invalid_request", "no fetch implementation available");
    this.fetchImpl = (input, init) => f(input, init);
    this.onSessionChange = options.onSessionChange;
    this.renewSession = options.renewSession;
  }

  get session(): Session | null {
    return this.currentSession;
  }

  /** Sets (or clears) the session the client authenticates with. */
  setSession(session: Session | null): void {
    this.currentSession = session;
    this.onSessionChange?.(session);
  }

  isAuthenticated(): boolean {
    return this.currentSession !== null;
  }

  private async send<T>(method: string, path: string, options: RequestOptions = {}): Promise<{ status: number; body: T }> {
    const auth = options.auth ?? true;
    const headers: Record<string, string> = { Accept: "application/json", "X-App-Key": this.appKey, ...options.headers };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    const session = this.currentSession;
    if (auth) {
      if (!session) throw new KeysteadError("unauthenticated", "not logged in");
      headers.Authorization = `Bearer ${session.accessToken}`;
    }
    let response: Response;
    try {
      response = await this.fetchImpl(this.serverUrl + path, {
        method,
        headers,
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
      });
    } catch (e) {
      throw new KeysteadError("network_error", `cannot reach the Keystead server: ${(e as Error)?.message ?? "fetch failed"}`);
    }
    if (response.status === 401 && auth && (options.refresh ?? true) && session && (session.refreshToken || this.renewSession)) {
      // The server refused before doing anything (the `Authed` extractor runs before the
      // handler reads the body), so a retry, with the same body and headers (one
      // Idempotency-Key, one unopened PIN envelope), cannot act twice.
      await this.refresh(session);
      return this.send<T>(method, path, { ...options, refresh: false });
    }
    if (response.status === 204) return { status: 204, body: undefined as T };
    const text = await response.text();
    let parsed: unknown = undefined;
    if (text.length > 0) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
    }
    if (!response.ok) throw errorFromResponse(response.status, parsed);
    if (parsed === undefined) throw new KeysteadError("bad_response", `the server answered ${response.status} without JSON`, {}, response.status);
    return { status: response.status, body: parsed as T };
  }

  private async refresh(expired: Session): Promise<Session> {
    if (this.refreshing) return this.refreshing;
    const current = this.currentSession;
    if (!current) throw new KeysteadError("unauthenticated", "not logged in");
    // Replaced since the refused call started (a refresh finished meanwhile): retry with the
    // new session. Spending the old refresh token again would count as reuse and revoke it.
    if (current.accessToken !== expired.accessToken) return current;
    const renew = this.renewSession;
    if (renew) {
      this.refreshing = (async () => {
        try {
          const body = await renew(current);
          this.setSession(body);
          return body;
        } finally {
          this.refreshing = null;
        }
      })();
    } else {
      this.refreshing = (async () => {
        try {
          const { body } = await this.send<Session>("POST", "/v1/auth/refresh", {
            auth: false,
            body: { refreshToken: current.refreshToken } satisfies Schemas["RefreshRequest"],
          });
          this.setSession(body);
          return body;
        } catch (e) {
          if (e instanceof KeysteadError && e.code === "unauthenticated") this.setSession(null);
          throw e;
        } finally {
          this.refreshing = null;
        }
      })();
    }
    return this.refreshing;
  }

  // --- public endpoints -----------------------------------------------------------------

  async getApp(): Promise<AppInfo> {
    return (await this.send<AppInfo>("GET", "/v1/app", { auth: false })).body;
  }

  async getAttestation(): Promise<Attestation> {
    return (await this.send<Attestation>("GET", "/v1/enclave/attestation", { auth: false })).body;
  }

  // --- sessions -------------------------------------------------------------------------

  async loginWithIdToken(provider: string, idToken: string): Promise<Session> {
    const body: Schemas["IdTokenLogin"] = { provider, idToken };
    const session = (await this.send<Session>("POST", "/v1/auth/id-token", { auth: false, body })).body;
    this.setSession(session);
    return session;
  }

  /** Rotates the refresh token now. */
  async refreshSession(): Promise<Session> {
    if (!this.currentSession) throw new KeysteadError("unauthenticated", "not logged in");
    return this.refresh(this.currentSession);
  }

  /** Revokes the session on the server (best effort) and forgets it locally. */
  async logout(): Promise<void> {
    try {
      // An expired access token is refreshed first: otherwise the server session would
      // outlive the logout until its refresh token expired.
      if (this.currentSession) await this.send<void>("POST", "/v1/auth/logout");
    } finally {
      this.setSession(null);
    }
  }

  async me(): Promise<Me> {
    return (await this.send<Me>("GET", "/v1/me")).body;
  }

  // --- wallet ---------------------------------------------------------------------------

  async createWallet(body: Schemas["CreateWalletRequest"]): Promise<Schemas["CreateWalletResponse"]> {
    return (await this.send<Schemas["CreateWalletResponse"]>("POST", "/v1/wallet", { body })).body;
  }

  async changePin(body: Schemas["ChangePinBody"]): Promise<void> {
    await this.send<void>("POST", "/v1/wallet/pin", { body });
  }

  async recover(body: Schemas["RecoverBody"]): Promise<void> {
    await this.send<void>("POST", "/v1/wallet/recover", { body });
  }

  async exportWallet(body: Schemas["ExportBody"]): Promise<Schemas["ExportResponse"]> {
    return (await this.send<Schemas["ExportResponse"]>("POST", "/v1/wallet/export", { body })).body;
  }

  async getAccounts(): Promise<Account[]> {
    return (await this.send<Schemas["AccountsResponse"]>("GET", "/v1/accounts")).body.accounts;
  }

  async getBalance(accountId: string): Promise<Balance> {
    return (await this.send<Balance>("GET", `/v1/accounts/${encodeURIComponent(accountId)}/balance`)).body;
  }

  // --- signing --------------------------------------------------------------------------

  async signMessage(body: Schemas["SignMessageBody"]): Promise<string> {
    return (await this.send<Schemas["SignatureResponse"]>("POST", "/v1/sign/message", { body })).body.signature;
  }

  async signTypedData(body: Schemas["SignTypedDataBody"]): Promise<string> {
    return (await this.send<Schemas["SignatureResponse"]>("POST", "/v1/sign/typed-data", { body })).body.signature;
  }

  async prepareTx(body: Schemas["PrepareBody"]): Promise<PrepareResponse> {
    return (await this.send<PrepareResponse>("POST", "/v1/tx/prepare", { body })).body;
  }

  async signTx(body: Schemas["SignTxBody"]): Promise<Schemas["SignedTxResponse"]> {
    return (await this.send<Schemas["SignedTxResponse"]>("POST", "/v1/tx/sign", { body })).body;
  }

  /** Broadcasts; the same `idempotencyKey` with the same body never broadcasts twice. */
  async sendTx(body: Schemas["SignTxBody"], idempotencyKey?: string): Promise<TxResponse> {
    return (
      await this.send<TxResponse>("POST", "/v1/tx/send", {
        body,
        ...(idempotencyKey ? { headers: { "Idempotency-Key": idempotencyKey } } : {}),
      })
    ).body;
  }

  async getTx(id: string): Promise<TxResponse> {
    return (await this.send<TxResponse>("GET", `/v1/tx/${encodeURIComponent(id)}`)).body;
  }
}

/** Maps an HTTP error answer to a `KeysteadError` with the server's code and details. */
export function errorFromResponse(status: number, body: unknown): KeysteadError {
  if (isObject(body) && isObject(body.error) && typeof body.error.code === "string") {
    const e = body.error;
    return new KeysteadError(
      e.code as string,
      typeof e.message === "string" ? e.message : `HTTP ${status}`,
      isObject(e.details) ? e.details : {},
      status,
    );
  }
  const code: KeysteadErrorCode =
    status === 401 ? "unauthenticated" : status === 404 ? "not_found" : status === 429 ? "rate_limited" : status >= 500 ? "internal" : "bad_response";
  return new KeysteadError(code, `the server answered HTTP ${status}`, {}, status);
}
