// The SDK's side of the SDK ↔ widget channel: window.postMessage with exact origin checks
// in both directions. The protocol is in PROTOCOL.md; keep the two in step.
//
// Outgoing messages name the widget's exact origin as targetOrigin (never "*"). Incoming
// messages count only when their origin is the widget's origin AND their source is the
// widget's window; everything else is ignored without a word.

import { KeysteadError } from "./api.js";
import type { Session } from "./api.js";
import type { SealedValue } from "./crypto.js";
import {
  UserRejectedError,
  type ApprovalOutcome,
  type ApprovalRequest,
  type ApprovalResult,
  type ApprovalRetry,
  type Approver,
} from "./approval.js";
import { toHex } from "./bytes.js";
import { randomBytes } from "./crypto.js";

export const PROTOCOL = "keystead-widget";
export const PROTOCOL_VERSION = 1;

// --- message shapes (PROTOCOL.md) -----------------------------------------------------

export interface LoginRequest {
  appId: string;
  appName: string;
  loginProviders: Array<{ name: string; issuer: string }>;
}

/** What `login` answers: an ID token to exchange, or a session the server already issued. */
export type LoginResult = { provider: string; idToken: string } | { session: Session };

/** Requests the SDK sends and what the widget answers to each. */
export interface WidgetRequests {
  /**
   * Either an ID token for the SDK to exchange (`POST /v1/auth/id-token`), or a session the
   * server issued to the widget at the end of its popup login (`/v1/auth/oauth/*`).
   */
  login: { payload: LoginRequest; result: LoginResult };
  approve: {
    payload: { approvalId: string; request: ApprovalRequest; retry?: ApprovalRetry };
    result: ApprovalResult<ApprovalRequest>;
  };
  reveal: {
    payload: { approvalId: string; kind: "recoveryKit" | "mnemonic"; sealed: SealedValue };
    result: { acknowledged: true };
  };
  open: { payload: { view: "home" | "accounts" | "settings"; accounts?: Array<{ id: string; network: string; address: string }> }; result: { closed: true } };
}

/** One-way notices from the SDK. */
export interface WidgetNotices {
  "approval-complete": { approvalId: string; outcome: ApprovalOutcome };
  /**
   * The host's login state. While logged in it carries the SDK's current access token (never
   * the refresh token): sent on every status change and every new session (login, refresh
   * rotation). The widget takes the token only for a session of its own, for the same user.
   */
  session: {
    status: "logged_out" | "pin_required" | "register_required" | "complete";
    userId?: string;
    email?: string | null;
    accessToken?: string;
    expiresIn?: number;
  };
}

/** Events the widget sends unasked. */
export interface WidgetEvents {
  ready: { version: number };
  close: Record<string, never>;
  resize: { height: number };
  /** The user logged out in the widget (it already called `POST /v1/auth/logout`). */
  "logged-out": Record<string, never>;
  /**
   * One of the widget's own API calls was refused with 401 (`unauthenticated`: its access
   * token expired). The SDK refreshes (shared with its own refreshes) and answers with a
   * `session` notice carrying the new access token, or `logged_out` if the session is gone.
   */
  "session-expired": Record<string, never>;
}

export type WidgetRequestType = keyof WidgetRequests;

export interface RequestMessage {
  protocol: typeof PROTOCOL;
  version: number;
  kind: "request";
  id: string;
  type: string;
  payload: unknown;
}
export interface NoticeMessage {
  protocol: typeof PROTOCOL;
  version: number;
  kind: "notice";
  type: string;
  payload: unknown;
}
export interface ResponseMessage {
  protocol: typeof PROTOCOL;
  version: number;
  kind: "response";
  id: string;
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string; details?: Record<string, unknown> };
}
export interface EventMessage {
  protocol: typeof PROTOCOL;
  version: number;
  kind: "event";
  type: string;
  payload?: unknown;
}

// --- window abstractions (a real Window satisfies both; tests use fakes) --------------

export interface MessageTargetLike {
  postMessage(message: unknown, targetOrigin: string): void;
}

export interface MessageEventLike {
  data: unknown;
  origin: string;
  source: unknown;
}

export interface WindowLike {
  addEventListener(type: "message", listener: (event: MessageEventLike) => void): void;
  removeEventListener(type: "message", listener: (event: MessageEventLike) => void): void;
}

/** The widget's frame or popup, as the channel needs it. */
export interface WidgetHost {
  /** The widget's window (iframe contentWindow or popup); null until it exists. */
  target(): MessageTargetLike | null;
  /** Makes the widget visible (a UI request is pending). */
  show?(): void;
  /** Hides it (no UI request is pending). */
  hide?(): void;
  destroy?(): void;
}

export interface WidgetChannelOptions {
  /** The widget page URL; its origin is the only one messages go to and come from. */
  widgetUrl: string;
  /** The host page's window (listens for messages). */
  window: WindowLike;
  host: WidgetHost;
  /** How long to wait for the widget's `ready` (default 20 s). */
  readyTimeoutMs?: number;
  /** How long a user has to answer a request (default 10 min, the longest an envelope lives). */
  requestTimeoutMs?: number;
}

export interface WidgetChannel {
  readonly widgetOrigin: string;
  request<T extends WidgetRequestType>(type: T, payload: WidgetRequests[T]["payload"], options?: { timeoutMs?: number }): Promise<WidgetRequests[T]["result"]>;
  notify<T extends keyof WidgetNotices>(type: T, payload: WidgetNotices[T]): void;
  on<T extends keyof WidgetEvents>(type: T, handler: (payload: WidgetEvents[T]) => void): () => void;
  close(): void;
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
  ui: boolean;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null;
}

/** The exact origin of a URL (scheme://host[:port]); throws on opaque origins. */
export function exactOrigin(url: string): string {
  const origin = new URL(url).origin;
  if (!origin || origin === "null") throw new KeysteadError("invalid_request", "the widget URL has no origin");
  return origin;
}

export class PostMessageChannel implements WidgetChannel {
  readonly widgetOrigin: string;
  private readonly win: WindowLike;
  private readonly host: WidgetHost;
  private readonly requestTimeoutMs: number;
  private readonly pending = new Map<string, Pending>();
  private readonly handlers = new Map<string, Set<(payload: never) => void>>();
  private readonly ready: Promise<void>;
  private markReady!: () => void;
  private failReady!: (e: Error) => void;
  private isReady = false;
  private closed = false;
  private readonly listener = (event: MessageEventLike) => this.onMessage(event);

  constructor(options: WidgetChannelOptions) {
    this.widgetOrigin = exactOrigin(options.widgetUrl);
    this.win = options.window;
    this.host = options.host;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10 * 60 * 1000;
    this.ready = new Promise<void>((resolve, reject) => {
      this.markReady = resolve;
      this.failReady = reject;
    });
    this.ready.catch(() => {});
    const readyTimer = setTimeout(
      () => this.failReady(new KeysteadError("widget_unavailable", "the Keystead widget did not load")),
      options.readyTimeoutMs ?? 20_000,
    );
    this.ready.then(() => clearTimeout(readyTimer), () => clearTimeout(readyTimer));
    this.win.addEventListener("message", this.listener);
  }

  private onMessage(event: MessageEventLike): void {
    // Exact origin AND the widget's own window: anything else is ignored.
    if (this.closed || event.origin !== this.widgetOrigin) return;
    const target = this.host.target();
    if (target === null || event.source !== target) return;
    const msg = event.data;
    if (!isObject(msg) || msg.protocol !== PROTOCOL || msg.version !== PROTOCOL_VERSION) return;

    if (msg.kind === "response" && typeof msg.id === "string") {
      const pending = this.pending.get(msg.id);
      if (!pending) return;
      this.settle(msg.id);
      if (msg.ok === true) {
        pending.resolve(msg.result);
      } else {
        const err = isObject(msg.error) ? msg.error : {};
        const code = typeof err.code === "string" ? err.code : "internal";
        const message = typeof err.message === "string" ? err.message : "the widget refused the request";
        pending.reject(
          code === "user_rejected"
            ? new UserRejectedError(message)
            : new KeysteadError(code, message, isObject(err.details) ? (err.details as Record<string, unknown>) : {}),
        );
      }
      return;
    }
    if (msg.kind === "event" && typeof msg.type === "string") {
      if (msg.type === "ready" && !this.isReady) {
        this.isReady = true;
        this.markReady();
      }
      if (msg.type === "close") {
        // The user closed the widget: whatever it was asked is declined.
        for (const [id, p] of [...this.pending]) {
          if (!p.ui) continue;
          this.settle(id);
          p.reject(new UserRejectedError("the user closed the widget"));
        }
      }
      for (const handler of [...(this.handlers.get(msg.type) ?? [])]) {
        try {
          (handler as (p: unknown) => void)(msg.payload ?? {});
        } catch {
          // a handler's failure is its own
        }
      }
    }
  }

  private settle(id: string): void {
    const p = this.pending.get(id);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(id);
    if (![...this.pending.values()].some((x) => x.ui)) this.host.hide?.();
  }

  private post(message: RequestMessage | NoticeMessage): void {
    const target = this.host.target();
    if (!target) throw new KeysteadError("widget_unavailable", "the Keystead widget is not open");
    target.postMessage(message, this.widgetOrigin);
  }

  async request<T extends WidgetRequestType>(
    type: T,
    payload: WidgetRequests[T]["payload"],
    options: { timeoutMs?: number } = {},
  ): Promise<WidgetRequests[T]["result"]> {
    if (this.closed) throw new KeysteadError("widget_unavailable", "the widget channel is closed");
    await this.ready;
    const id = toHex(randomBytes(16));
    const timeoutMs = options.timeoutMs ?? this.requestTimeoutMs;
    const result = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.settle(id);
        reject(new KeysteadError("widget_timeout", `the widget did not answer "${type}" in time`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, ui: true });
    });
    this.host.show?.();
    try {
      this.post({ protocol: PROTOCOL, version: PROTOCOL_VERSION, kind: "request", id, type, payload });
    } catch (e) {
      const p = this.pending.get(id);
      this.settle(id);
      p?.reject(e as Error);
    }
    return result as Promise<WidgetRequests[T]["result"]>;
  }

  notify<T extends keyof WidgetNotices>(type: T, payload: WidgetNotices[T]): void {
    if (this.closed || !this.isReady) return;
    try {
      this.post({ protocol: PROTOCOL, version: PROTOCOL_VERSION, kind: "notice", type, payload });
    } catch {
      // notices are best effort
    }
  }

  on<T extends keyof WidgetEvents>(type: T, handler: (payload: WidgetEvents[T]) => void): () => void {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(handler as (payload: never) => void);
    return () => set.delete(handler as (payload: never) => void);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.win.removeEventListener("message", this.listener);
    for (const [id, p] of [...this.pending]) {
      this.settle(id);
      p.reject(new KeysteadError("widget_unavailable", "the widget channel was closed"));
    }
    this.failReady(new KeysteadError("widget_unavailable", "the widget channel was closed"));
    this.host.destroy?.();
  }
}

/** An Approver backed by the widget: every approval is a request over the channel. */
export class WidgetApprover implements Approver {
  private readonly ids = new WeakMap<ApprovalRequest, string>();
  constructor(private readonly channel: WidgetChannel) {}

  /** The id the widget knows this approval by (stable across retries). */
  approvalId(request: ApprovalRequest): string {
    let id = this.ids.get(request);
    if (!id) {
      id = toHex(randomBytes(16));
      this.ids.set(request, id);
    }
    return id;
  }

  async approve<R extends ApprovalRequest>(request: R, retry?: ApprovalRetry): Promise<ApprovalResult<R>> {
    const result = await this.channel.request("approve", {
      approvalId: this.approvalId(request),
      request,
      ...(retry ? { retry } : {}),
    });
    return result as ApprovalResult<R>;
  }

  complete(request: ApprovalRequest, outcome: ApprovalOutcome): void {
    this.channel.notify("approval-complete", { approvalId: this.approvalId(request), outcome });
  }

  async reveal(request: ApprovalRequest, kind: "recoveryKit" | "mnemonic", sealed: SealedValue): Promise<void> {
    await this.channel.request("reveal", { approvalId: this.approvalId(request), kind, sealed });
  }
}

// --- the real frame (browsers only) ----------------------------------------------------

export interface FrameOptions {
  widgetUrl: string;
  appKey: string;
  /** The host page's origin, which the widget will accept messages from (exactly). */
  parentOrigin: string;
  document: Document;
}

/**
 * Mounts the widget in a hidden iframe. Its URL carries the app key and the host's exact
 * origin (`?appKey=...&parentOrigin=...`) so the widget knows whom to talk to.
 */
export function mountWidgetFrame(options: FrameOptions): WidgetHost {
  const url = new URL(options.widgetUrl);
  url.searchParams.set("appKey", options.appKey);
  url.searchParams.set("parentOrigin", options.parentOrigin);
  const frame = options.document.createElement("iframe");
  frame.src = url.toString();
  frame.title = "Keystead wallet";
  frame.setAttribute("allow", "publickey-credentials-get; clipboard-write");
  Object.assign(frame.style, {
    position: "fixed",
    inset: "0",
    width: "100%",
    height: "100%",
    border: "0",
    zIndex: "2147483647",
    display: "none",
    background: "transparent",
  });
  options.document.body.appendChild(frame);
  return {
    target: () => frame.contentWindow,
    show: () => {
      frame.style.display = "block";
    },
    hide: () => {
      frame.style.display = "none";
    },
    destroy: () => frame.remove(),
  };
}
