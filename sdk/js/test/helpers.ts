import type { FetchLike } from "../src/api.js";

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
