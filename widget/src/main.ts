// Keystead's widget: the wallet's own origin, in an iframe the SDK mounts. It implements the
// widget side of sdk/js/PROTOCOL.md: sign-in (popup, authorization code + PKCE through the
// server), PIN entry and approvals (attestation checked here, envelopes sealed here), the
// recovery code and mnemonic shown once, and a small home/settings view.
//
// PINs, recovery codes and mnemonics live only in input elements and local variables for as
// long as needed; nothing here logs them, and no error message carries them.

import { getAddress, isAddress } from "viem";
import {
  attestationPolicyFromConfig,
  checkNewPin,
  generateClientKeyPair,
  operationDigest,
  openMnemonic,
  openRecoveryKit,
  sealPinEnvelope,
  verifyAttestation,
  type AttestationPolicy,
  type AttestationResponse,
  type ClientKeyPair,
  type Operation,
  type SealedValue,
  type TypedData,
  type VerifiedAttestation,
} from "../../sdk/js/src/crypto.js";
import { operationsForApproval, type ApprovalRequest, type ApprovalRetry } from "../../sdk/js/src/approval.js";
import { PROTOCOL, PROTOCOL_VERSION } from "../../sdk/js/src/channel.js";
import { ApiClient, KeysteadError, type Account, type AppInfo, type PrepareResponse, type Session, type TxResponse } from "../../sdk/js/src/api.js";
import { dl, formatBalance, formatUnits, h, parseUnits, row } from "./dom.js";
import { getLanguage, pickLanguage, setLanguage, t, type Key } from "./i18n.js";
import { qrCanvas } from "./qr.js";

// --- state --------------------------------------------------------------------------------

const params = new URLSearchParams(location.search);
const appKey = params.get("appKey") ?? "";
const parentOrigin = params.get("parentOrigin") ?? "";
const root = document.getElementById("app") as HTMLElement;

let app: (AppInfo & { origins?: string[] }) | null = null;
/** What attestation this widget accepts: its own config.json, never the host page's say. */
let policy: AttestationPolicy = { accept: "nitro" };
/**
 * The session of this widget's own popup login, kept in memory only (balances, send,
 * settings), without its refresh token: the SDK alone refreshes (PROTOCOL.md §3
 * `session-expired`, §5 `session`), and the access token is replaced from its notices.
 */
let session: Session | null = null;
/** The API client on `session` (one, so that a token replaced by a notice serves every flow). */
let client: ApiClient | null = null;
/** A `session-expired` sent to the SDK, waiting for its `session` notice. */
let renewal: { resolve(s: Session): void; reject(e: Error): void; timer: ReturnType<typeof setTimeout> } | null = null;
/** How long to wait for the SDK's new access token before the action fails as expired. */
const RENEW_TIMEOUT_MS = 10_000;
/** One-time client keys by approvalId, for `reveal`. */
const clientKeys = new Map<string, ClientKeyPair>();

interface Incoming {
  id: string;
  type: string;
  payload: Record<string, unknown>;
}
const queue: Incoming[] = [];
let current: Incoming | null = null;
/** The approval whose outcome we are waiting for (after answering `approve`). */
let waitingFor: string | null = null;
let loginPopup: Window | null = null;
let loginPoll: ReturnType<typeof setInterval> | null = null;
/** Re-renders the current screen after a language switch. */
let rerender: (() => void) | null = null;

// --- the channel ------------------------------------------------------------------------

function post(message: Record<string, unknown>): void {
  window.parent.postMessage({ protocol: PROTOCOL, version: PROTOCOL_VERSION, ...message }, parentOrigin);
}

function respond(id: string, result: unknown): void {
  post({ kind: "response", id, ok: true, result });
  finish(id);
}

function respondError(id: string, code: string, message: string, details?: Record<string, unknown>): void {
  post({ kind: "response", id, ok: false, error: { code, message, ...(details ? { details } : {}) } });
  finish(id);
}

function finish(id: string): void {
  if (current?.id === id) current = null;
  next();
}

function next(): void {
  if (current) return;
  const item = queue.shift();
  if (!item) {
    if (!waitingFor) idle();
    return;
  }
  current = item;
  void handle(item).catch((e) => {
    if (current?.id === item.id) respondError(item.id, "internal", safeMessage(e));
  });
}

function safeMessage(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.slice(0, 300);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function onMessage(event: MessageEvent): void {
  const data = event.data;
  // The login popup's result: only from our own origin and from the popup we opened.
  if (isObject(data) && data.protocol === "keystead-oauth") {
    if (event.origin === location.origin && loginPopup !== null && event.source === loginPopup) onOAuthResult(data);
    return;
  }
  // The host: its exact (checked) origin and the parent window only; anything else is dropped.
  if (event.origin !== parentOrigin || event.source !== window.parent) return;
  if (!isObject(data) || data.protocol !== PROTOCOL || data.version !== PROTOCOL_VERSION) return;
  if (data.kind === "request" && typeof data.id === "string" && /^[0-9a-f]{32}$/.test(data.id) && typeof data.type === "string") {
    const payload = isObject(data.payload) ? data.payload : {};
    if (!["login", "approve", "reveal", "open"].includes(data.type)) {
      post({ kind: "response", id: data.id, ok: false, error: { code: "invalid_request", message: "unknown request type" } });
      return;
    }
    const item = { id: data.id, type: data.type, payload };
    // A retry of the approval we wait on replaces the "working" screen at once.
    queue.push(item);
    next();
  } else if (data.kind === "notice" && typeof data.type === "string") {
    onNotice(data.type, isObject(data.payload) ? data.payload : {});
  }
}

function onNotice(type: string, payload: Record<string, unknown>): void {
  if (type === "approval-complete" && payload.approvalId === waitingFor) {
    waitingFor = null;
    const outcome = isObject(payload.outcome) ? payload.outcome : {};
    if (outcome.ok !== true && isObject(outcome.error)) {
      const err = outcome.error as { code?: string; message?: string; details?: Record<string, unknown> };
      if (!current) showOutcomeError(err);
      return;
    }
    if (!current) next();
  } else if (type === "session") {
    if (payload.status === "logged_out") {
      forgetSession();
      return;
    }
    // A new access token (the SDK logged in again or rotated its session). Taken only for a
    // session this widget holds itself (its popup login), of the same user: the widget never
    // adopts a session it did not create.
    const token = payload.accessToken;
    if (!session || payload.userId !== session.user.id || typeof token !== "string" || !token || token === session.accessToken) return;
    const status = payload.status === "complete" || payload.status === "pin_required" || payload.status === "register_required" ? payload.status : session.status;
    const expiresIn = typeof payload.expiresIn === "number" && Number.isFinite(payload.expiresIn) ? payload.expiresIn : session.expiresIn;
    session = { ...session, accessToken: token, expiresIn, status };
    client?.setSession(session);
    settleRenewal(session);
  }
}

// --- screens ------------------------------------------------------------------------------

function render(title: string, body: Node[], options: { onClose?: () => void; banner?: boolean } = {}, redo?: () => void): void {
  rerender = redo ?? null;
  const closeButton = options.onClose
    ? h("button", { type: "button", class: "icon", "aria-label": t("close"), onclick: options.onClose }, "×")
    : null;
  const langButton = h(
    "button",
    {
      type: "button",
      class: "link",
      "aria-label": t("languageLabel"),
      onclick: () => {
        setLanguage(getLanguage() === "en" ? "ko" : "en");
        rerender?.();
      },
    },
    t("language"),
  );
  const card = h(
    "section",
    { class: "card", role: "dialog", "aria-modal": "true", "aria-labelledby": "title" },
    h("header", {}, h("h1", { id: "title" }, title), h("div", { class: "tools" }, langButton, closeButton)),
    options.banner ? h("p", { class: "banner", role: "alert" }, t("devBanner")) : null,
    ...body,
  );
  root.replaceChildren(card);
  if (options.onClose) {
    card.addEventListener("keydown", (e) => {
      if (e.key === "Escape") options.onClose?.();
    });
  }
  const focus = card.querySelector<HTMLElement>("[autofocus], input, button.primary") ?? card;
  // A card with a warning (e.g. an unknown token, an unlimited allowance) opens at its top,
  // so that focusing the PIN field does not scroll the warning out of sight.
  focus.focus(card.querySelector(".alert") ? { preventScroll: true } : undefined);
  post({ kind: "event", type: "resize", payload: { height: Math.ceil(document.body.scrollHeight) } });
}

function idle(): void {
  rerender = null;
  root.replaceChildren();
}

function fatal(message: string): void {
  rerender = null;
  root.replaceChildren(h("section", { class: "card" }, h("p", { class: "error", role: "alert" }, message)));
}

function working(): void {
  render(t("working"), [h("p", { class: "spinner", role: "status" }, t("working"))], {}, working);
}

function showOutcomeError(err: { code?: string; message?: string; details?: Record<string, unknown> }): void {
  const show = () =>
    render(t("title"), [h("p", { class: "error", role: "alert" }, describeError(err)), h("div", { class: "actions" }, h("button", { type: "button", class: "primary", onclick: () => { idle(); next(); } }, t("close")))], {}, show);
  show();
}

function duration(seconds: number): string {
  return seconds >= 120 ? t("minutes", { n: Math.ceil(seconds / 60) }) : t("seconds", { n: seconds });
}

function describeError(err: { code?: string; message?: string; details?: Record<string, unknown> }): string {
  const d = err.details ?? {};
  switch (err.code) {
    case "wrong_pin": {
      const n = Number(d.remainingTries);
      if (!Number.isFinite(n)) return t("wrongPin", { n: "?" });
      return n === 1 ? t("wrongPinOne") : t("wrongPin", { n });
    }
    case "wallet_locked": {
      const s = Number(d.retryAfter);
      return Number.isFinite(s) && s > 0 ? t("locked", { time: duration(s) }) : t("lockedNoTime");
    }
    case "weak_pin":
      return typeof d.rule === "string" && `weak_${d.rule}` in { weak_wrong_length: 1, weak_not_digits: 1, weak_repeated: 1, weak_sequential: 1 }
        ? t(`weak_${d.rule}` as Key)
        : t("weakPin");
    case "wrong_recovery_code":
      return t("wrongRecoveryCode");
    case "insufficient_funds":
      return t("insufficientFunds");
    case "unauthenticated":
      return t("sessionExpired");
    case "envelope_rejected":
      return d.reason === "undecryptable" ? t("enclaveRestarted") : t("envelopeExpired");
    default:
      return t("failed", { message: err.message ?? err.code ?? "?" });
  }
}

// --- PIN entry ----------------------------------------------------------------------------

/** A labelled PIN field with an on-screen pad; resolves with the PIN on submit. */
function pinForm(submitLabel: string, onSubmit: (pin: string) => void, options: { error?: string; hint?: string } = {}): HTMLFormElement {
  const input = h("input", {
    id: "pin",
    name: "pin",
    type: "password",
    inputmode: "numeric",
    autocomplete: "off",
    maxlength: 6,
    pattern: "[0-9]{6}",
    required: true,
    "aria-describedby": "pin-status",
    autofocus: true,
  });
  const status = h("p", { id: "pin-status", class: "muted", "aria-live": "polite" }, t("pinEntered", { count: 0 }));
  const update = () => {
    input.value = input.value.replace(/\D/g, "").slice(0, 6);
    status.textContent = t("pinEntered", { count: input.value.length });
    dots.replaceChildren(...Array.from({ length: 6 }, (_, i) => h("span", { class: i < input.value.length ? "dot on" : "dot" })));
  };
  const dots = h("div", { class: "dots", "aria-hidden": "true" });
  input.addEventListener("input", update);
  const key = (label: string, aria: string, fn: () => void, cls = "") => h("button", { type: "button", class: `key ${cls}`, "aria-label": aria, onclick: () => { fn(); update(); input.focus(); } }, label);
  const digits = ["1", "2", "3", "4", "5", "6", "7", "8", "9"].map((d) => key(d, t("pinDigit", { digit: d }), () => { if (input.value.length < 6) input.value += d; }));
  const pad = h(
    "div",
    { class: "pad", role: "group", "aria-label": t("pinPad") },
    ...digits,
    key("C", t("pinClear"), () => { input.value = ""; }, "fn"),
    key("0", t("pinDigit", { digit: "0" }), () => { if (input.value.length < 6) input.value += "0"; }),
    key("⌫", t("pinBackspace"), () => { input.value = input.value.slice(0, -1); }, "fn"),
  );
  const form = h(
    "form",
    { class: "pin", novalidate: true },
    options.hint ? h("p", { class: "muted" }, options.hint) : null,
    options.error ? h("p", { class: "error", role: "alert", id: "pin-error" }, options.error) : null,
    h("label", { for: "pin" }, t("pinLabel")),
    input,
    dots,
    status,
    pad,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, submitLabel)),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const pin = input.value;
    if (!/^[0-9]{6}$/.test(pin)) {
      status.textContent = t("weak_wrong_length");
      input.focus();
      return;
    }
    input.value = "";
    onSubmit(pin);
  });
  update();
  return form;
}

// --- attestation --------------------------------------------------------------------------

async function attest(): Promise<VerifiedAttestation> {
  const response = await fetch(`${location.origin}/v1/enclave/attestation`, { headers: { "X-App-Key": appKey, Accept: "application/json" } });
  if (!response.ok) throw new Error(`attestation: HTTP ${response.status}`);
  return verifyAttestation((await response.json()) as AttestationResponse, policy);
}

// --- requests -----------------------------------------------------------------------------

async function handle(item: Incoming): Promise<void> {
  switch (item.type) {
    case "login":
      return login(item);
    case "approve":
      return approve(item);
    case "reveal":
      return reveal(item);
    case "open":
      return openView(item);
  }
}

function cancel(item: Incoming): void {
  if (item.type === "open") respond(item.id, { closed: true });
  else respondError(item.id, "user_rejected", "the user declined");
}

// login ------------------------------------------------------------------------------------

function login(item: Incoming): void {
  const providers = Array.isArray(item.payload.loginProviders) ? (item.payload.loginProviders as Array<{ name: string }>) : [];
  const appName = typeof item.payload.appName === "string" ? item.payload.appName : (app?.name ?? "");
  let note: { text: Key; vars?: Record<string, string> } | null = null;
  const show = () =>
    render(
      t("signInTitle", { app: appName }),
      [
        note ? h("p", { class: note.text === "signInWaiting" ? "muted" : "error", role: "status" }, t(note.text, note.vars)) : null,
        h(
          "div",
          { class: "providers" },
          ...providers.map((p) =>
            h("button", { type: "button", class: "primary provider", "data-provider": p.name, onclick: () => start(p.name) }, t("signInWith", { provider: p.name })),
          ),
        ),
      ].filter(Boolean) as Node[],
      { onClose: () => { stopPopup(); cancel(item); } },
      show,
    );
  const start = (provider: string) => {
    stopPopup();
    const url = new URL("/v1/auth/oauth/start", location.origin);
    url.search = new URLSearchParams({ appKey, provider, origin: location.origin }).toString();
    const popup = window.open(url.toString(), "keystead-login", "popup,width=480,height=680");
    if (!popup) {
      note = { text: "signInPopupBlocked" };
      show();
      return;
    }
    loginPopup = popup;
    note = { text: "signInWaiting" };
    show();
    loginPoll = setInterval(() => {
      if (popup.closed && loginPopup === popup) {
        if (loginPoll) clearInterval(loginPoll);
        loginPoll = null;
        // The result page posts its message and then closes: the message may still be on
        // its way when the window is seen closed. Only a popup closed without one cancels.
        setTimeout(() => {
          if (loginPopup !== popup) return;
          stopPopup();
          if (current?.id === item.id) {
            note = { text: "signInCancelled" };
            show();
          }
        }, 1000);
      }
    }, 400);
  };
  onOAuthResult = (data) => {
    stopPopup();
    if (current?.id !== item.id) return;
    if (data.ok === true && isObject(data.session) && typeof data.session.accessToken === "string") {
      // The SDK gets the whole session and owns its refresh token; the widget keeps the rest.
      startSession({ ...(data.session as unknown as Session), refreshToken: "" });
      respond(item.id, { session: data.session });
    } else {
      const err = isObject(data.error) ? data.error : {};
      note = { text: "signInFailed", vars: { message: String(err.message ?? err.code ?? "?").slice(0, 200) } };
      show();
    }
  };
  show();
}

let onOAuthResult: (data: Record<string, unknown>) => void = () => {};

function stopPopup(): void {
  if (loginPoll) clearInterval(loginPoll);
  loginPoll = null;
  loginPopup = null;
}

// approve ----------------------------------------------------------------------------------

/** The operator's network with this id, from the widget's own `/v1/app`. */
function networkById(id: string): AppInfo["networks"][number] | undefined {
  return app?.networks.find((x) => x.id === id);
}

function networkLabel(id: string): string {
  const n = networkById(id);
  return n ? `${n.name} (${n.chainId})` : id;
}

function nativeOf(id: string): { symbol: string; decimals: number } {
  const n = networkById(id);
  return { symbol: n?.symbol ?? "ETH", decimals: n?.decimals ?? 18 };
}

function mono(text: string): HTMLElement {
  return h("code", { class: "mono" }, text);
}

function utf8OrHex(hex: string): string {
  const bytes = new Uint8Array((hex.slice(2).match(/../g) ?? []).map((b) => parseInt(b, 16)));
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return hex;
  }
}

function valueText(v: unknown): string {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return String(v);
  return JSON.stringify(v);
}

/** The typed data's fields, following its types (structs nested, arrays listed). */
function typedFields(types: TypedData["types"], type: string, value: unknown, depth = 0): Node {
  const arr = /^(.*)\[\d*\]$/.exec(type);
  if (arr && Array.isArray(value)) {
    return h("ol", { class: "fields" }, ...value.map((v) => h("li", {}, typedFields(types, arr[1]!, v, depth + 1))));
  }
  const fields = types[type];
  if (fields && isObject(value) && depth < 8) {
    return h(
      "dl",
      { class: "fields" },
      ...fields.flatMap((f) => [h("dt", {}, `${f.name} `, h("span", { class: "muted" }, f.type)), h("dd", {}, typedFields(types, f.type, value[f.name], depth + 1))]),
    );
  }
  return mono(valueText(value));
}

/** 2^256 - 1: the allowance dApps ask for as "unlimited". */
const MAX_UINT256 = (1n << 256n) - 1n;

/**
 * ERC-20 `transfer(address,uint256)` (0xa9059cbb) or `approve(address,uint256)` (0x095ea7b3)
 * call data, decoded (exactly two words, a clean address); null for anything else.
 */
function erc20Call(data: string): { kind: "transfer" | "approve"; address: string; amount: bigint } | null {
  const d = data.toLowerCase();
  const kind = d.startsWith("0xa9059cbb") ? "transfer" : d.startsWith("0x095ea7b3") ? "approve" : null;
  if (!kind || d.length !== 10 + 128 || !/^0x[0-9a-f]*$/.test(d)) return null;
  const word1 = d.slice(10, 74);
  if (!/^0{24}/.test(word1)) return null;
  try {
    return { kind, address: getAddress("0x" + word1.slice(24)), amount: BigInt("0x" + d.slice(74)) };
  } catch {
    return null;
  }
}

/**
 * The operator's listing of `contract` on the intent's network, from the widget's own
 * `/v1/app` (never from the host's payload); undefined when it is not listed there, or when
 * the intent's chain id is not that network's.
 */
function listedToken(network: string, chainId: number, contract: string): { contract: string; symbol: string; decimals: number } | undefined {
  const n = networkById(network);
  const c = contract.toLowerCase();
  return (n?.chainId === chainId ? n.tokens : []).find((tk) => tk.contract.toLowerCase() === c);
}

/** The rows (and warnings) for an ERC-20 `transfer` or `approve`. */
function erc20Rows(call: NonNullable<ReturnType<typeof erc20Call>>, contract: string, token: ReturnType<typeof listedToken>, broadcast: boolean): { lead: Node[]; rows: HTMLElement[][] } {
  const unlimited = call.kind === "approve" && call.amount === MAX_UINT256;
  const amountText = token ? `${formatUnits(call.amount, token.decimals)} ${token.symbol}` : call.amount.toString();
  const lead: Node[] = [];
  if (call.kind === "transfer") {
    lead.push(
      h(
        "p",
        { class: "headline", id: "tx-summary" },
        token
          ? t(broadcast ? "tokenSendHeadline" : "tokenSignHeadline", { amount: formatUnits(call.amount, token.decimals), symbol: token.symbol })
          : t("tokenUnknownHeadline"),
      ),
    );
  } else {
    lead.push(h("p", { class: "headline", id: "tx-summary" }, token ? t("tokenApproveHeadline", { symbol: token.symbol }) : t("tokenApproveUnknownHeadline")));
    if (unlimited) lead.push(h("p", { class: "alert", role: "alert", id: "token-unlimited" }, t("tokenUnlimitedWarning")));
  }
  if (!token) lead.push(h("p", { class: "alert", role: "alert", id: "token-unknown" }, t("tokenUnknownWarning")));
  const rows: HTMLElement[][] = [
    row(t("tokenContract"), mono(contract), token ? null : h("br"), token ? null : h("span", { class: "warning" }, t("tokenUnknownLabel"))),
    call.kind === "transfer" ? row(t("tokenRecipient"), mono(call.address)) : row(t("tokenSpender"), mono(call.address)),
    row(
      call.kind === "transfer" ? t("tokenAmount") : t("tokenAllowance"),
      h("span", { id: "token-amount" }, unlimited ? h("strong", { class: "warning" }, t("tokenUnlimited")) : mono(amountText)),
      // Raw units are never shown bare: the note says they are not tokens.
      !token && !unlimited ? h("br") : null,
      !token && !unlimited ? h("span", { class: "warning", id: "token-units" }, t("tokenRawUnits")) : null,
    ),
  ];
  return { lead, rows };
}

function details(request: ApprovalRequest): { title: Key; body: Node[]; submit: Key } {
  if (request.purpose === "create_wallet") return { title: "createWalletTitle", body: [], submit: "continue" };
  if (request.purpose === "export") return { title: "exportTitle", body: [h("p", { class: "warning" }, t("exportWarning"))], submit: "continue" };
  if (request.purpose === "change_pin") return { title: "changePinTitle", body: [], submit: "continue" };
  if (request.purpose === "recover") return { title: "recoverTitle", body: [], submit: "continue" };
  const who = [row(t("account"), mono(request.address)), row(t("network"), networkLabel(request.network))];
  if (request.purpose === "sign_message") {
    // Text when the bytes are printable UTF-8 (dApps often send text as hex), and the bytes.
    const text = utf8OrHex(request.message);
    const printable = text !== request.message && !/[\u0000-\u0008\u000e-\u001f\u007f]/.test(text);
    return {
      title: "signMessageTitle",
      body: [
        dl(...who),
        printable ? h("h2", {}, t("message")) : null,
        printable ? h("pre", { class: "message" }, text) : null,
        request.encoding === "hex" || !printable ? h("h2", {}, t("messageBytes")) : null,
        request.encoding === "hex" || !printable ? h("pre", { class: "message mono" }, request.message) : null,
      ].filter(Boolean) as Node[],
      submit: "sign",
    };
  }
  if (request.purpose === "sign_typed_data") {
    const td = request.typedData;
    const domainTypes = td.types.EIP712Domain ?? Object.keys(td.domain).map((name) => ({ name, type: "string" }));
    return {
      title: "typedDataTitle",
      body: [
        dl(...who, row(t("primaryType"), mono(td.primaryType))),
        h("h2", {}, t("domain")),
        h("dl", { class: "fields" }, ...domainTypes.flatMap((f) => [h("dt", {}, f.name), h("dd", {}, mono(valueText(td.domain[f.name])))])),
        h("h2", {}, t("fields")),
        typedFields(td.types, td.primaryType, td.message),
      ],
      submit: "sign",
    };
  }
  // sign_transaction: labels from the intent (checkTransactionApproval held them equal).
  const intent = request.intent;
  const { symbol, decimals } = nativeOf(intent.network);
  const call = erc20Call(intent.data);
  const erc20 = call ? erc20Rows(call, intent.to, listedToken(intent.network, intent.chainId, intent.to), request.broadcast) : null;
  return {
    title: request.broadcast ? "sendTxTitle" : "signTxTitle",
    body: [
      ...(erc20?.lead ?? []),
      dl(
        row(t("from"), mono(intent.from)),
        row(t("network"), networkLabel(intent.network)),
        ...(erc20 ? erc20.rows : [row(t("to"), mono(intent.to))]),
        row(erc20 ? t("valueWithCall", { symbol }) : t("value"), mono(`${formatUnits(intent.value, decimals)} ${symbol}`)),
        row(t("fee"), mono(`${formatUnits(feeCap(intent), decimals)} ${symbol}`)),
        row(t("data"), intent.data === "0x" ? t("noData") : mono(intent.data.length > 74 ? `${intent.data.slice(0, 74)}… (${(intent.data.length - 2) / 2} bytes)` : intent.data)),
      ),
    ],
    submit: request.broadcast ? "send" : "sign",
  };
}

function checkApprovalRequest(r: unknown): ApprovalRequest {
  if (!isObject(r) || typeof r.purpose !== "string" || typeof r.appId !== "string") throw new Error("malformed approval request");
  if (app && r.appId !== app.appId) throw new Error("the approval names another app");
  const request = r as unknown as ApprovalRequest;
  if (request.purpose === "sign_transaction") checkTransactionApproval(request);
  if (request.purpose === "sign_typed_data") checkTypedDataApproval(request);
  return request;
}

/**
 * Typed data signed for one chain can be replayed only there (EIP-712's domain
 * `chainId`), so the network the approval names must be that chain, as wallets require
 * of the active chain. The host page names the network; the typed data, which the
 * digest covers, names the chain.
 */
function checkTypedDataApproval(r: Extract<ApprovalRequest, { purpose: "sign_typed_data" }>): void {
  if (!app) throw new Error("the app's networks are not loaded");
  const network = networkById(r.network);
  if (!network) throw new Error("the approval names a network the app does not have");
  const domain = isObject(r.typedData) && isObject(r.typedData.domain) ? r.typedData.domain : null;
  if (!domain) throw new Error("malformed typed data");
  const chainId = domain.chainId;
  if (chainId === undefined || chainId === null) return;
  let chain: bigint;
  try {
    chain = BigInt(chainId as string | number | bigint);
  } catch {
    throw new Error("the typed data's domain chainId is not a number");
  }
  if (chain !== BigInt(network.chainId)) {
    throw new Error(`the typed data is for chain ${chain}, not the account's network (${network.chainId})`);
  }
}

/** The user's accounts as the server lists them to this widget's own session. */
let accountsSeen: { client: ApiClient; list: Account[] } | null = null;

/**
 * The account an approval shows must be one of the user's, with that address and network:
 * the digest binds only the account id, and the address and network come from the host
 * page. Checked when this widget has a session of its own (it signed the user in), against
 * the server's list, read again when the id is not in the copy kept for the session.
 */
async function checkApprovalAccount(r: ApprovalRequest): Promise<void> {
  if (r.purpose !== "sign_message" && r.purpose !== "sign_typed_data" && r.purpose !== "sign_transaction") return;
  const api = apiClient();
  if (!api) return;
  const find = (list: Account[]) => list.find((x) => x.id === r.accountId);
  let found = accountsSeen?.client === api ? find(accountsSeen.list) : undefined;
  if (!found) {
    const list = await api.getAccounts();
    accountsSeen = { client: api, list };
    found = find(list);
  }
  if (!found || typeof r.address !== "string" || found.address.toLowerCase() !== r.address.toLowerCase() || found.network !== r.network) {
    throw new Error("the approval's account is not one of this user's");
  }
}

type TransactionApproval = Extract<ApprovalRequest, { purpose: "sign_transaction" }>;

const DECIMAL = /^(0|[1-9][0-9]*)$/;

/**
 * A transaction's approval shows what its PIN envelope binds, and the envelope binds the
 * intent's chain id, gas limit and fee caps, not the request's labels. The request comes
 * from the host page: its network, sender and fee must agree with the intent, and the
 * intent's network must be the operator's network with that chain id, or nothing is
 * shown (a page could otherwise label a mainnet transfer "testnet", or show a small fee
 * for a large fee cap).
 */
function checkTransactionApproval(r: TransactionApproval): void {
  const i = r.intent as unknown;
  if (
    !isObject(i) ||
    typeof i.network !== "string" ||
    typeof i.chainId !== "number" ||
    typeof i.from !== "string" ||
    ![i.gasLimit, i.maxFeePerGas, r.maxFee].every((v) => typeof v === "string" && DECIMAL.test(v))
  ) {
    throw new Error("malformed transaction approval");
  }
  if (!app) throw new Error("the app's networks are not loaded");
  const network = networkById(i.network);
  if (!network || network.chainId !== i.chainId || r.network !== i.network) {
    throw new Error("the approval's network is not the transaction's chain");
  }
  if (typeof r.address !== "string" || r.address.toLowerCase() !== i.from.toLowerCase()) {
    throw new Error("the approval's account is not the transaction's sender");
  }
  if (BigInt(r.maxFee) !== feeCap(r.intent)) throw new Error("the approval's fee is not the transaction's fee cap");
}

/** The most a transaction can pay in fees: gas limit × max fee per gas, both digested. */
function feeCap(intent: TransactionApproval["intent"]): bigint {
  return BigInt(intent.gasLimit) * BigInt(intent.maxFeePerGas);
}

async function approve(item: Incoming): Promise<void> {
  const approvalId = typeof item.payload.approvalId === "string" ? item.payload.approvalId : "";
  let request: ApprovalRequest;
  try {
    request = checkApprovalRequest(item.payload.request);
  } catch (e) {
    return respondError(item.id, "invalid_request", safeMessage(e));
  }
  try {
    await checkApprovalAccount(request);
  } catch (e) {
    return respondError(item.id, e instanceof KeysteadError ? e.code : "invalid_request", safeMessage(e));
  }
  const retry = isObject(item.payload.retry) ? (item.payload.retry as unknown as ApprovalRetry) : undefined;
  if (waitingFor === approvalId) waitingFor = null;

  let att: VerifiedAttestation;
  try {
    att = await attest();
  } catch (e) {
    const message = safeMessage(e);
    render(t("title"), [h("p", { class: "error", role: "alert" }, t("attestationFailed", { message }))], { onClose: () => respondError(item.id, "attestation_failed", message) });
    return;
  }
  let keys: ClientKeyPair | undefined;
  if (request.purpose === "create_wallet" || request.purpose === "export") {
    keys = clientKeys.get(approvalId) ?? (await generateClientKeyPair());
    clientKeys.set(approvalId, keys);
  }
  const operations = operationsForApproval(request, keys?.clientKey);
  const digests = await Promise.all(operations.map((op) => operationDigest(op)));
  const seal = (pin: string, i: number) => sealPinEnvelope({ pin, purpose: operations[i]!.purpose, digest: digests[i]!, publicKey: att.publicKey });
  const alive = () => current?.id === item.id;
  const onClose = () => cancel(item);
  const retryText = retry ? describeError(retry) : undefined;

  const answer = async (result: Record<string, unknown>) => {
    if (!alive()) return;
    waitingFor = approvalId;
    working();
    respond(item.id, result);
  };

  // A new PIN, entered twice, checked against the rules at once.
  const choosePin = (title: Key, first: string | undefined, done: (pin: string) => void) => {
    let error = first;
    const ask1 = () => {
      const show = () => render(t(title), [pinForm(t("continue"), (pin) => {
        const rule = checkNewPin(pin);
        if (rule) {
          error = t(`weak_${rule}` as Key);
          ask1();
          return;
        }
        ask2(pin);
      }, { hint: t("newPinHint"), ...(error ? { error } : {}) })], { onClose, banner: att.dev }, show);
      show();
    };
    const ask2 = (pin1: string) => {
      const show = () => render(t("newPinAgainTitle"), [pinForm(t("continue"), (pin2) => {
        if (pin2 !== pin1) {
          error = t("newPinMismatch");
          ask1();
          return;
        }
        done(pin1);
      })], { onClose, banner: att.dev }, show);
      show();
    };
    ask1();
  };

  const d = details(request);
  switch (request.purpose) {
    case "sign_message":
    case "sign_typed_data":
    case "sign_transaction":
    case "export": {
      const show = () => {
        const dd = details(request);
        render(t(dd.title), [...dd.body, h("h2", {}, t("enterPinTitle")), pinForm(t(dd.submit), async (pin) => {
          const pinEnv = await seal(pin, 0);
          await answer(keys ? { pin: pinEnv, clientKey: keys.clientKey } : { pin: pinEnv });
        }, retryText ? { error: retryText } : {})], { onClose, banner: att.dev }, show);
      };
      show();
      return;
    }
    case "create_wallet":
      choosePin("createWalletTitle", retryText, async (pin) => {
        const env = await seal(pin, 0);
        await answer({ pin: env, clientKey: keys!.clientKey });
      });
      return;
    case "change_pin": {
      const show = () => render(t(d.title), [h("h2", {}, t("currentPinTitle")), pinForm(t("continue"), (current) => {
        choosePin("newPinTitle", undefined, async (newPin) => {
          const [a, b] = await Promise.all([seal(current, 0), seal(newPin, 1)]);
          await answer({ pin: a, newPin: b });
        });
      }, retryText ? { error: retryText } : {})], { onClose, banner: att.dev }, show);
      show();
      return;
    }
    case "recover": {
      const show = () => {
        const input = h("input", { id: "recovery", type: "password", autocomplete: "off", required: true, autofocus: true, spellcheck: "false" });
        const form = h(
          "form",
          { class: "pin", novalidate: true },
          retryText ? h("p", { class: "error", role: "alert" }, retryText) : null,
          h("label", { for: "recovery" }, t("recoveryCodeLabel")),
          input,
          h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, t("continue"))),
        );
        form.addEventListener("submit", (e) => {
          e.preventDefault();
          const code = input.value.trim();
          input.value = "";
          if (!code) return;
          choosePin("newPinTitle", undefined, async (newPin) => {
            const [a, b] = await Promise.all([seal(code, 0), seal(newPin, 1)]);
            await answer({ recovery: a, newPin: b });
          });
        });
        render(t(d.title), [form], { onClose, banner: att.dev }, show);
      };
      show();
      return;
    }
  }
}

// reveal -----------------------------------------------------------------------------------

async function reveal(item: Incoming): Promise<void> {
  const approvalId = item.payload.approvalId;
  const kind = item.payload.kind;
  const sealed = item.payload.sealed as SealedValue | undefined;
  waitingFor = null;
  const keys = typeof approvalId === "string" ? clientKeys.get(approvalId) : undefined;
  if (!keys || !isObject(sealed) || (kind !== "recoveryKit" && kind !== "mnemonic")) {
    return respondError(item.id, "invalid_request", "unknown approval");
  }
  let secret: string;
  try {
    secret = kind === "recoveryKit" ? await openRecoveryKit(keys, sealed) : await openMnemonic(keys, sealed);
  } catch {
    clientKeys.delete(approvalId as string);
    return respondError(item.id, "internal", "the sealed value does not open");
  }
  clientKeys.delete(approvalId as string);
  let saved = false;
  const done = () => {
    secret = "";
    respond(item.id, { acknowledged: true });
  };
  const show = () => {
    const doneButton = h("button", { type: "button", class: "primary", id: "reveal-done", onclick: done, disabled: kind === "recoveryKit" && !saved }, t("done"));
    const box =
      kind === "recoveryKit"
        ? h("p", { class: "secret", id: "secret", "aria-label": t("recoveryKitTitle") }, secret)
        : h("ol", { class: "secret words", id: "secret", "aria-label": t("mnemonicTitle") }, ...secret.split(/\s+/).map((w) => h("li", {}, w)));
    const check =
      kind === "recoveryKit"
        ? h(
            "label",
            { class: "check" },
            h("input", {
              type: "checkbox",
              id: "saved",
              checked: saved,
              onchange: (e: Event) => {
                saved = (e.target as HTMLInputElement).checked;
                doneButton.disabled = !saved;
              },
            }),
            " ",
            t("recoveryKitSaved"),
          )
        : null;
    render(kind === "recoveryKit" ? t("recoveryKitTitle") : t("mnemonicTitle"), [
      h("p", { class: "warning" }, kind === "recoveryKit" ? t("recoveryKitHint") : t("exportWarning")),
      box,
      check,
      h("div", { class: "actions" }, doneButton),
    ].filter(Boolean) as Node[], {}, show);
  };
  show();
}

// open: home, receive, settings -----------------------------------------------------------

/** What the send screen can send: the network's coin, or a listed token (`contract`). */
interface SendAsset {
  symbol: string;
  decimals: number;
  contract?: string;
}

/** ERC-20 `transfer(to, amount)` call data, lowercase hex. */
function erc20TransferData(to: string, amount: bigint): string {
  return `0xa9059cbb${to.slice(2).toLowerCase().padStart(64, "0")}${amount.toString(16).padStart(64, "0")}`;
}

/** A balance as shown (rounded down for reading) and exactly. */
interface Balance {
  text: string;
  exact: string;
}

interface AccountView {
  id: string;
  network: string;
  address: string;
}

function openView(item: Incoming): void {
  const accounts = (Array.isArray(item.payload.accounts) ? item.payload.accounts : []).filter(
    (a): a is AccountView => isObject(a) && typeof a.id === "string" && typeof a.network === "string" && typeof a.address === "string",
  );
  /** Per account: the native balance, and the listed tokens' ("98.75 TST"), formatted. */
  const balances = new Map<string, { native: Balance; tokens: Array<Balance & { contract: string }> }>();
  /** A balance rounded for reading, the exact amount in its title. */
  const balanceText = (b: Balance | undefined) =>
    b ? h("span", { class: "balance", title: b.exact }, b.text) : t("balanceUnknown");
  const onClose = () => respond(item.id, { closed: true });
  const alive = () => current?.id === item.id;
  /** "flow": a send or settings action owns the screen. */
  let view: "home" | "settings" | "flow" | { receive: AccountView } = item.payload.view === "settings" ? "settings" : "home";
  let settingsNote: { text: string; error: boolean } | null = null;

  const toHome = () => {
    view = "home";
    show();
    loadBalances();
  };
  const toSettings = (note: { text: string; error: boolean } | null = null) => {
    settingsNote = note;
    view = "settings";
    show();
  };
  const backTo = (where: () => void) => h("div", { class: "actions" }, h("button", { type: "button", onclick: () => where() }, t("back")));

  const home = () => {
    const byNetwork = new Map<string, AccountView[]>();
    for (const a of accounts) byNetwork.set(a.network, [...(byNetwork.get(a.network) ?? []), a]);
    const sections = [...byNetwork].map(([network, list]) =>
      h(
        "section",
        { class: "network" },
        h("h2", {}, networkLabel(network)),
        ...list.map((a) => {
          const copyButton = h("button", { type: "button", onclick: async () => {
            try {
              await navigator.clipboard.writeText(a.address);
              copyButton.textContent = t("copied");
            } catch {
              // clipboard refused (permissions): the address is selectable anyway
            }
          } }, t("copy"));
          return h(
            "div",
            { class: "account" },
            mono(a.address),
            dl(
              row(t("balance"), balanceText(balances.get(a.id)?.native)),
              ...(balances.get(a.id)?.tokens.length
                ? [row(t("tokenBalances"), h("ul", { class: "tokens" }, ...balances.get(a.id)!.tokens.map((tk) => h("li", { "data-contract": tk.contract, title: `${tk.exact} (${tk.contract})` }, tk.text))))]
                : []),
            ),
            h(
              "div",
              { class: "actions" },
              copyButton,
              h("button", { type: "button", onclick: () => { view = { receive: a }; show(); } }, t("receive")),
              session ? h("button", { type: "button", class: "primary", onclick: () => sendFlow(a) }, t("sendTitle")) : null,
            ),
          );
        }),
      ),
    );
    render(t("homeTitle"), [
      ...(sections.length ? sections : [h("p", { class: "muted" }, t("noAccounts"))]),
      h("div", { class: "actions" }, h("button", { type: "button", onclick: () => toSettings() }, t("settingsTitle"))),
    ], { onClose }, show);
  };
  const receive = (a: AccountView) => {
    const label = networkLabel(a.network);
    render(t("receiveTitle", { network: label }), [
      qrCanvas(a.address, a.address),
      mono(a.address),
      h("p", { class: "muted" }, t("receiveHint", { network: label })),
      backTo(toHome),
    ], { onClose }, show);
  };
  const settings = () => {
    const select = h("select", { id: "lang", onchange: (e: Event) => { setLanguage((e.target as HTMLSelectElement).value === "ko" ? "ko" : "en"); show(); } },
      h("option", { value: "en", selected: getLanguage() === "en" }, "English"),
      h("option", { value: "ko", selected: getLanguage() === "ko" }, "한국어"));
    const note = settingsNote
      ? h("p", { id: "settings-note", class: settingsNote.error ? "error" : "ok", role: settingsNote.error ? "alert" : "status" }, settingsNote.text)
      : null;
    const actions = session
      ? h(
          "div",
          { class: "actions stack" },
          h("button", { type: "button", onclick: () => changePinFlow() }, t("changePin")),
          h("button", { type: "button", onclick: () => exportFlow() }, t("exportMnemonic")),
          h("button", { type: "button", onclick: () => recoverFlow() }, t("recoverWallet")),
          h("button", { type: "button", onclick: () => void logOut() }, t("logOut")),
        )
      : h("p", { class: "muted" }, t("settingsHint"));
    render(t("settingsTitle"), [
      note,
      h("label", { for: "lang" }, t("languageSetting")),
      select,
      actions,
      backTo(toHome),
    ].filter(Boolean) as Node[], { onClose }, show);
  };
  const show = () => {
    if (view === "flow") return;
    if (view === "home") home();
    else if (view === "settings") settings();
    else receive(view.receive);
  };

  // send -------------------------------------------------------------------------------

  const sendFlow = (a: AccountView) => {
    const api = apiClient();
    if (!api || !app) return toHome();
    const appId = app.appId;
    view = "flow";
    const { symbol, decimals } = nativeOf(a.network);
    // What this account can send: the network's coin, and the tokens the operator lists
    // for the network (from the widget's own /v1/app).
    const assets: SendAsset[] = [
      { symbol, decimals },
      ...(networkById(a.network)?.tokens ?? []).map((tk) => ({ symbol: tk.symbol, decimals: tk.decimals, contract: getAddress(tk.contract) })),
    ];
    let asset = assets[0]!;
    let toText = "";
    let amountText = "";

    const form = (error?: string) => {
      const showForm = () => {
        const to = h("input", { id: "send-to", name: "to", type: "text", autocomplete: "off", spellcheck: "false", required: true, value: toText, placeholder: "0x…", autofocus: true });
        const amount = h("input", { id: "send-amount", name: "amount", type: "text", inputmode: "decimal", autocomplete: "off", required: true, value: amountText, placeholder: "0.0" });
        const choice =
          assets.length > 1
            ? h(
                "select",
                {
                  id: "send-asset",
                  onchange: (e: Event) => {
                    asset = assets[Number((e.target as HTMLSelectElement).value)] ?? assets[0]!;
                    toText = to.value;
                    amountText = amount.value;
                    showForm();
                  },
                },
                ...assets.map((x, n) => h("option", { value: String(n), selected: x === asset }, x.symbol)),
              )
            : null;
        const held = asset.contract ? balances.get(a.id)?.tokens.find((tk) => tk.contract.toLowerCase() === asset.contract!.toLowerCase()) : balances.get(a.id)?.native;
        const f = h(
          "form",
          { class: "send", novalidate: true },
          error ? h("p", { class: "error", role: "alert", id: "send-error" }, error) : null,
          dl(row(t("from"), mono(a.address)), row(t("network"), networkLabel(a.network)), row(t("balance"), balanceText(held))),
          choice ? h("label", { for: "send-asset" }, t("sendAsset")) : null,
          choice,
          h("label", { for: "send-to" }, t("sendTo")),
          to,
          h("label", { for: "send-amount" }, t("sendAmount", { symbol: asset.symbol })),
          amount,
          h("div", { class: "actions" }, h("button", { type: "button", onclick: toHome }, t("back")), h("button", { type: "submit", class: "primary" }, t("continue"))),
        );
        f.addEventListener("submit", (e) => {
          e.preventDefault();
          toText = to.value.trim();
          amountText = amount.value.trim();
          if (!isAddress(toText, { strict: false })) return form(t("sendBadAddress"));
          const value = parseUnits(amountText, asset.decimals);
          if (value === null || value <= 0n || value > MAX_UINT256) return form(t("sendBadAmount"));
          void prepare(getAddress(toText), value, asset);
        });
        render(t("sendTitle"), [f], { onClose }, showForm);
      };
      showForm();
    };

    const prepare = async (to: string, amount: bigint, what: SendAsset) => {
      working();
      // A token moves by a call to its contract (ERC-20 `transfer`) carrying no ETH.
      const wanted = what.contract
        ? { to: what.contract, value: "0", data: erc20TransferData(to, amount) }
        : { to, value: amount.toString(), data: "0x" };
      let prepared: PrepareResponse;
      try {
        prepared = await api.prepareTx({ accountId: a.id, to: wanted.to, value: wanted.value, ...(what.contract ? { data: wanted.data } : {}) });
      } catch (e) {
        if (alive()) form(describeError(errorOf(e)));
        return;
      }
      if (!alive()) return;
      const i = prepared.intent;
      if (
        i.to.toLowerCase() !== wanted.to.toLowerCase() ||
        i.value !== wanted.value ||
        i.data.toLowerCase() !== wanted.data ||
        i.from.toLowerCase() !== a.address.toLowerCase() ||
        i.network !== a.network
      ) {
        form(t("failed", { message: "the prepared transaction differs from the one entered" }));
        return;
      }
      await review(prepared);
    };

    const review = async (prepared: PrepareResponse, error?: string) => {
      let att: VerifiedAttestation;
      try {
        att = await attest();
      } catch (e) {
        if (alive()) form(t("attestationFailed", { message: safeMessage(e) }));
        return;
      }
      if (!alive()) return;
      const i = prepared.intent;
      // The approval exactly as the SDK would ask it: the intent as prepared, its fee cap.
      const request: ApprovalRequest = { purpose: "sign_transaction", appId, accountId: a.id, address: a.address, network: a.network, intent: i, maxFee: prepared.maxFee, broadcast: true };
      const op = operationsForApproval(request)[0]!;
      // A token transfer reads as one (amount, recipient, contract), as in approvals.
      const call = erc20Call(i.data);
      const token = call ? erc20Rows(call, i.to, listedToken(i.network, i.chainId, i.to), true) : null;
      const showReview = () =>
        render(t("sendReviewTitle"), [
          ...(token?.lead ?? []),
          dl(
            row(t("from"), mono(i.from)),
            row(t("network"), networkLabel(a.network)),
            ...(token ? token.rows : [row(t("to"), mono(i.to)), row(t("value"), mono(`${formatUnits(i.value, decimals)} ${symbol}`))]),
            row(t("fee"), h("span", { id: "send-fee" }, mono(`${formatUnits(prepared.maxFee, decimals)} ${symbol}`)), h("br"), h("span", { class: "muted", id: "send-fee-cap" }, t("feeCap", { gas: i.gasLimit, gwei: formatUnits(i.maxFeePerGas, 9) }))),
          ),
          h("h2", {}, t("enterPinTitle")),
          pinForm(t("send"), async (pin) => {
            const env = await sealOp(op, pin, att);
            working();
            let tx: TxResponse;
            try {
              // A fresh idempotency key per attempt: each attempt carries a new envelope. If the
              // access token expired, the client retries once after the SDK's new token with the
              // same key and the same envelope: the server refused before the handler ran (the
              // `Authed` extractor rejects ahead of the body), so nothing was broadcast and the
              // envelope was never opened; and the same key could never broadcast twice.
              tx = await api.sendTx({ intent: i, pin: env, accountId: a.id }, randomHex(16));
            } catch (e) {
              if (!alive()) return;
              const err = errorOf(e);
              if (err.code === "wrong_pin" || err.code === "envelope_rejected") return void review(prepared, describeError(err));
              return form(describeError(err));
            }
            if (alive()) result(tx);
          }, error ? { error } : {}),
          backTo(() => form()),
        ], { onClose, banner: att.dev }, showReview);
      showReview();
    };

    const result = (tx: TxResponse) => {
      let status = tx.status;
      let block: number | null | undefined = tx.blockNumber;
      let stopped = false;
      const showResult = () =>
        render(t("txSentTitle"), [
          dl(
            row(t("txHash"), h("code", { class: "mono", id: "tx-hash" }, tx.hash)),
            row(t("txStatus"), h("span", { id: "tx-status", role: "status", "data-status": status }, t(`tx_${status}` as Key))),
            ...(typeof block === "number" ? [row(t("txBlock"), mono(String(block)))] : []),
          ),
          h("div", { class: "actions" }, h("button", { type: "button", class: "primary", id: "tx-done", onclick: () => { stopped = true; toHome(); } }, t("done"))),
        ], { onClose }, showResult);
      showResult();
      // The status, polled until confirmed or failed (for at most ten minutes).
      void (async () => {
        const end = Date.now() + 10 * 60 * 1000;
        while (status === "pending" && Date.now() < end) {
          await new Promise((r) => setTimeout(r, 1000));
          if (stopped || !alive()) return;
          try {
            const r = await api.getTx(tx.id);
            if (r.status !== status) {
              status = r.status;
              block = r.blockNumber;
              if (!stopped && alive()) showResult();
            }
          } catch {
            // try again on the next tick
          }
        }
      })();
    };

    form();
  };

  // settings actions --------------------------------------------------------------------

  /** The wallet id (from /v1/me) and a checked attestation, then `then`. */
  const withWallet = async (then: (api: ApiClient, appId: string, walletId: string, att: VerifiedAttestation) => void | Promise<void>) => {
    const api = apiClient();
    if (!api || !app) return toSettings();
    const appId = app.appId;
    view = "flow";
    working();
    let walletId: string;
    let att: VerifiedAttestation;
    try {
      const [me, verified] = await Promise.all([api.me(), attest()]);
      if (!me.walletId) throw new KeysteadError("wallet_required", "the user has no wallet");
      walletId = me.walletId;
      att = verified;
    } catch (e) {
      if (alive()) toSettings({ text: describeError(errorOf(e)), error: true });
      return;
    }
    if (alive()) await then(api, appId, walletId, att);
  };
  const failed = (e: unknown) => {
    if (alive()) toSettings({ text: describeError(errorOf(e)), error: true });
  };

  const changePinFlow = () => void withWallet((api, appId, walletId, att) => {
    const ops = operationsForApproval({ purpose: "change_pin", appId, walletId });
    const ask = (error?: string) => {
      const showAsk = () =>
        render(t("changePinTitle"), [
          h("h2", {}, t("currentPinTitle")),
          pinForm(t("continue"), (currentPin) => {
            askNewPin({ title: "newPinTitle", banner: att.dev, onClose, done: async (newPin) => {
              working();
              try {
                const [pin, next] = await Promise.all([sealOp(ops[0]!, currentPin, att), sealOp(ops[1]!, newPin, att)]);
                await api.changePin({ pin, newPin: next });
              } catch (e) {
                const err = errorOf(e);
                if (alive() && (err.code === "wrong_pin" || err.code === "weak_pin")) return ask(describeError(err));
                return failed(e);
              }
              if (alive()) toSettings({ text: t("pinChanged"), error: false });
            } });
          }, error ? { error } : {}),
          backTo(() => toSettings()),
        ], { onClose, banner: att.dev }, showAsk);
      showAsk();
    };
    ask();
  });

  const exportFlow = () => void withWallet(async (api, appId, walletId, att) => {
    const ask = async (error?: string) => {
      const keys = await generateClientKeyPair();
      const op = operationsForApproval({ purpose: "export", appId, walletId }, keys.clientKey)[0]!;
      if (!alive()) return;
      const showAsk = () =>
        render(t("exportTitle"), [
          h("p", { class: "warning" }, t("exportWarning")),
          h("h2", {}, t("enterPinTitle")),
          pinForm(t("continue"), async (pin) => {
            working();
            let words: string;
            try {
              const out = await api.exportWallet({ pin: await sealOp(op, pin, att), clientKey: keys.clientKey });
              words = await openMnemonic(keys, out.mnemonic);
            } catch (e) {
              const err = errorOf(e);
              if (alive() && err.code === "wrong_pin") return void ask(describeError(err));
              return failed(e);
            }
            if (!alive()) return;
            const showWords = () =>
              render(t("mnemonicTitle"), [
                h("p", { class: "warning" }, t("exportWarning")),
                h("ol", { class: "secret words", id: "secret", "aria-label": t("mnemonicTitle") }, ...words.split(/\s+/).map((w) => h("li", {}, w))),
                h("div", { class: "actions" }, h("button", { type: "button", class: "primary", id: "reveal-done", onclick: () => { words = ""; toSettings(); } }, t("done"))),
              ], {}, showWords);
            showWords();
          }, error ? { error } : {}),
          backTo(() => toSettings()),
        ], { onClose, banner: att.dev }, showAsk);
      showAsk();
    };
    await ask();
  });

  const recoverFlow = () => void withWallet((api, appId, walletId, att) => {
    const ops = operationsForApproval({ purpose: "recover", appId, walletId });
    const ask = (error?: string) => {
      const showAsk = () => {
        const input = h("input", { id: "recovery", type: "password", autocomplete: "off", required: true, autofocus: true, spellcheck: "false" });
        const f = h(
          "form",
          { class: "pin", novalidate: true },
          error ? h("p", { class: "error", role: "alert" }, error) : null,
          h("label", { for: "recovery" }, t("recoveryCodeLabel")),
          input,
          h("div", { class: "actions" }, h("button", { type: "button", onclick: () => toSettings() }, t("back")), h("button", { type: "submit", class: "primary" }, t("continue"))),
        );
        f.addEventListener("submit", (e) => {
          e.preventDefault();
          const code = input.value.trim();
          input.value = "";
          if (!code) return;
          askNewPin({ title: "newPinTitle", banner: att.dev, onClose, done: async (newPin) => {
            working();
            try {
              const [recovery, next] = await Promise.all([sealOp(ops[0]!, code, att), sealOp(ops[1]!, newPin, att)]);
              await api.recover({ recovery, newPin: next });
            } catch (e) {
              const err = errorOf(e);
              if (alive() && (err.code === "wrong_recovery_code" || err.code === "weak_pin")) return ask(describeError(err));
              return failed(e);
            }
            if (alive()) toSettings({ text: t("pinReset"), error: false });
          } });
        });
        render(t("recoverTitle"), [f], { onClose, banner: att.dev }, showAsk);
      };
      showAsk();
    };
    ask();
  });

  const logOut = async () => {
    const api = apiClient();
    const held = session;
    view = "flow";
    working();
    try {
      await api?.logout();
    } catch (e) {
      // An expired access token: the session must still end on the server, so ask the SDK
      // for a fresh token (logout itself never refreshes) and revoke with it, once.
      if (held && errorOf(e).code === "unauthenticated") {
        try {
          const fresh = await renewSession(held);
          await newClient(fresh).logout();
        } catch {
          // the session is forgotten here either way
        }
      }
    }
    forgetSession();
    post({ kind: "event", type: "logged-out", payload: {} });
    if (alive()) respond(item.id, { closed: true });
  };

  // Balances, when this widget holds a session of its own (it signed the user in).
  const loadBalances = () => {
    const api = apiClient();
    if (!api) return;
    void Promise.all(
      accounts.map(async (a) => {
        const b = await api.getBalance(a.id);
        const amount = (value: string, decimals: number, symbol: string): Balance => ({
          text: `${formatBalance(value, decimals)} ${symbol}`,
          exact: `${formatUnits(value, decimals)} ${symbol}`,
        });
        balances.set(a.id, {
          native: amount(b.native.amount, b.native.decimals, b.native.symbol),
          tokens: (b.tokens ?? []).map((tk) => ({ contract: tk.contract, ...amount(tk.amount, tk.decimals, tk.symbol) })),
        });
      }),
    ).then(() => {
      if (alive() && view === "home") show();
    }, () => {});
  };

  show();
  loadBalances();
}

// --- the widget's own API calls -------------------------------------------------------------

/** The API client on this widget's own session (its popup login); null without one. */
function apiClient(): ApiClient | null {
  return session ? client : null;
}

/**
 * A client that never refreshes itself: refresh tokens rotate, and the SDK owns the refresh.
 * A call refused with 401 (`unauthenticated`, e.g. `details.reason` `expired`) asks the SDK
 * for a new access token (`renewSession`) and is retried once with it; concurrent refusals
 * share one request.
 */
function newClient(s: Session): ApiClient {
  const c = new ApiClient({ serverUrl: location.origin, appKey, renewSession });
  c.setSession(s);
  return c;
}

function startSession(s: Session): void {
  client?.setSession(null);
  settleRenewal(null);
  session = s;
  client = newClient(s);
}

/** Forgets the session (logged out here or in the host); flows still running fail. */
function forgetSession(): void {
  session = null;
  clientKeys.clear();
  client?.setSession(null);
  client = null;
  settleRenewal(null);
}

/**
 * Sends `session-expired` and waits (at most RENEW_TIMEOUT_MS) for the SDK's `session`
 * notice with a new access token for this session's user; `logged_out` or the timeout fail
 * as `unauthenticated` ("session expired").
 */
function renewSession(expired: Session): Promise<Session> {
  if (!session || session.user.id !== expired.user.id) return Promise.reject(sessionExpired());
  // Replaced by a notice since the refused call started: retry with that.
  if (session.accessToken !== expired.accessToken) return Promise.resolve(session);
  return new Promise<Session>((resolve, reject) => {
    const first = renewal === null;
    const previous = renewal;
    const timer = previous?.timer ?? setTimeout(() => settleRenewal(null), RENEW_TIMEOUT_MS);
    renewal = {
      timer,
      resolve: (s) => { previous?.resolve(s); resolve(s); },
      reject: (e) => { previous?.reject(e); reject(e); },
    };
    if (first) post({ kind: "event", type: "session-expired", payload: {} });
  });
}

function settleRenewal(s: Session | null): void {
  const r = renewal;
  if (!r) return;
  renewal = null;
  clearTimeout(r.timer);
  if (s) r.resolve(s);
  else r.reject(sessionExpired());
}

function sessionExpired(): KeysteadError {
  return new KeysteadError("unauthenticated", "the session expired", { reason: "expired" }, 401);
}

function errorOf(e: unknown): { code: string; message: string; details: Record<string, unknown> } {
  if (e instanceof KeysteadError) return { code: e.code, message: e.message.slice(0, 300), details: e.details };
  return { code: "internal", message: safeMessage(e), details: {} };
}

function randomHex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sealOp(op: Operation, pin: string, att: VerifiedAttestation): Promise<SealedValue> {
  return sealPinEnvelope({ pin, purpose: op.purpose, digest: await operationDigest(op), publicKey: att.publicKey });
}

/** A new PIN, entered twice, checked against the rules at once. */
function askNewPin(options: { title: Key; banner: boolean; onClose: () => void; done: (pin: string) => void }): void {
  let error: string | undefined;
  const ask1 = () => {
    const show = () => render(t(options.title), [pinForm(t("continue"), (pin) => {
      const rule = checkNewPin(pin);
      if (rule) {
        error = t(`weak_${rule}` as Key);
        ask1();
        return;
      }
      ask2(pin);
    }, { hint: t("newPinHint"), ...(error ? { error } : {}) })], { onClose: options.onClose, banner: options.banner }, show);
    show();
  };
  const ask2 = (pin1: string) => {
    const show = () => render(t("newPinAgainTitle"), [pinForm(t("continue"), (pin2) => {
      if (pin2 !== pin1) {
        error = t("newPinMismatch");
        ask1();
        return;
      }
      options.done(pin1);
    })], { onClose: options.onClose, banner: options.banner }, show);
    show();
  };
  ask1();
}

// --- start --------------------------------------------------------------------------------

function isLoopback(host: string): boolean {
  return host === "127.0.0.1" || host === "localhost" || host === "[::1]" || host.endsWith(".localhost");
}

async function main(): Promise<void> {
  setLanguage(pickLanguage(params.get("lang"), navigator.languages ?? []));
  if (!appKey || !parentOrigin || window.parent === window) {
    fatal(t("loadFailed", { message: "appKey and parentOrigin are required, inside a frame" }));
    return;
  }
  try {
    const config = await fetch("config.json", { headers: { Accept: "application/json" } }).then((r) => (r.ok ? r.json() : {}), () => ({}));
    policy = attestationPolicyFromConfig(config, isLoopback(location.hostname));
    const r = await fetch(`${location.origin}/v1/app`, { headers: { "X-App-Key": appKey, Accept: "application/json" } });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    app = (await r.json()) as AppInfo & { origins?: string[] };
  } catch (e) {
    fatal(t("loadFailed", { message: safeMessage(e) }));
    return;
  }
  const origins = (app.origins ?? []).map((o) => o.toLowerCase());
  if (!origins.includes(parentOrigin.toLowerCase()) && parentOrigin !== location.origin) {
    fatal(t("originRefused", { origin: parentOrigin }));
    return;
  }
  window.addEventListener("message", onMessage);
  post({ kind: "event", type: "ready", payload: { version: PROTOCOL_VERSION } });
}

void main();
