import { describe, expect, it } from "vitest";
import { ApiClient, KeysteadError, errorFromResponse } from "../src/api.js";
import { fakeFetch, session } from "./helpers.js";

const SERVER = "https://wallet.example";

describe("ApiClient", () => {
  it("sends X-App-Key everywhere and the bearer token on user calls", async () => {
    const fetch = fakeFetch({
      "GET /v1/app": () => ({ status: 200, body: { appId: "app_01", name: "demo", networks: [], loginProviders: [] } }),
      "GET /v1/accounts": () => ({ status: 200, body: { accounts: [] } }),
    });
    const api = new ApiClient({ serverUrl: SERVER + "/", appKey: "ksa_key", fetch });
    await api.getApp();
    expect(fetch.calls[0]!.url).toBe("https://wallet.example/v1/app");
    expect(fetch.calls[0]!.headers["X-App-Key"]).toBe("ksa_key");
    expect(fetch.calls[0]!.headers.Authorization).toBeUndefined();

    await expect(api.getAccounts()).rejects.toMatchObject({ code: "unauthenticated" });
    api.setSession(session());
    await api.getAccounts();
    expect(fetch.calls[1]!.headers.Authorization).toBe("Bearer at_1");
    expect(fetch.calls[1]!.headers["X-App-Key"]).toBe("ksa_key");
  });

  it("surfaces the error object as a KeysteadError with code, message, details", async () => {
    const fetch = fakeFetch({
      "POST /v1/sign/message": () => ({
        status: 403,
        body: { error: { code: "wrong_pin", message: "wrong PIN", details: { remainingTries: 3 } } },
      }),
    });
    const api = new ApiClient({ serverUrl: SERVER, appKey: "k", fetch });
    api.setSession(session());
    const err = await api
      .signMessage({ accountId: "acc_01", message: "0x00", encoding: "hex", pin: { enc: "", ciphertext: "" } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeysteadError);
    expect(err).toMatchObject({ code: "wrong_pin", message: "wrong PIN", details: { remainingTries: 3 }, status: 403 });
  });

  it("maps bodies without an error object by status, and fetch failures to network_error", async () => {
    expect(errorFromResponse(502, "<html>")).toMatchObject({ code: "internal", status: 502 });
    expect(errorFromResponse(429, undefined)).toMatchObject({ code: "rate_limited" });
    expect(errorFromResponse(400, { error: { code: "wallet_locked", message: "locked", details: { retryAfter: 60 } } })).toMatchObject({
      code: "wallet_locked",
      details: { retryAfter: 60 },
    });
    const api = new ApiClient({
      serverUrl: SERVER,
      appKey: "k",
      fetch: async () => {
        throw new TypeError("connection refused");
      },
    });
    await expect(api.getApp()).rejects.toMatchObject({ code: "network_error" });
  });

  it("refreshes an expired access token once, rotates the session and retries", async () => {
    let calls = 0;
    const changes: unknown[] = [];
    const fetch = fakeFetch({
      "GET /v1/me": (req) => {
        calls++;
        if (req.headers.Authorization === "Bearer at_1") {
          return { status: 401, body: { error: { code: "unauthenticated", message: "expired" } } };
        }
        return { status: 200, body: { user: { id: "usr_01" }, status: "complete", walletId: "wal_01" } };
      },
      "POST /v1/auth/refresh": (req) => {
        expect(req.body).toEqual({ refreshToken: "rt_1" });
        expect(req.headers.Authorization).toBeUndefined();
        return { status: 200, body: session(2) };
      },
    });
    const api = new ApiClient({ serverUrl: SERVER, appKey: "k", fetch, onSessionChange: (s) => changes.push(s?.accessToken ?? null) });
    api.setSession(session(1));
    const me = await api.me();
    expect(me.walletId).toBe("wal_01");
    expect(calls).toBe(2);
    expect(api.session?.refreshToken).toBe("rt_2");
    expect(changes).toEqual(["at_1", "at_2"]);
  });

  it("drops the session when the refresh token is refused", async () => {
    const fetch = fakeFetch({
      "GET /v1/me": () => ({ status: 401, body: { error: { code: "unauthenticated", message: "expired" } } }),
      "POST /v1/auth/refresh": () => ({ status: 401, body: { error: { code: "unauthenticated", message: "revoked" } } }),
    });
    const api = new ApiClient({ serverUrl: SERVER, appKey: "k", fetch });
    api.setSession(session(1));
    await expect(api.me()).rejects.toMatchObject({ code: "unauthenticated" });
    expect(api.session).toBeNull();
  });

  it("sends the Idempotency-Key on tx/send and logs out with 204", async () => {
    const fetch = fakeFetch({
      "POST /v1/tx/send": () => ({ status: 202, body: { id: "tx_1", hash: "0xab", status: "pending", network: "local", from: "0x", nonce: 0 } }),
      "POST /v1/auth/logout": () => ({ status: 204 }),
    });
    const api = new ApiClient({ serverUrl: SERVER, appKey: "k", fetch });
    api.setSession(session());
    const intent = { network: "local", chainId: 1, from: "0x", to: "0x", value: "0", data: "0x", gasLimit: "1", maxFeePerGas: "1", maxPriorityFeePerGas: "1" };
    expect((await api.sendTx({ intent, pin: { enc: "a", ciphertext: "b" } }, "key-1")).hash).toBe("0xab");
    expect(fetch.calls[0]!.headers["Idempotency-Key"]).toBe("key-1");
    await api.logout();
    expect(api.session).toBeNull();
  });

  it("a 401 that arrives after a refresh finished retries with the new session, never the spent refresh token", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const refreshes: unknown[] = [];
    const fetch = fakeFetch({
      "GET /v1/me": async (req) => {
        if (req.headers.Authorization === "Bearer at_1") {
          await gate; // this refusal arrives late
          return { status: 401, body: { error: { code: "unauthenticated", message: "expired", details: { reason: "expired" } } } };
        }
        return { status: 200, body: { user: { id: "usr_01" }, status: "complete", walletId: "wal_01" } };
      },
      "GET /v1/accounts": (req) =>
        req.headers.Authorization === "Bearer at_1"
          ? { status: 401, body: { error: { code: "unauthenticated", message: "expired", details: { reason: "expired" } } } }
          : { status: 200, body: { accounts: [] } },
      "POST /v1/auth/refresh": (req) => {
        refreshes.push(req.body);
        return { status: 200, body: session(2) };
      },
    });
    const api = new ApiClient({ serverUrl: SERVER, appKey: "k", fetch });
    api.setSession(session(1));
    const late = api.me();
    expect(await api.getAccounts()).toEqual([]); // refused, refreshed (rt_1 → rt_2), retried
    release();
    expect((await late).walletId).toBe("wal_01");
    expect(refreshes).toEqual([{ refreshToken: "rt_1" }]);
    expect(api.session?.refreshToken).toBe("rt_2");
  });

  it("renewSession: a client without the refresh token asks its owner once, then retries with the same body and Idempotency-Key", async () => {
    const seen: Array<{ auth: string | undefined; key: string | undefined; body: unknown }> = [];
    const fetch = fakeFetch({
      "POST /v1/tx/send": (req) => {
        seen.push({ auth: req.headers.Authorization, key: req.headers["Idempotency-Key"], body: req.body });
        return req.headers.Authorization === "Bearer at_1"
          ? { status: 401, body: { error: { code: "unauthenticated", message: "expired", details: { reason: "expired" } } } }
          : { status: 202, body: { id: "tx_1", hash: "0xab", status: "pending", network: "local", from: "0x", nonce: 0 } };
      },
      "GET /v1/accounts/acc_01/balance": (req) =>
        req.headers.Authorization === "Bearer at_1"
          ? { status: 401, body: { error: { code: "unauthenticated", message: "expired" } } }
          : { status: 200, body: { network: "local", address: "0x", native: { symbol: "ETH", decimals: 18, amount: "1" }, tokens: [] } },
      "POST /v1/auth/refresh": () => {
        throw new Error("the widget's client must never refresh");
      },
    });
    const asked: string[] = [];
    const api = new ApiClient({
      serverUrl: SERVER,
      appKey: "k",
      fetch,
      renewSession: async (expired) => {
        asked.push(expired.accessToken);
        await new Promise((r) => setTimeout(r, 5));
        return { ...session(2), refreshToken: "" };
      },
    });
    api.setSession({ ...session(1), refreshToken: "" });
    const intent = { network: "local", chainId: 1, from: "0x", to: "0x", value: "0", data: "0x", gasLimit: "1", maxFeePerGas: "1", maxPriorityFeePerGas: "1" };
    const env = { enc: "a", ciphertext: "b" };
    const [tx, b1, b2] = await Promise.all([api.sendTx({ intent, pin: env }, "key-1"), api.getBalance("acc_01"), api.getBalance("acc_01")]);
    expect(tx.hash).toBe("0xab");
    expect(b1.native.amount).toBe("1");
    expect(b2.native.amount).toBe("1");
    expect(asked).toEqual(["at_1"]); // one request for three refusals
    expect(seen).toEqual([
      { auth: "Bearer at_1", key: "key-1", body: { intent, pin: env } },
      { auth: "Bearer at_2", key: "key-1", body: { intent, pin: env } },
    ]);
    expect(fetch.calls.filter((c) => c.url.endsWith("/v1/auth/refresh"))).toHaveLength(0);
  });

  it("renewSession: a refused renewal fails the call once, keeping the session for the owner to decide", async () => {
    let sends = 0;
    const fetch = fakeFetch({
      "GET /v1/me": () => {
        sends++;
        return { status: 401, body: { error: { code: "unauthenticated", message: "expired", details: { reason: "expired" } } } };
      },
    });
    const api = new ApiClient({
      serverUrl: SERVER,
      appKey: "k",
      fetch,
      renewSession: async () => {
        throw new KeysteadError("unauthenticated", "the session expired", { reason: "expired" }, 401);
      },
    });
    api.setSession({ ...session(1), refreshToken: "" });
    await expect(api.me()).rejects.toMatchObject({ code: "unauthenticated" });
    expect(sends).toBe(1);
    expect(api.session?.accessToken).toBe("at_1");
  });
});
