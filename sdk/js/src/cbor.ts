// A small, strict CBOR (RFC 8949) reader and writer: exactly what COSE_Sign1 attestation
// documents need. Definite lengths only; floats and indefinite items are refused.

export type CborValue =
  | { type: "uint"; value: bigint }
  | { type: "nint"; value: bigint } // the negative integer itself (e.g. -8n)
  | { type: "bytes"; value: Uint8Array }
  | { type: "text"; value: string }
  | { type: "array"; value: CborValue[] }
  | { type: "map"; value: Array<[CborValue, CborValue]> }
  | { type: "tag"; tag: bigint; value: CborValue }
  | { type: "simple"; value: boolean | null | undefined };

export class CborError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CborError";
  }
}

const MAX_DEPTH = 16;

class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  byte(): number {
    if (this.pos >= this.buf.length) throw new CborError("unexpected end of CBOR");
    return this.buf[this.pos++]!;
  }

  take(n: number): Uint8Array {
    if (n > this.buf.length - this.pos) throw new CborError("unexpected end of CBOR");
    const out = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  argument(info: number): bigint {
    if (info < 24) return BigInt(info);
    const size = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : 0;
    if (size === 0) throw new CborError("indefinite or reserved CBOR length");
    let n = 0n;
    for (const b of this.take(size)) n = (n << 8n) | BigInt(b);
    return n;
  }

  length(info: number): number {
    const n = this.argument(info);
    if (n > BigInt(this.buf.length - this.pos) * 8n + 8n) throw new CborError("CBOR length too large");
    return Number(n);
  }

  item(depth: number): CborValue {
    if (depth > MAX_DEPTH) throw new CborError("CBOR nested too deeply");
    const head = this.byte();
    const major = head >> 5;
    const info = head & 31;
    switch (major) {
      case 0:
        return { type: "uint", value: this.argument(info) };
      case 1:
        return { type: "nint", value: -1n - this.argument(info) };
      case 2:
        return { type: "bytes", value: this.take(this.length(info)) };
      case 3: {
        const raw = this.take(this.length(info));
        let text: string;
        try {
          text = new TextDecoder("utf-8", { fatal: true }).decode(raw);
        } catch {
          throw new CborError("CBOR text is not UTF-8");
        }
        return { type: "text", value: text };
      }
      case 4: {
        const n = this.length(info);
        const items: CborValue[] = [];
        for (let i = 0; i < n; i++) items.push(this.item(depth + 1));
        return { type: "array", value: items };
      }
      case 5: {
        const n = this.length(info);
        const entries: Array<[CborValue, CborValue]> = [];
        for (let i = 0; i < n; i++) entries.push([this.item(depth + 1), this.item(depth + 1)]);
        return { type: "map", value: entries };
      }
      case 6:
        return { type: "tag", tag: this.argument(info), value: this.item(depth + 1) };
      default:
        if (info === 20) return { type: "simple", value: false };
        if (info === 21) return { type: "simple", value: true };
        if (info === 22) return { type: "simple", value: null };
        if (info === 23) return { type: "simple", value: undefined };
        throw new CborError("unsupported CBOR simple value or float");
    }
  }
}

/** Decodes exactly one CBOR item spanning all of `bytes`. */
export function cborDecode(bytes: Uint8Array): CborValue {
  const reader = new Reader(bytes);
  const value = reader.item(0);
  if (reader.pos !== bytes.length) throw new CborError("trailing bytes after CBOR item");
  return value;
}

function head(major: number, n: bigint): number[] {
  const m = major << 5;
  if (n < 24n) return [m | Number(n)];
  if (n < 0x100n) return [m | 24, Number(n)];
  if (n < 0x10000n) return [m | 25, Number(n >> 8n), Number(n & 255n)];
  if (n < 0x100000000n) {
    return [m | 26, ...[24n, 16n, 8n, 0n].map((s) => Number((n >> s) & 255n))];
  }
  return [m | 27, ...[56n, 48n, 40n, 32n, 24n, 16n, 8n, 0n].map((s) => Number((n >> s) & 255n))];
}

/** Encodes with the shortest heads (what ciborium writes), map entries in the given order. */
export function cborEncode(value: CborValue): Uint8Array {
  const out: number[] = [];
  const push = (bytes: ArrayLike<number>) => {
    for (let i = 0; i < bytes.length; i++) out.push(bytes[i]!);
  };
  const walk = (v: CborValue) => {
    switch (v.type) {
      case "uint":
        push(head(0, v.value));
        break;
      case "nint":
        push(head(1, -1n - v.value));
        break;
      case "bytes":
        push(head(2, BigInt(v.value.length)));
        push(v.value);
        break;
      case "text": {
        const raw = new TextEncoder().encode(v.value);
        push(head(3, BigInt(raw.length)));
        push(raw);
        break;
      }
      case "array":
        push(head(4, BigInt(v.value.length)));
        v.value.forEach(walk);
        break;
      case "map":
        push(head(5, BigInt(v.value.length)));
        for (const [k, x] of v.value) {
          walk(k);
          walk(x);
        }
        break;
      case "tag":
        push(head(6, v.tag));
        walk(v.value);
        break;
      case "simple":
        out.push(v.value === false ? 0xf4 : v.value === true ? 0xf5 : v.value === null ? 0xf6 : 0xf7);
        break;
    }
  };
  walk(value);
  return Uint8Array.from(out);
}

/** Shorthands for building values. */
export const cbor = {
  int: (n: number | bigint): CborValue =>
    BigInt(n) >= 0n ? { type: "uint", value: BigInt(n) } : { type: "nint", value: BigInt(n) },
  bytes: (value: Uint8Array): CborValue => ({ type: "bytes", value }),
  text: (value: string): CborValue => ({ type: "text", value }),
  array: (value: CborValue[]): CborValue => ({ type: "array", value }),
  map: (value: Array<[CborValue, CborValue]>): CborValue => ({ type: "map", value }),
  null: (): CborValue => ({ type: "simple", value: null }),
};
