import type { FetchLike } from "../src/api.js";
import type { MessageEventLike, WindowLike } from "../src/channel.js";
import type { StorageLike } from "../src/index.js";

export interface Recorded {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: unknown;
}

export type Route = (req: Recorded) => { status: number; body?: unknown } | Promise<{ status: number; body?: unknown }>;

/** A fetch double: routes by "METHOD /path", records every request. */
export function fakeFetch(routes: Record<string, Route>): FetchLike & { calls: Recorded[] } {
  const calls: Recorded[] = [];
  const f = (async (input: string, init?: RequestInit) => {
    const url = new URL(input);
    const headers = Object.fromEntries(Object.entries((init?.headers ?? {}) as Record<string, string>));
    const req: Recorded = {
      url: input,
      method: init?.method ?? "GET",
      headers,
      body: init?.body ? JSON.parse(init.body as string) : undefined,
    };
    calls.push(req);
    const route = routes[`${req.method} ${url.pathname}`] ?? routes[`${req.method} ${url.origin}${url.pathname}`];
    if (!route) return new Response(JSON.stringify({ error: { code: "not_found", message: "no route" } }), { status: 404 });
    const { status, body } = await route(req);
    return new Response(status === 204 || body === undefined ? null : JSON.stringify(body), {
      status,
      headers: { "Content-Type": "application/json" },
    });
  }) as FetchLike & { calls: Recorded[] };
  f.calls = calls;
  return f;
}

export const session = (n = 1) => ({
  accessToken: `at_${n}`,
  refreshToken: `rt_${n}`,
  expiresIn: 900,
  user: { id: "usr_01", email: "a@example.com" },
  status: "complete",
});

/** The host page's window: collects listeners, lets the test deliver MessageEvents. */
export class FakeHostWindow implements WindowLike {
  listeners = new Set<(e: MessageEventLike) => void>();
  addEventListener(_t: "message", l: (e: MessageEventLike) => void) {
    this.listeners.add(l);
  }
  removeEventListener(_t: "message", l: (e: MessageEventLike) => void) {
    this.listeners.delete(l);
  }
  deliver(event: MessageEventLike) {
    for (const l of [...this.listeners]) l(event);
  }
}

/** The widget's window: records what the SDK posts and with which targetOrigin. */
export class FakeWidgetWindow {
  posted: Array<{ message: any; targetOrigin: string }> = [];
  postMessage(message: unknown, targetOrigin: string) {
    this.posted.push({ message, targetOrigin });
  }
}

/** Storage in a Map (the SDK's session persistence). */
export class MapStorage implements StorageLike {
  map = new Map<string, string>();
  getItem = (k: string) => this.map.get(k) ?? null;
  setItem = (k: string, v: string) => void this.map.set(k, v);
  removeItem = (k: string) => void this.map.delete(k);
}

/** The app and account the SDK tests' fake server answers with. */
export const APP = {
  appId: "app_01",
  name: "demo",
  networks: [{ id: "local", family: "evm", chainId: 31337, name: "local", symbol: "ETH", decimals: 18 }],
  loginProviders: [{ name: "dev", issuer: "https://issuer.example" }],
};
export const ACCOUNT = { id: "acc_01", network: "local", family: "evm", address: "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", path: "m/44'/60'/0'/0/0" };
