// The envelope shared by `dev` and `nitro` attestation documents: an (untagged)
// COSE_Sign1 (RFC 9052) whose payload is the AWS Nitro NSM attestation map. Mirrors
// crates/attestation/src/cose.rs and payload.rs; the format-specific checks are in
// crypto.ts (dev) and nitro.ts (nitro).

import { cborDecode, cborEncode, cbor, type CborValue } from "./cbor.js";

export const ALG_EDDSA = -8n;
export const ALG_ES384 = -35n;
export const MAX_DOCUMENT_LEN = 64 * 1024;
export const PCR_LEN = 48;

/** COSE algorithm names as crates/attestation/src/cose.rs prints them. */
export function coseAlgName(alg: bigint): string {
  return alg === ALG_ES384 ? "ES384 (nitro)" : alg === ALG_EDDSA ? "EdDSA (dev)" : `COSE alg ${alg}`;
}

export class AttestationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AttestationError";
  }
}

export interface CoseSign1 {
  protected: Uint8Array;
  alg: bigint;
  payload: Uint8Array;
  signature: Uint8Array;
}

export function decodeCoseSign1(document: Uint8Array): CoseSign1 {
  if (document.length > MAX_DOCUMENT_LEN) throw new AttestationError("document too large");
  let value: CborValue;
  try {
    value = cborDecode(document);
  } catch (e) {
    throw new AttestationError(`COSE_Sign1: ${(e as Error).message}`);
  }
  if (value.type === "tag") {
    if (value.tag !== 18n) throw new AttestationError(`unexpected CBOR tag ${value.tag}`);
    value = value.value;
  }
  if (value.type !== "array" || value.value.length !== 4) {
    throw new AttestationError("COSE_Sign1 must be an array of 4 elements");
  }
  const [prot, unprot, payload, signature] = value.value as [CborValue, CborValue, CborValue, CborValue];
  if (prot.type !== "bytes" || unprot.type !== "map" || payload.type !== "bytes" || signature.type !== "bytes") {
    throw new AttestationError("COSE_Sign1 elements have the wrong types");
  }
  let header: CborValue;
  try {
    header = cborDecode(prot.value);
  } catch (e) {
    throw new AttestationError(`protected header: ${(e as Error).message}`);
  }
  if (header.type !== "map") throw new AttestationError("protected header is not a map");
  let alg: bigint | undefined;
  for (const [k, v] of header.value) {
    const key = k.type === "uint" || k.type === "nint" ? k.value : undefined;
    if (key === 1n) {
      if (v.type !== "uint" && v.type !== "nint") throw new AttestationError("alg is not an integer");
      if (alg !== undefined) throw new AttestationError("duplicate alg header");
      alg = v.value;
    } else if (key === 2n) {
      throw new AttestationError("critical headers are not supported");
    }
  }
  if (alg === undefined) throw new AttestationError("protected header has no alg");
  return { protected: prot.value, alg, payload: payload.value, signature: signature.value };
}

/** The bytes a COSE_Sign1 signs: CBOR `["Signature1", protected, h'', payload]`. */
export function coseSigStructure(protectedHeader: Uint8Array, payload: Uint8Array): Uint8Array {
  return cborEncode(
    cbor.array([cbor.text("Signature1"), cbor.bytes(protectedHeader), cbor.bytes(new Uint8Array(0)), cbor.bytes(payload)]),
  );
}

export interface Payload {
  moduleId: string;
  timestampMs: number;
  pcrs: Map<number, Uint8Array>;
  certificate: Uint8Array;
  cabundle: Uint8Array[];
  publicKey: Uint8Array | null;
  userData: Uint8Array | null;
  nonce: Uint8Array | null;
  warning?: string;
}

export function decodePayload(raw: Uint8Array): Payload {
  let value: CborValue;
  try {
    value = cborDecode(raw);
  } catch (e) {
    throw new AttestationError(`payload: ${(e as Error).message}`);
  }
  if (value.type !== "map") throw new AttestationError("payload is not a map");
  const seen = new Set<string>();
  const fields = new Map<string, CborValue>();
  for (const [k, v] of value.value) {
    if (k.type !== "text") throw new AttestationError("payload key is not a text string");
    if (seen.has(k.value)) throw new AttestationError(`duplicate field ${k.value}`);
    seen.add(k.value);
    fields.set(k.value, v);
  }
  const need = (name: string): CborValue => {
    const v = fields.get(name);
    if (!v) throw new AttestationError(`payload has no ${name}`);
    return v;
  };
  const text = (name: string): string => {
    const v = need(name);
    if (v.type !== "text") throw new AttestationError(`${name} is not a text string`);
    return v.value;
  };
  const bytes = (v: CborValue, name: string): Uint8Array => {
    if (v.type !== "bytes") throw new AttestationError(`${name} is not a byte string`);
    return v.value;
  };
  const optBytes = (name: string, min: number, max: number): Uint8Array | null => {
    const v = fields.get(name);
    if (!v || (v.type === "simple" && v.value === null)) return null;
    const b = bytes(v, name);
    if (b.length < min || b.length > max) throw new AttestationError(`${name} must be ${min}..=${max} bytes`);
    return b;
  };

  const moduleId = text("module_id");
  if (moduleId.length === 0) throw new AttestationError("module_id is empty");
  if (text("digest") !== "SHA384") throw new AttestationError("digest must be SHA384");
  const ts = need("timestamp");
  if (ts.type !== "uint" || ts.value === 0n) throw new AttestationError("timestamp must be a non-zero uint");
  const pcrsValue = need("pcrs");
  if (pcrsValue.type !== "map" || pcrsValue.value.length === 0 || pcrsValue.value.length > 32) {
    throw new AttestationError("pcrs must be a map of 1..=32 entries");
  }
  const pcrs = new Map<number, Uint8Array>();
  for (const [k, v] of pcrsValue.value) {
    if (k.type !== "uint" || k.value >= 32n) throw new AttestationError("PCR index must be an integer in 0..32");
    const index = Number(k.value);
    const pcr = bytes(v, "PCR value");
    if (pcr.length !== PCR_LEN) throw new AttestationError(`PCR${index} is not ${PCR_LEN} bytes`);
    if (pcrs.has(index)) throw new AttestationError(`duplicate PCR${index}`);
    pcrs.set(index, pcr);
  }
  const certificate = bytes(need("certificate"), "certificate");
  const cab = need("cabundle");
  if (cab.type !== "array") throw new AttestationError("cabundle is not an array");
  const cabundle = cab.value.map((c) => bytes(c, "cabundle entry"));
  const warningValue = fields.get("warning");
  let warning: string | undefined;
  if (warningValue) {
    if (warningValue.type !== "text") throw new AttestationError("warning is not a text string");
    warning = warningValue.value;
  }
  return {
    moduleId,
    timestampMs: Number(ts.value),
    pcrs,
    certificate,
    cabundle,
    publicKey: optBytes("public_key", 1, 1024),
    userData: optBytes("user_data", 0, 512),
    nonce: optBytes("nonce", 0, 512),
    ...(warning !== undefined ? { warning } : {}),
  };
}
