// A few DOM helpers: text only (never innerHTML), so nothing a host or server sends can run.

type Child = Node | string | null | undefined | false;
type Attrs = Record<string, string | boolean | number | undefined | null | ((e: Event) => void)>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (typeof value === "function") el.addEventListener(name.replace(/^on/, ""), value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

/** A definition list row: term and description. */
export function row(term: string, ...value: Child[]): HTMLElement[] {
  return [h("dt", {}, term), h("dd", {}, ...value)];
}

export function dl(...rows: HTMLElement[][]): HTMLDListElement {
  return h("dl", { class: "details" }, ...rows.flat());
}

/** Wei-like base units as a decimal string with `decimals` places, trailing zeros cut. */
export function formatUnits(amount: string | bigint, decimals: number): string {
  const v = BigInt(amount);
  const neg = v < 0n;
  const abs = neg ? -v : v;
  const base = 10n ** BigInt(decimals);
  const whole = abs / base;
  const frac = (abs % base).toString().padStart(decimals, "0").replace(/0+$/, "");
  return `${neg ? "-" : ""}${whole}${frac ? "." + frac : ""}`;
}

/**
 * A balance to read at a glance: at most `places` decimals, rounded down (it never shows
 * more than there is), `< 0.000001` for a smaller non-zero amount. Approvals show exact
 * amounts with [`formatUnits`]; a balance's exact amount goes in its title.
 */
export function formatBalance(amount: string | bigint, decimals: number, places = 6): string {
  const v = BigInt(amount);
  if (v < 0n || decimals <= places) return formatUnits(v, decimals);
  const step = 10n ** BigInt(decimals - places);
  const shown = (v / step) * step;
  if (shown === 0n && v > 0n) return `< ${formatUnits(step, decimals)}`;
  return formatUnits(shown, decimals);
}

/** Decimal text to base units; null when it is not a plain non-negative number. */
export function parseUnits(text: string, decimals: number): bigint | null {
  const m = /^\s*(\d*)(?:\.(\d*))?\s*$/.exec(text);
  if (!m || (m[1] === "" && (m[2] ?? "") === "")) return null;
  const frac = m[2] ?? "";
  if (frac.length > decimals) return null;
  return BigInt((m[1] || "0") + frac.padEnd(decimals, "0"));
}
