// Keystead client cryptography, for browsers and Node 20 alike (WebCrypto only):
// JCS canonical JSON and operation digests, PIN envelopes sealed to the attested enclave
// key, values sealed to a one-time client key, and attestation documents (`dev` here,
// `nitro` in nitro.ts).
//
// The byte-level rules are in docs/enclave-protocol.md; the test vectors in
// crates/envelope/tests/vectors.json are reproduced by test/crypto.test.ts.
//
// Secrets (PINs, recovery codes, mnemonics) never appear in an error message here.

import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { ed25519, x25519 } from "@noble/curves/ed25519";
import { hashTypedData } from "viem";
import { ALG_EDDSA, AttestationError, coseAlgName, coseSigStructure, decodeCoseSign1, decodePayload } from "./cose.js";
import { verifyNitroDocument, type NitroOptions } from "./nitro.js";
import {
  bytesEqual,
  fromBase64,
  fromHex,
  isHex0x,
  toArrayBuffer,
  toBase64,
  toHex,
  toHex0x,
  utf8Decode,
  utf8Encode,
} from "./bytes.js";

// ---------------------------------------------------------------------------------------
// Canonical JSON (RFC 8785) and digests
// ---------------------------------------------------------------------------------------

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * RFC 8785 (JCS) canonical JSON: object members sorted by their UTF-16 code units at every
 * level, no whitespace, ECMAScript number and string serialisation. Throws on values JSON
 * cannot represent (undefined, functions, non-finite numbers, bigints).
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw new TypeError("canonicalJson: non-finite number");
      return JSON.stringify(value);
    case "string":
      return JSON.stringify(value);
    case "object": {
      if (Array.isArray(value)) return "[" + value.map((v) => canonicalJson(v)).join(",") + "]";
      const obj = value as Record<string, unknown>;
      // Default sort compares UTF-16 code units, which is what JCS asks for.
      const keys = Object.keys(obj).sort();
      return (
        "{" +
        keys
          .map((k) => {
            if (obj[k] === undefined) throw new TypeError(`canonicalJson: member ${JSON.stringify(k)} is undefined`);
            return JSON.stringify(k) + ":" + canonicalJson(obj[k]);
          })
          .join(",") +
        "}"
      );
    }
    default:
      throw new TypeError(`canonicalJson: cannot encode a ${typeof value}`);
  }
}

function subtle(): SubtleCrypto {
  const c = globalThis.crypto;
  if (!c?.subtle) throw new Error("WebCrypto (crypto.subtle) is not available");
  return c.subtle;
}

export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  globalThis.crypto.getRandomValues(out);
  return out;
}

export async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await subtle().digest("SHA-256", toArrayBuffer(bytes)));
}

export type Purpose =
  | "create_wallet"
  | "sign_message"
  | "sign_typed_data"
  | "sign_transaction"
  | "export"
  | "change_pin"
  | "recover"
  | "new_pin";

export const PURPOSES: readonly Purpose[] = [
  "create_wallet",
  "sign_message",
  "sign_typed_data",
  "sign_transaction",
  "export",
  "change_pin",
  "recover",
  "new_pin",
];

/** The seven intent fields the `sign_transaction` digest covers (not `network`, `from`). */
export interface IntentFields {
  chainId: number;
  to: string;
  value: string;
  data: string;
  gasLimit: string;
  maxFeePerGas: string;
  maxPriorityFeePerGas: string;
}

/** The operation object a PIN envelope approves (API.md, "Digests"). */
export type Operation =
  | { purpose: "create_wallet"; appId: string; userId: string; clientKey: string }
  | { purpose: "sign_message"; appId: string; accountId: string; message: string }
  | { purpose: "sign_typed_data"; appId: string; accountId: string; hash: string }
  | { purpose: "sign_transaction"; appId: string; accountId: string; intent: IntentFields }
  | { purpose: "export"; appId: string; walletId: string; clientKey: string }
  | { purpose: "change_pin"; appId: string; walletId: string }
  | { purpose: "recover"; appId: string; walletId: string }
  | { purpose: "new_pin"; appId: string; walletId: string };

/** Lowercase hex SHA-256 of the canonical JSON of an operation: the envelope's `digest`. */
export async function operationDigest(operation: Operation): Promise<string> {
  return toHex(await sha256(utf8Encode(canonicalJson(operation))));
}

/** The message bytes of a `sign_message` operation: `0x` + lowercase hex. */
export function messageHex(message: string | Uint8Array, encoding: "utf8" | "hex" = "utf8"): string {
  if (message instanceof Uint8Array) return toHex0x(message);
  if (encoding === "hex") {
    if (!isHex0x(message)) throw new TypeError("hex message must be 0x-prefixed, even-length hex");
    return message.toLowerCase();
  }
  return toHex0x(utf8Encode(message));
}

/** Keeps exactly the digest's seven intent fields of an intent `tx/prepare` returned. */
export function intentFields(intent: IntentFields): IntentFields {
  const { chainId, to, value, data, gasLimit, maxFeePerGas, maxPriorityFeePerGas } = intent;
  return { chainId, to, value, data, gasLimit, maxFeePerGas, maxPriorityFeePerGas };
}

/** EIP-712 typed data as dApps pass it to `eth_signTypedData_v4`. */
export interface TypedData {
  types: Record<string, Array<{ name: string; type: string }>>;
  primaryType: string;
  domain: Record<string, unknown>;
  message: Record<string, unknown>;
}

/** The EIP-712 signing hash `keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(message))`. */
export function typedDataHash(typedData: TypedData): string {
  // viem derives EIP712Domain from `domain` unless `types` lists it, in which case the
  // listed fields are used, as the enclave does.
  return hashTypedData(typedData as Parameters<typeof hashTypedData>[0]).toLowerCase();
}

// ---------------------------------------------------------------------------------------
// PIN rules (validate_new_pin): apply before sealing a chosen PIN, to tell the user at once
// ---------------------------------------------------------------------------------------

export type PinRule = "wrong_length" | "not_digits" | "repeated" | "sequential";

/** `null` when the PIN may be chosen, else the rule it breaks. */
export function checkNewPin(pin: string): PinRule | null {
  if ([...pin].length !== 6) return "wrong_length";
  if (!/^[0-9]{6}$/.test(pin)) return "not_digits";
  if (/^(\d)\1{5}$/.test(pin)) return "repeated";
  const d = [...pin].map(Number);
  const up = d.every((x, i) => i === 0 || x === (d[i - 1]! + 1) % 10);
  const down = d.every((x, i) => i === 0 || x === (d[i - 1]! + 9) % 10);
  if (up || down) return "sequential";
  return null;
}

// ---------------------------------------------------------------------------------------
// HPKE: PIN envelopes and values sealed to the client
// ---------------------------------------------------------------------------------------

export const HPKE_SUITE_NAME = "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM";
export const INFO_PIN = "keystead pin v1";
export const INFO_CLIENT = "keystead client v1";
/** The longest an envelope may live: the enclave refuses `expiresAt` beyond now + 600 s (+60). */
export const MAX_ENVELOPE_LIFETIME_S = 600;
const DEFAULT_ENVELOPE_LIFETIME_S = 300;

/** `{"enc", "ciphertext"}`, both standard base64: a PinEnvelope or a SealedToClient. */
export interface SealedValue {
  enc: string;
  ciphertext: string;
}

let suiteSingleton: CipherSuite | undefined;
function suite(): CipherSuite {
  suiteSingleton ??= new CipherSuite({
    kem: new DhkemX25519HkdfSha256(),
    kdf: new HkdfSha256(),
    aead: new Aes256Gcm(),
  });
  return suiteSingleton;
}

/** A sealing or opening failure; never says which part was wrong, never quotes plaintext. */
export class SealError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SealError";
  }
}

function keyBytes(key: Uint8Array | string, what: string): Uint8Array {
  const bytes = typeof key === "string" ? fromBase64(key) : key;
  if (bytes.length !== 32) throw new SealError(`${what} must be a 32-byte X25519 key`);
  return bytes;
}

/**
 * HPKE base mode, single shot, empty AAD. `testEphemeralIkm` fixes the sender's randomness
 * (DeriveKeyPair(ikm)) and exists only to reproduce test vectors: never pass it otherwise.
 */
export async function hpkeSeal(
  recipientPublicKey: Uint8Array | string,
  info: string,
  plaintext: Uint8Array,
  testEphemeralIkm?: Uint8Array,
): Promise<SealedValue> {
  const s = suite();
  const pk = await s.kem.deserializePublicKey(toArrayBuffer(keyBytes(recipientPublicKey, "recipient key")));
  const params = {
    recipientPublicKey: pk,
    info: toArrayBuffer(utf8Encode(info)),
    ...(testEphemeralIkm ? { ekm: toArrayBuffer(testEphemeralIkm) } : {}),
  };
  const sealed = await s.seal(params, toArrayBuffer(plaintext));
  return { enc: toBase64(new Uint8Array(sealed.enc)), ciphertext: toBase64(new Uint8Array(sealed.ct)) };
}

/** Opens a sealed value with a recipient private key (raw 32 bytes or a CryptoKey). */
export async function hpkeOpen(
  recipientPrivateKey: Uint8Array | CryptoKey,
  info: string,
  sealed: SealedValue,
): Promise<Uint8Array> {
  const s = suite();
  let enc: Uint8Array;
  let ct: Uint8Array;
  try {
    enc = fromBase64(sealed.enc);
    ct = fromBase64(sealed.ciphertext);
  } catch {
    throw new SealError("sealed value is not valid base64");
  }
  if (enc.length !== 32) throw new SealError("sealed value has a bad enc");
  const recipientKey =
    recipientPrivateKey instanceof Uint8Array
      ? await s.kem.deserializePrivateKey(toArrayBuffer(keyBytes(recipientPrivateKey, "private key")))
      : recipientPrivateKey;
  try {
    const pt = await s.open({ recipientKey, enc: toArrayBuffer(enc), info: toArrayBuffer(utf8Encode(info)) }, toArrayBuffer(ct));
    return new Uint8Array(pt);
  } catch {
    throw new SealError("sealed value does not open");
  }
}

export interface PinEnvelopeInput {
  /** The PIN (or, for `recover`, the recovery code) exactly as the user typed it. */
  pin: string;
  purpose: Purpose;
  /** 64 lowercase hex characters, no `0x`: `operationDigest(operation)`. */
  digest: string;
  /** The attested enclave key (raw or base64) from `verifyAttestation`: nothing else. */
  publicKey: Uint8Array | string;
  /** Lifetime in seconds, 1..600; default 300. */
  lifetimeSeconds?: number;
  /** Unix seconds "now"; default the local clock. */
  now?: number;
  /** Tests only: fixed nonce (lowercase hex, 16–64 bytes), expiry and ephemeral IKM. */
  testFixed?: { nonce?: string; expiresAt?: number; ephemeralIkm?: Uint8Array };
}

/**
 * Seals a PIN envelope: `{"pin","purpose","digest","nonce","expiresAt"}` to the attested
 * key with `info` "keystead pin v1". A fresh 32-byte nonce every call: build a new
 * envelope for every attempt.
 */
export async function sealPinEnvelope(input: PinEnvelopeInput): Promise<SealedValue> {
  if (!PURPOSES.includes(input.purpose)) throw new SealError("unknown purpose");
  if (!/^[0-9a-f]{64}$/.test(input.digest)) throw new SealError("digest must be 64 lowercase hex characters");
  if (typeof input.pin !== "string" || input.pin.length === 0) throw new SealError("the PIN is empty");
  const now = input.now ?? Math.floor(Date.now() / 1000);
  const lifetime = input.lifetimeSeconds ?? DEFAULT_ENVELOPE_LIFETIME_S;
  if (!Number.isInteger(lifetime) || lifetime < 1 || lifetime > MAX_ENVELOPE_LIFETIME_S) {
    throw new SealError(`lifetimeSeconds must be 1..${MAX_ENVELOPE_LIFETIME_S}`);
  }
  const nonce = input.testFixed?.nonce ?? toHex(randomBytes(32));
  if (!/^([0-9a-f]{2}){16,64}$/.test(nonce)) throw new SealError("nonce must be 16-64 bytes of lowercase hex");
  const expiresAt = input.testFixed?.expiresAt ?? now + lifetime;
  // Member order as documented; the enclave parses it, so order is for readability only.
  const plaintext = JSON.stringify({
    pin: input.pin,
    purpose: input.purpose,
    digest: input.digest,
    nonce,
    expiresAt,
  });
  const bytes = utf8Encode(plaintext);
  if (bytes.length > 4096) throw new SealError("envelope plaintext is too long");
  try {
    return await hpkeSeal(input.publicKey, INFO_PIN, bytes, input.testFixed?.ephemeralIkm);
  } finally {
    bytes.fill(0);
  }
}

/** A one-time X25519 key pair for values sealed to the client (recovery kit, export). */
export interface ClientKeyPair {
  /** Base64 raw public key: the request's `clientKey`, and what the digest covers. */
  clientKey: string;
  /** Opens a SealedToClient sealed to `clientKey` (info "keystead client v1") as JSON. */
  open<T = Record<string, unknown>>(sealed: SealedValue): Promise<T>;
}

function clientKeyPairFrom(clientKey: string, privateKey: CryptoKey | Uint8Array): ClientKeyPair {
  return {
    clientKey,
    async open<T>(sealed: SealedValue): Promise<T> {
      const bytes = await hpkeOpen(privateKey, INFO_CLIENT, sealed);
      try {
        return JSON.parse(utf8Decode(bytes)) as T;
      } catch {
        throw new SealError("sealed value is not JSON");
      } finally {
        bytes.fill(0);
      }
    },
  };
}

/** Generates a fresh one-time client key pair; its private key never leaves this object. */
export async function generateClientKeyPair(): Promise<ClientKeyPair> {
  const s = suite();
  const pair = await s.kem.generateKeyPair();
  const pub = new Uint8Array(await s.kem.serializePublicKey(pair.publicKey));
  return clientKeyPairFrom(toBase64(pub), pair.privateKey);
}

/** A client key pair from a known raw private key (tests and vectors). */
export function clientKeyPairFromPrivateKey(privateKey: Uint8Array): ClientKeyPair {
  const sk = keyBytes(privateKey, "private key");
  return clientKeyPairFrom(toBase64(x25519.getPublicKey(sk)), sk);
}

/** Opens a recovery kit: returns the recovery code. */
export async function openRecoveryKit(keys: ClientKeyPair, sealed: SealedValue): Promise<string> {
  const value = await keys.open<{ recoveryCode?: unknown }>(sealed);
  if (typeof value.recoveryCode !== "string") throw new SealError("recovery kit has no recoveryCode");
  return value.recoveryCode;
}

/** Opens an exported mnemonic. */
export async function openMnemonic(keys: ClientKeyPair, sealed: SealedValue): Promise<string> {
  const value = await keys.open<{ mnemonic?: unknown }>(sealed);
  if (typeof value.mnemonic !== "string") throw new SealError("export has no mnemonic");
  return value.mnemonic;
}

// ---------------------------------------------------------------------------------------
// Attestation
// ---------------------------------------------------------------------------------------

/** Seed of the public development key: SHA-256 of this string (it proves nothing). */
export const DEV_KEY_SEED = "keystead development attestation key (proves nothing)";
/** Ed25519 public key signing every `dev` document. */
export const DEV_PUBLIC_KEY_HEX = "0bbc2f8ca61324208659860018947254fd2c34b226e4f429de3cd7e0e22a4b28";
export const DEV_WARNING = "development attestation: it proves nothing about the code that holds this key";
const DEV_MODULE_ID = "keystead-dev";

export { AttestationError, coseSigStructure } from "./cose.js";
export {
  AWS_NITRO_ROOT_G1_DER,
  nitroRootFromPem,
  verifyNitroDocument,
  type AttestedDocument,
  type NitroOptions,
} from "./nitro.js";

/** `GET /v1/enclave/attestation`. */
export interface AttestationResponse {
  format: string;
  document: string;
  publicKey: string;
  suite: string;
}

/**
 * How to verify. For `nitro`, the `NitroOptions` fields apply: `nitroRoot` (default the
 * built-in AWS Nitro root G1), `pcrs` (a `Map` of index → 48-byte value, each pinned
 * exactly), `allowDebug` (default false: PCR0 all zeros is refused), `maxAgeMs` and
 * `nowMs` (default `Date.now()`). They are ignored for `dev`.
 */
export interface AttestationPolicy extends NitroOptions {
  /**
   * The format this client accepts, from its own configuration: `nitro` in production,
   * `dev` only where development is explicitly configured. The response's label never
   * chooses the verifier.
   */
  accept: "dev" | "nitro";
  /** Pins PCR0 (48 bytes; for `dev` the SHA-384 of the enclave executable), for both formats. */
  expectedPcr0?: Uint8Array;
}

/**
 * The policy a client's own configuration gives (e.g. the widget's `config.json`):
 * `{ attestation?: "dev" | "nitro", pcrs?: { "0": "<96 hex digits>", ... } }`. Without
 * `attestation`, `dev` only when `loopback` (the client itself is served from a loopback
 * address), else `nitro`. `nitro` requires PCR0: a valid Nitro document proves only that
 * *some* enclave on AWS holds the key unless its image is pinned. Throws on anything else.
 */
export function attestationPolicyFromConfig(config: unknown, loopback: boolean): AttestationPolicy {
  const object = typeof config === "object" && config !== null && !Array.isArray(config) ? (config as Record<string, unknown>) : {};
  const configured = object.attestation;
  if (configured !== undefined && configured !== "dev" && configured !== "nitro") {
    throw new AttestationError(`attestation must be "dev" or "nitro", not ${JSON.stringify(configured)}`);
  }
  const accept = configured ?? (loopback ? "dev" : "nitro");
  const pcrs = new Map<number, Uint8Array>();
  if (object.pcrs !== undefined) {
    if (typeof object.pcrs !== "object" || object.pcrs === null || Array.isArray(object.pcrs)) {
      throw new AttestationError("pcrs must be an object of PCR index to hex value");
    }
    for (const [index, hex] of Object.entries(object.pcrs as Record<string, unknown>)) {
      if (!/^(0|[1-9][0-9]?)$/.test(index) || Number(index) > 31) throw new AttestationError(`bad PCR index ${JSON.stringify(index)}`);
      if (typeof hex !== "string" || !/^[0-9a-fA-F]{96}$/.test(hex)) throw new AttestationError(`pcrs.${index} must be 96 hex digits (48 bytes)`);
      pcrs.set(Number(index), fromHex(hex));
    }
  }
  if (accept === "nitro" && !pcrs.has(0)) {
    throw new AttestationError("nitro attestation needs pcrs.0 (the enclave image's measurement) pinned");
  }
  return { accept, pcrs };
}

export interface VerifiedAttestation {
  format: "dev" | "nitro";
  /** True for development documents: the UI must warn that this proves nothing. */
  dev: boolean;
  /** The key to seal PIN envelopes to: 32 raw bytes, equal to the document's. */
  publicKey: Uint8Array;
  publicKeyBase64: string;
  moduleId: string;
  timestampMs: number;
  pcrs: Map<number, Uint8Array>;
  userData: Uint8Array | null;
  nonce: Uint8Array | null;
  /** The document's warning (dev only; absent for `nitro`). */
  warning?: string;
}


/** Strict Ed25519 verification (as ed25519-dalek's `verify_strict`). */
function verifyEd25519Strict(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  try {
    const R = ed25519.ExtendedPoint.fromHex(signature.slice(0, 32));
    const A = ed25519.ExtendedPoint.fromHex(publicKey);
    if (R.isSmallOrder() || A.isSmallOrder()) return false;
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

/**
 * Checks an attestation response before anything is sealed to it (enclave-protocol §2):
 * the label must equal the configured format, the document must verify as that format
 * (`nitro`: `verifyNitroDocument` with the policy's Nitro options), its `public_key` must
 * equal `publicKey` byte for byte, and `suite` must be exact. Returns the key to seal to
 * and `dev: true` for development documents (warn the user).
 */
export function verifyAttestation(response: AttestationResponse, policy: AttestationPolicy): VerifiedAttestation {
  if (response.format !== policy.accept) {
    throw new AttestationError(`attestation format is ${JSON.stringify(response.format)}, this client accepts ${policy.accept}`);
  }
  if (response.suite !== HPKE_SUITE_NAME) throw new AttestationError("unexpected HPKE suite");
  let document: Uint8Array;
  let publicKey: Uint8Array;
  try {
    document = fromBase64(response.document);
    publicKey = fromBase64(response.publicKey);
  } catch {
    throw new AttestationError("attestation fields are not valid base64");
  }
  if (publicKey.length !== 32) throw new AttestationError("publicKey is not 32 bytes");
  if (policy.accept === "nitro") {
    const doc = verifyNitroDocument(document, policy);
    if (!doc.publicKey) throw new AttestationError("nitro document has no public key");
    if (!bytesEqual(doc.publicKey, publicKey)) {
      throw new AttestationError("the document's public key differs from publicKey");
    }
    return {
      format: "nitro",
      dev: false,
      publicKey,
      publicKeyBase64: toBase64(publicKey),
      moduleId: doc.moduleId,
      timestampMs: doc.timestampMs,
      pcrs: doc.pcrs,
      userData: doc.userData,
      nonce: doc.nonce,
    };
  }

  const cose = decodeCoseSign1(document);
  if (cose.alg !== ALG_EDDSA) {
    throw new AttestationError(
      `expected a dev (EdDSA) document, found ${coseAlgName(cose.alg)}`,
    );
  }
  const signed = coseSigStructure(cose.protected, cose.payload);
  if (!verifyEd25519Strict(cose.signature, signed, fromHex(DEV_PUBLIC_KEY_HEX))) {
    throw new AttestationError("bad signature");
  }
  const payload = decodePayload(cose.payload);
  if (payload.warning !== DEV_WARNING) throw new AttestationError("dev document lacks the development warning");
  if (payload.moduleId !== DEV_MODULE_ID || payload.certificate.length !== 0 || payload.cabundle.length !== 0) {
    throw new AttestationError("dev document has Nitro-only content");
  }
  if (!payload.publicKey) throw new AttestationError("dev document has no public key");
  const pcr0 = payload.pcrs.get(0);
  if (!pcr0) throw new AttestationError("dev document has no PCR0");
  if (policy.expectedPcr0 && !bytesEqual(pcr0, policy.expectedPcr0)) throw new AttestationError("PCR0 mismatch");
  if (!bytesEqual(payload.publicKey, publicKey)) {
    throw new AttestationError("the document's public key differs from publicKey");
  }
  return {
    format: "dev",
    dev: true,
    publicKey,
    publicKeyBase64: toBase64(publicKey),
    moduleId: payload.moduleId,
    timestampMs: payload.timestampMs,
    pcrs: payload.pcrs,
    userData: payload.userData,
    nonce: payload.nonce,
    warning: payload.warning,
  };
}

/** The dev key pair's public key, recomputed from its published seed (for tests). */
export async function devPublicKeyFromSeed(): Promise<string> {
  return toHex(ed25519.getPublicKey(await sha256(utf8Encode(DEV_KEY_SEED))));
}
