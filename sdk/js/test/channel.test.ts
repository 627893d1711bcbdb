import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  PROTOCOL,
  PostMessageChannel,
  WidgetApprover,
} from "../src/channel.js";
import { UserRejectedError, withApproval } from "../src/approval.js";
import { KeysteadError } from "../src/api.js";
import { FakeHostWindow, FakeWidgetWindow } from "./helpers.js";

const WIDGET_URL = "https://widget.keystead.example/widget/?x=1";
const WIDGET_ORIGIN = "https://widget.keystead.example";

function setup(options: { readyTimeoutMs?: number; requestTimeoutMs?: number } = {}) {
  const host = new FakeHostWindow();
  const widget = new FakeWidgetWindow();
  const frame = { shown: 0, hidden: 0 };
  const channel = new PostMessageChannel({
    widgetUrl: WIDGET_URL,
    window: host,
    host: {
      target: () => widget,
      show: () => frame.shown++,
      hide: () => frame.hidden++,
    },
    ...options,
  });
  const fromWidget = (data: unknown, origin = WIDGET_ORIGIN, source: unknown = widget) => host.deliver({ data, origin, source });
  const ready = () => fromWidget({ protocol: PROTOCOL, version: 1, kind: "event", type: "ready", payload: { version: 1 } });
  const respond = (id: string, body: object, origin?: string, source?: unknown) =>
    fromWidget({ protocol: PROTOCOL, version: 1, kind: "response", id, ...body }, origin, source);
  return { host, widget, channel, frame, fromWidget, ready, respond };
}

const flush = () => new Promise((r) => setTimeout(r, 0));

describe("PostMessageChannel", () => {
  it("posts to the widget's exact origin only, never '*', once the widget is ready", async () => {
    const { widget, channel, ready, respond, frame } = setup();
    expect(channel.widgetOrigin).toBe(WIDGET_ORIGIN);
    const pending = channel.request("open", { view: "home" });
    await flush();
    expect(widget.posted).toHaveLength(0); // not before `ready`
    ready();
    await flush();
    expect(widget.posted).toHaveLength(1);
    const { message, targetOrigin } = widget.posted[0]!;
    expect(targetOrigin).toBe(WIDGET_ORIGIN);
    expect(message).toMatchObject({ protocol: PROTOCOL, version: 1, kind: "request", type: "open", payload: { view: "home" } });
    expect(message.id).toMatch(/^[0-9a-f]{32}$/);
    expect(frame.shown).toBe(1);
    respond(message.id, { ok: true, result: { closed: true } });
    expect(await pending).toEqual({ closed: true });
    expect(frame.hidden).toBe(1);
  });

  it("ignores messages from any other origin or any other window", async () => {
    const { widget, channel, ready, respond, fromWidget } = setup();
    ready();
    const pending = channel.request("login", { appId: "app_01", appName: "demo", loginProviders: [] });
    let settled = false;
    void pending.then(() => (settled = true));
    await flush();
    const id = widget.posted[0]!.message.id as string;
    const forged = { ok: true, result: { provider: "evil", idToken: "forged" } };
    // Same-looking origins that are not the exact origin.
    for (const origin of [
      "https://evil.example",
      "http://widget.keystead.example",
      "https://widget.keystead.example:8443",
      "https://widget.keystead.example.evil.example",
      "https://keystead.example",
      "null",
    ]) {
      respond(id, forged, origin);
    }
    // The right origin but another window (e.g. another frame of the widget's origin).
    respond(id, forged, WIDGET_ORIGIN, new FakeWidgetWindow());
    respond(id, forged, WIDGET_ORIGIN, null);
    // Not our protocol, or another version.
    fromWidget({ kind: "response", id, ok: true, result: {} });
    fromWidget({ protocol: PROTOCOL, version: 2, kind: "response", id, ok: true, result: {} });
    fromWidget("a string");
    await flush();
    expect(settled).toBe(false);
    // Unknown ids are ignored too.
    respond("0".repeat(32), { ok: true, result: {} });
    respond(id, { ok: true, result: { provider: "dev", idToken: "tok" } });
    expect(await pending).toEqual({ provider: "dev", idToken: "tok" });
  });

  it("does not become ready on a forged `ready`", async () => {
    const { widget, channel, fromWidget } = setup();
    fromWidget({ protocol: PROTOCOL, version: 1, kind: "event", type: "ready" }, "https://evil.example");
    void channel.request("open", { view: "home" }).catch(() => {});
    await flush();
    expect(widget.posted).toHaveLength(0);
    channel.close();
  });

  it("maps widget errors: user_rejected → UserRejectedError, others → KeysteadError", async () => {
    const { widget, channel, ready, respond } = setup();
    ready();
    const a = channel.request("open", { view: "home" });
    const b = channel.request("open", { view: "settings" });
    await flush();
    respond(widget.posted[0]!.message.id, { ok: false, error: { code: "user_rejected", message: "no" } });
    respond(widget.posted[1]!.message.id, { ok: false, error: { code: "attestation_failed", message: "bad doc", details: { why: 1 } } });
    await expect(a).rejects.toBeInstanceOf(UserRejectedError);
    await expect(b).rejects.toMatchObject({ code: "attestation_failed", details: { why: 1 } });
  });

  it("a `close` event from the widget declines what is pending", async () => {
    const { channel, ready, fromWidget } = setup();
    ready();
    const pending = channel.request("open", { view: "home" });
    await flush();
    fromWidget({ protocol: PROTOCOL, version: 1, kind: "event", type: "close" }, "https://evil.example"); // ignored
    fromWidget({ protocol: PROTOCOL, version: 1, kind: "event", type: "close" });
    await expect(pending).rejects.toBeInstanceOf(UserRejectedError);
  });

  it("a `logged-out` event reaches its handlers, from the widget only", async () => {
    const { channel, ready, fromWidget } = setup();
    ready();
    let seen = 0;
    channel.on("logged-out", () => seen++);
    fromWidget({ protocol: PROTOCOL, version: 1, kind: "event", type: "logged-out" }, "https://evil.example"); // ignored
    fromWidget({ protocol: PROTOCOL, version: 1, kind: "event", type: "logged-out" }, WIDGET_ORIGIN, {}); // not the frame
    expect(seen).toBe(0);
    fromWidget({ protocol: PROTOCOL, version: 1, kind: "event", type: "logged-out", payload: {} });
    expect(seen).toBe(1);
  });

  describe("timeouts", () => {
    beforeEach(() => vi.useFakeTimers());
    afterEach(() => vi.useRealTimers());

    it("times out a request the widget never answers", async () => {
      const { channel, ready } = setup({ requestTimeoutMs: 1000 });
      ready();
      const pending = channel.request("open", { view: "home" });
      const check = expect(pending).rejects.toMatchObject({ code: "widget_timeout" });
      await vi.advanceTimersByTimeAsync(1001);
      await check;
    });

    it("fails with widget_unavailable when the widget never says ready", async () => {
      const { channel } = setup({ readyTimeoutMs: 500 });
      const pending = channel.request("open", { view: "home" });
      const check = expect(pending).rejects.toMatchObject({ code: "widget_unavailable" });
      await vi.advanceTimersByTimeAsync(501);
      await check;
    });
  });

  it("close() removes the listener and rejects pending requests", async () => {
    const { host, channel, ready } = setup();
    ready();
    const pending = channel.request("open", { view: "home" });
    await flush();
    expect(host.listeners.size).toBe(1);
    channel.close();
    expect(host.listeners.size).toBe(0);
    await expect(pending).rejects.toBeInstanceOf(KeysteadError);
  });

  it("refuses a widget URL without an origin", () => {
    expect(() => new PostMessageChannel({ widgetUrl: "data:text/html,hi", window: new FakeHostWindow(), host: { target: () => null } })).toThrow();
  });
});

describe("WidgetApprover", () => {
  it("sends approve requests with a stable approvalId, the retry, and an approval-complete notice", async () => {
    const { widget, channel, ready, respond } = setup();
    ready();
    const approver = new WidgetApprover(channel);
    const request = { purpose: "change_pin" as const, appId: "app_01", walletId: "wal_01" };
    let calls = 0;
    const done = withApproval(approver, request, async () => {
      calls++;
      if (calls === 1) throw new KeysteadError("wrong_pin", "wrong PIN", { remainingTries: 4 }, 403);
      return "ok";
    });
    const env = { enc: "AA==", ciphertext: "AA==" };
    await flush();
    const first = widget.posted[0]!.message;
    expect(first).toMatchObject({ type: "approve", payload: { request } });
    expect(first.payload.retry).toBeUndefined();
    respond(first.id, { ok: true, result: { pin: env, newPin: env } });
    await flush();
    await flush();
    const second = widget.posted[1]!.message;
    expect(second.payload.approvalId).toBe(first.payload.approvalId);
    expect(second.payload.retry).toEqual({ code: "wrong_pin", message: "wrong PIN", details: { remainingTries: 4 } });
    respond(second.id, { ok: true, result: { pin: env, newPin: env } });
    expect(await done).toBe("ok");
    const notice = widget.posted[2]!;
    expect(notice.targetOrigin).toBe(WIDGET_ORIGIN);
    expect(notice.message).toMatchObject({ kind: "notice", type: "approval-complete", payload: { approvalId: first.payload.approvalId, outcome: { ok: true } } });
  });
});
