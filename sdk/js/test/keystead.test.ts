import { describe, expect, it } from "vitest";
import { Keystead, type Approver, type WidgetChannel } from "../src/index.js";
import { ACCOUNT, APP, MapStorage, fakeFetch, session } from "./helpers.js";

const ENV = { enc: "AA==", ciphertext: "AA==" };

function fakeChannel(): WidgetChannel & { requests: Array<{ type: string; payload: unknown }>; notices: unknown[] } {
  const requests: Array<{ type: string; payload: unknown }> = [];
  const notices: unknown[] = [];
  return {
    widgetOrigin: "https://widget.example",
    requests,
    notices,
    async request(type, payload) {
      requests.push({ type, payload });
      if (type === "login") return { provider: "dev", idToken: "id.token" } as never;
      if (type === "reveal") return { acknowledged: true } as never;
      return { closed: true } as never;
    },
    notify(type, payload) {
      notices.push({ type, payload });
    },
    on: () => () => {},
    close() {},
  };
}

describe("Keystead", () => {
  it("init without a stored session is logged_out; loginWithUI then register reach ready", async () => {
    let hasWallet = false;
    const fetch = fakeFetch({
      "GET /v1/app": () => ({ status: 200, body: APP }),
      "POST /v1/auth/id-token": (req) => {
        expect(req.body).toEqual({ provider: "dev", idToken: "id.token" });
        return { status: 200, body: { ...session(), status: "pin_required" } };
      },
      "GET /v1/me": () => ({ status: 200, body: { user: { id: "usr_01" }, status: hasWallet ? "complete" : "pin_required", walletId: hasWallet ? "wal_01" : null } }),
      "POST /v1/wallet": (req) => {
        expect(req.body).toEqual({ pin: ENV, clientKey: "Y2xpZW50" });
        hasWallet = true;
        return { status: 201, body: { walletId: "wal_01", accounts: [ACCOUNT], recoveryKit: { enc: "cmVj", ciphertext: "a2l0" } } };
      },
      "GET /v1/accounts": () => ({ status: 200, body: { accounts: hasWallet ? [ACCOUNT] : [] } }),
      "POST /v1/auth/logout": () => ({ status: 204 }),
    });
    const channel = fakeChannel();
    const approvals: unknown[] = [];
    const reveals: unknown[] = [];
    const approver: Approver = {
      async approve(request) {
        approvals.push(request);
        return { pin: ENV, clientKey: "Y2xpZW50" } as never;
      },
      async reveal(_request, kind, sealed) {
        reveals.push({ kind, sealed });
      },
    };
    const storage = new MapStorage();
    const ks = new Keystead({ appKey: "ksa_test", serverUrl: "https://wallet.example", fetch, channel, approver, storage });
    const statuses: string[] = [];
    ks.on("status", (s) => statuses.push(s));
    expect(ks.getStatus()).toBe("uninitialized");
    expect(await ks.init()).toBe("logged_out");
    expect(await ks.loginWithUI()).toBe("pin_required");
    expect(channel.requests[0]).toEqual({ type: "login", payload: { appId: "app_01", appName: "demo", loginProviders: APP.loginProviders } });
    expect(storage.map.size).toBe(1);

    const provider = ks.getProvider("local");
    const accountsEvents: unknown[] = [];
    provider.on("accountsChanged", (a) => accountsEvents.push(a));

    const out = await ks.register();
    expect(out).toEqual({ walletId: "wal_01", accounts: [ACCOUNT] });
    expect(approvals).toEqual([{ purpose: "create_wallet", appId: "app_01", userId: "usr_01" }]);
    expect(reveals).toEqual([{ kind: "recoveryKit", sealed: { enc: "cmVj", ciphertext: "a2l0" } }]);
    expect(ks.getStatus()).toBe("ready");
    expect(accountsEvents).toEqual([[ACCOUNT.address]]);
    expect(statuses).toEqual(["initializing", "logged_out", "pin_required", "ready"]);

    await ks.logout();
    expect(ks.getStatus()).toBe("logged_out");
    expect(storage.map.size).toBe(0);
    expect(accountsEvents).toEqual([[ACCOUNT.address], []]);
  });

  it("restores a stored session on init and reaches ready", async () => {
    const fetch = fakeFetch({
      "GET /v1/app": () => ({ status: 200, body: APP }),
      "GET /v1/me": (req) => {
        expect(req.headers.Authorization).toBe("Bearer at_7");
        return { status: 200, body: { user: { id: "usr_01" }, status: "complete", walletId: "wal_01" } };
      },
      "GET /v1/accounts": () => ({ status: 200, body: { accounts: [ACCOUNT] } }),
      "GET /v1/accounts/acc_01/balance": () => ({
        status: 200,
        body: { network: "local", address: ACCOUNT.address, native: { symbol: "ETH", decimals: 18, amount: "5" }, tokens: [] },
      }),
    });
    const storage = new MapStorage();
    storage.setItem("keystead:session:ksa_test", JSON.stringify(session(7)));
    const ks = new Keystead({ appKey: "ksa_test", serverUrl: "https://wallet.example", fetch, channel: fakeChannel(), storage });
    expect(await ks.init()).toBe("ready");
    expect((await ks.getBalance()).native.amount).toBe("5");
    expect(await ks.getProvider().request({ method: "eth_accounts" })).toEqual([ACCOUNT.address]);
    expect(() => ks.getProvider(1)).toThrow();
  });

  it("loginWithUI takes a session the widget's popup login returned, without an ID-token exchange", async () => {
    const fetch = fakeFetch({
      "GET /v1/app": () => ({ status: 200, body: APP }),
      "GET /v1/accounts": (req) => {
        expect(req.headers.Authorization).toBe("Bearer at_3");
        return { status: 200, body: { accounts: [ACCOUNT] } };
      },
    });
    const channel = fakeChannel();
    channel.request = (async (type: string, payload: unknown) => {
      channel.requests.push({ type, payload });
      return { session: { ...session(3), status: "complete" } };
    }) as never;
    const storage = new MapStorage();
    const ks = new Keystead({ appKey: "ksa_test", serverUrl: "https://wallet.example", fetch, channel, storage });
    await ks.init();
    expect(await ks.loginWithUI()).toBe("ready");
    expect(JSON.parse(storage.getItem("keystead:session:ksa_test")!).accessToken).toBe("at_3");
  });

  it("a `logged-out` event from the widget ends the session here too", async () => {
    const fetch = fakeFetch({
      "GET /v1/app": () => ({ status: 200, body: APP }),
      "GET /v1/me": () => ({ status: 200, body: { user: { id: "usr_01" }, status: "complete", walletId: "wal_01" } }),
      "GET /v1/accounts": () => ({ status: 200, body: { accounts: [ACCOUNT] } }),
    });
    const channel = fakeChannel();
    const handlers = new Map<string, Array<(p: unknown) => void>>();
    channel.on = ((type: string, handler: (p: unknown) => void) => {
      handlers.set(type, [...(handlers.get(type) ?? []), handler]);
      return () => {};
    }) as never;
    const storage = new MapStorage();
    storage.setItem("keystead:session:ksa_test", JSON.stringify(session(7)));
    const ks = new Keystead({ appKey: "ksa_test", serverUrl: "https://wallet.example", fetch, channel, storage });
    expect(await ks.init()).toBe("ready");
    let loggedOut = 0;
    ks.on("logout", () => loggedOut++);
    for (const h of handlers.get("logged-out") ?? []) h({});
    expect(ks.getStatus()).toBe("logged_out");
    expect(loggedOut).toBe(1);
    expect(storage.getItem("keystead:session:ksa_test")).toBeNull();
    expect(ks.api.isAuthenticated()).toBe(false);
    expect(channel.notices).toContainEqual({ type: "session", payload: { status: "logged_out" } });
  });

  it("methods that need init say so; the widget is required for UI calls outside browsers", async () => {
    const ks = new Keystead({ appKey: "k", serverUrl: "https://wallet.example", fetch: fakeFetch({ "GET /v1/app": () => ({ status: 200, body: APP }) }), storage: "memory" });
    expect(() => ks.getProvider()).toThrow(/init/);
    await ks.init();
    await expect(ks.loginWithUI()).rejects.toMatchObject({ code: "widget_unavailable" });
  });
});
