// The widget's `session-expired` event and the `session` notice with the access token
// (PROTOCOL.md §3, §5): the SDK is the only party that uses the refresh token.
import { describe, expect, it } from "vitest";
import { Keystead, PROTOCOL, PostMessageChannel } from "../src/index.js";
import { ACCOUNT, APP, FakeHostWindow, FakeWidgetWindow, MapStorage, fakeFetch, session } from "./helpers.js";

const WIDGET_URL = "https://wallet.example/widget/";
const WIDGET_ORIGIN = "https://wallet.example";
const STORAGE_KEY = "keystead:session:ksa_test";

const flush = async (n = 5) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 0));
};

/** A Keystead restored from a stored session (at_7/rt_7), wired to a fake widget frame that is ready. */
async function setup(
  refresh: (body: any) => { status: number; body?: unknown } | Promise<{ status: number; body?: unknown }>,
  routes: Parameters<typeof fakeFetch>[0] = {},
) {
  const refreshes: unknown[] = [];
  const fetch = fakeFetch({
    "GET /v1/app": () => ({ status: 200, body: APP }),
    "GET /v1/me": (req) =>
      req.headers.Authorization === "Bearer expired"
        ? { status: 401, body: { error: { code: "unauthenticated", message: "the access token has expired", details: { reason: "expired" } } } }
        : { status: 200, body: { user: { id: "usr_01" }, status: "complete", walletId: "wal_01" } },
    "GET /v1/accounts": () => ({ status: 200, body: { accounts: [ACCOUNT] } }),
    "POST /v1/auth/refresh": (req) => {
      refreshes.push(req.body);
      return refresh(req.body);
    },
    ...routes,
  });
  const host = new FakeHostWindow();
  const widget = new FakeWidgetWindow();
  const channel = new PostMessageChannel({ widgetUrl: WIDGET_URL, window: host, host: { target: () => widget } });
  const fromWidget = (data: unknown, origin = WIDGET_ORIGIN, source: unknown = widget) => host.deliver({ data, origin, source });
  const event = (type: string, origin?: string, source?: unknown) => fromWidget({ protocol: PROTOCOL, version: 1, kind: "event", type, payload: {} }, origin, source);
  const storage = new MapStorage();
  storage.setItem(STORAGE_KEY, JSON.stringify(session(7)));
  const ks = new Keystead({ appKey: "ksa_test", serverUrl: "https://wallet.example", fetch, channel, storage });
  event("ready");
  expect(await ks.init()).toBe("ready");
  const notices = () => widget.posted.filter((p) => p.message.kind === "notice" && p.message.type === "session");
  return { ks, fetch, widget, event, storage, refreshes, notices };
}

describe("the widget's session-expired event", () => {
  it("sends the access token (never the refresh token) in the session notice once logged in", async () => {
    const { notices } = await setup(() => ({ status: 500 }));
    const last = notices().at(-1)!;
    expect(last.targetOrigin).toBe(WIDGET_ORIGIN);
    expect(last.message.payload).toEqual({ status: "complete", userId: "usr_01", email: "a@example.com", accessToken: "at_7", expiresIn: 900 });
    expect(JSON.stringify(notices())).not.toContain("rt_7");
  });

  it("refreshes once for concurrent expiries and posts the new access token to the widget's exact origin", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { ks, event, refreshes, notices, storage, widget } = await setup(async () => {
      await gate;
      return { status: 200, body: session(8) };
    });
    widget.posted.length = 0;
    event("session-expired");
    event("session-expired");
    await flush();
    event("session-expired");
    await flush();
    expect(refreshes).toEqual([{ refreshToken: "rt_7" }]);
    expect(notices()).toHaveLength(0); // nothing before the refresh answers
    release();
    await flush();
    expect(refreshes).toHaveLength(1);
    expect(notices()).toHaveLength(1);
    const { message, targetOrigin } = notices()[0]!;
    expect(targetOrigin).toBe(WIDGET_ORIGIN);
    expect(message).toEqual({
      protocol: PROTOCOL,
      version: 1,
      kind: "notice",
      type: "session",
      payload: { status: "complete", userId: "usr_01", email: "a@example.com", accessToken: "at_8", expiresIn: 900 },
    });
    expect(JSON.stringify(message)).not.toContain("rt_8");
    expect(ks.getStatus()).toBe("ready");
    expect(ks.api.session?.refreshToken).toBe("rt_8");
    expect(JSON.parse(storage.getItem(STORAGE_KEY)!).refreshToken).toBe("rt_8");
  });

  it("shares one refresh with the SDK's own refresh (no second rotation)", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { ks, event, refreshes, notices, widget } = await setup(async () => {
      await gate;
      return { status: 200, body: session(8) };
    });
    widget.posted.length = 0;
    ks.api.setSession({ ...session(7), accessToken: "expired" });
    widget.posted.length = 0;
    const own = ks.api.me(); // 401, then the SDK's own refresh
    await flush();
    event("session-expired");
    await flush();
    release();
    expect((await own).walletId).toBe("wal_01");
    await flush();
    expect(refreshes).toEqual([{ refreshToken: "rt_7" }]);
    expect(notices().map((n) => n.message.payload.accessToken)).toEqual(["at_8"]);
  });

  it("ignores session-expired from a foreign origin or another window", async () => {
    const { event, refreshes, widget } = await setup(() => ({ status: 200, body: session(8) }));
    widget.posted.length = 0;
    for (const origin of ["https://evil.example", "http://wallet.example", "https://wallet.example:8443", "https://wallet.example.evil.example", "null"]) {
      event("session-expired", origin);
    }
    event("session-expired", WIDGET_ORIGIN, new FakeWidgetWindow()); // the right origin, another window
    event("session-expired", WIDGET_ORIGIN, null);
    await flush();
    expect(refreshes).toHaveLength(0);
    expect(widget.posted).toHaveLength(0);
  });

  it("a refresh that fails (session revoked) sends logged_out and ends the session", async () => {
    const { ks, event, refreshes, notices, storage, widget } = await setup(() => ({
      status: 401,
      body: { error: { code: "unauthenticated", message: "the refresh token was already used; the session is revoked", details: { reason: "refresh_token_reused" } } },
    }));
    let logouts = 0;
    ks.on("logout", () => logouts++);
    widget.posted.length = 0;
    event("session-expired");
    await flush();
    expect(refreshes).toHaveLength(1);
    expect(notices().map((n) => n.message.payload)).toEqual([{ status: "logged_out" }]);
    expect(notices()[0]!.targetOrigin).toBe(WIDGET_ORIGIN);
    expect(ks.getStatus()).toBe("logged_out");
    expect(logouts).toBe(1);
    expect(storage.getItem(STORAGE_KEY)).toBeNull();
    // Without a session there is nothing to refresh: the answer is logged_out again.
    event("session-expired");
    await flush();
    expect(refreshes).toHaveLength(1);
    expect(notices().map((n) => n.message.payload)).toEqual([{ status: "logged_out" }, { status: "logged_out" }]);
  });

  it("a refresh that fails otherwise (server unreachable) sends nothing and keeps the session", async () => {
    const { ks, event, refreshes, widget } = await setup(() => ({ status: 503, body: { error: { code: "enclave_unavailable", message: "later" } } }));
    widget.posted.length = 0;
    event("session-expired");
    await flush();
    expect(refreshes).toHaveLength(1);
    expect(widget.posted).toHaveLength(0);
    expect(ks.getStatus()).toBe("ready");
    expect(ks.api.session?.accessToken).toBe("at_7");
  });
});

describe("the SDK's own session", () => {
  const expired = { status: 401, body: { error: { code: "unauthenticated", message: "the access token has expired", details: { reason: "expired" } } } };
  const onlyFresh = (req: { headers: Record<string, string> }, ok: { status: number; body?: unknown }) =>
    req.headers.Authorization === "Bearer at_8" ? ok : expired;

  it("a refresh refused during an ordinary call logs out at once: status, event, widget notice", async () => {
    let revoked = false;
    const { ks, refreshes, notices, storage } = await setup(() => ({ status: 401, body: { error: { code: "unauthenticated", message: "session ended" } } }), {
      "GET /v1/accounts": () => (revoked ? expired : { status: 200, body: { accounts: [ACCOUNT] } }),
    });
    revoked = true;
    let logouts = 0;
    ks.on("logout", () => logouts++);
    await expect(ks.getAccounts()).rejects.toMatchObject({ code: "unauthenticated" });
    await flush();
    expect(refreshes).toHaveLength(1);
    expect(ks.getStatus()).toBe("logged_out");
    expect(logouts).toBe(1);
    expect(storage.getItem(STORAGE_KEY)).toBeNull();
    expect(notices().at(-1)!.message.payload).toEqual({ status: "logged_out" });
  });

  it("logout with an expired access token refreshes first, so the server session really ends", async () => {
    const logouts: string[] = [];
    const { ks, refreshes } = await setup(() => ({ status: 200, body: session(8) }), {
      "POST /v1/auth/logout": (req) => {
        logouts.push(req.headers.Authorization ?? "");
        return onlyFresh(req, { status: 204 });
      },
    });
    await ks.logout();
    expect(refreshes).toEqual([{ refreshToken: "rt_7" }]);
    expect(logouts).toEqual(["Bearer at_7", "Bearer at_8"]);
    expect(ks.getStatus()).toBe("logged_out");
    expect(ks.api.session).toBeNull();
  });
});
