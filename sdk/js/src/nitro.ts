// AWS Nitro Enclaves attestation verification: a line-by-line port of
// crates/attestation/src/nitro.rs, following AWS "Verifying the root of trust".
//
// Steps: COSE_Sign1 with ES384; payload syntax; no development warning; `cabundle[0]` is
// the pinned root byte for byte; every link root → cabundle… → leaf has issuer = previous
// subject, an ecdsa-with-SHA384 signature by the previous key over the exact TBS bytes, a
// validity window containing `now`, and acceptable extensions; the COSE signature (raw
// r‖s) verifies with the leaf key; then the policy (debug enclaves, PCR pins, age).
//
// Time is always a parameter (`nowMs`, default the local clock), so real (long expired)
// NSM documents stay testable. Nothing here is secret: errors say exactly what failed.

import { AsnConvert } from "@peculiar/asn1-schema";
import { BasicConstraints, Certificate, type Name } from "@peculiar/asn1-x509";
import { p384 } from "@noble/curves/p384";
import { bytesEqual, fromBase64 } from "./bytes.js";
import {
  ALG_ES384,
  AttestationError,
  coseAlgName,
  coseSigStructure,
  decodeCoseSign1,
  decodePayload,
  type Payload,
} from "./cose.js";

/**
 * The AWS Nitro Enclaves root (G1), DER, as in crates/attestation/certs/aws-nitro-root-g1.der.
 * SHA-256 fingerprint `641A0321A3E244EFE456463195D606317ED7CDCC3C1756E09893F3C68F79BB5B`,
 * as AWS publishes (https://aws-nitro-enclaves.amazonaws.com/AWS_NitroEnclaves_Root-G1.zip).
 */
export const AWS_NITRO_ROOT_G1_DER: Uint8Array = fromBase64(
  "MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTELMAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYDVQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcNMTkxMDI4MTMyODA1WhcNNDkxMDI4MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQLDANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEGBSuBBAAiA2IABPwCVOumCMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTPYwEoCWZEh8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkFR+eWw5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYCMQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPWrfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6NIwLz3/Y=",
);

/** Tolerated clock difference when a maximum age is enforced. */
const MAX_FUTURE_SKEW_MS = 60_000;

/** `SEQUENCE { OID ecdsa-with-SHA384 }`: the only certificate signature algorithm, no parameters. */
const ECDSA_WITH_SHA384_ALG = Uint8Array.of(0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03);
/** `SEQUENCE { OID id-ecPublicKey, OID secp384r1 }`: the only subject key algorithm. */
const EC_P384_KEY_ALG = Uint8Array.of(
  0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22,
);
const ID_CE_BASIC_CONSTRAINTS = "2.5.29.19";
const ID_CE_KEY_USAGE = "2.5.29.15";
// KeyUsage bit numbers (RFC 5280 §4.2.1.3).
const KU_DIGITAL_SIGNATURE = 0;
const KU_KEY_CERT_SIGN = 5;

/**
 * What a Nitro document must show beyond a valid signature chain (Rust `NitroPolicy`).
 * The default pins nothing and refuses debug enclaves; production clients should pin at
 * least PCR0 (the enclave image; PCR1/PCR2 pin kernel and application).
 */
export interface NitroOptions {
  /** The trusted root, DER, compared byte for byte with `cabundle[0]`. Default: the built-in AWS Nitro root G1. */
  nitroRoot?: Uint8Array;
  /** PCR pins: index → 48-byte value; each must equal the document's PCR exactly (a missing PCR is a mismatch). */
  pcrs?: ReadonlyMap<number, Uint8Array>;
  /** Pins PCR0; checked together with `pcrs` (both must hold if both name PCR0). */
  expectedPcr0?: Uint8Array;
  /**
   * Accept enclaves run with `--debug-mode` (PCR0 all zeros). Their memory is readable from
   * the host, so only for development. Default false.
   */
  allowDebug?: boolean;
  /** Refuse documents whose timestamp is older than this at `nowMs` (60 s of future skew tolerated). */
  maxAgeMs?: number;
  /** "Now" in Unix milliseconds for certificate validity and `maxAgeMs`; default `Date.now()`. */
  nowMs?: number;
}

/** The verified content of a Nitro document; `publicKey` is exactly as signed (any 1..1024 bytes). */
export interface AttestedDocument {
  format: "nitro";
  moduleId: string;
  timestampMs: number;
  pcrs: Map<number, Uint8Array>;
  publicKey: Uint8Array | null;
  userData: Uint8Array | null;
  nonce: Uint8Array | null;
}

const malformed = (msg: string) => new AttestationError(`malformed attestation document: ${msg}`);
const chainErr = (msg: string) => new AttestationError(`certificate chain invalid: ${msg}`);
const invalidRoot = (msg: string) => new AttestationError(`invalid trusted root certificate: ${msg}`);
const invalidInput = (msg: string) => new AttestationError(`invalid attestation input: ${msg}`);
const badSignature = () => new AttestationError("attestation document signature does not verify");

// ---------------------------------------------------------------------------------------
// DER framing: just enough to take the exact signed bytes (and exact names and algorithm
// identifiers) from the original encoding. Definite, minimal lengths only, as DER requires.
// ---------------------------------------------------------------------------------------

interface Tlv {
  tag: number;
  start: number;
  contentStart: number;
  end: number;
}

function readTlv(buf: Uint8Array, pos: number, limit: number): Tlv {
  if (limit - pos < 2) throw new Error("truncated DER");
  const tag = buf[pos]!;
  if ((tag & 0x1f) === 0x1f) throw new Error("unsupported DER tag");
  let len = buf[pos + 1]!;
  let p = pos + 2;
  if (len === 0x80) throw new Error("indefinite DER length");
  if (len > 0x80) {
    const n = len & 0x7f;
    if (n > 4 || n > limit - p) throw new Error("bad DER length");
    if (buf[p] === 0) throw new Error("non-minimal DER length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    p += n;
    if (len < 0x80) throw new Error("non-minimal DER length");
  }
  if (len > limit - p) throw new Error("truncated DER");
  return { tag, start: pos, contentStart: p, end: p + len };
}

function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let p = parent.contentStart; p < parent.end; ) {
    const child = readTlv(buf, p, parent.end);
    out.push(child);
    p = child.end;
  }
  return out;
}

function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t || t.tag !== tag) throw new Error(`${what} missing or mistagged`);
  return t;
}

/** Parses `der` as exactly one DER item of type `T` (no trailing bytes). */
function parseExact<T>(der: Uint8Array, type: new () => T): T {
  const outer = readTlv(der, 0, der.length);
  if (outer.end !== der.length) throw new Error("trailing bytes after DER item");
  return AsnConvert.parse(der.slice(), type);
}

interface RawCertificate {
  cert: Certificate;
  /** Exact signed bytes; re-encoding the parsed form could differ. */
  tbs: Uint8Array;
  issuer: Uint8Array;
  subject: Uint8Array;
  /** tbsCertificate.signature and the outer signatureAlgorithm, as encoded. */
  tbsSignatureAlg: Uint8Array;
  signatureAlg: Uint8Array;
  subjectKeyAlg: Uint8Array;
  /** BIT STRING contents (first byte: unused bits). */
  subjectKeyBits: Uint8Array;
  signatureBits: Uint8Array;
}

/** Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }. */
function parseRawCertificate(der: Uint8Array): RawCertificate {
  const outer = expectTag(readTlv(der, 0, der.length), 0x30, "Certificate");
  if (outer.end !== der.length) throw new Error("trailing bytes after Certificate");
  const parts = children(der, outer);
  if (parts.length !== 3) throw new Error("Certificate must have 3 elements");
  const tbs = expectTag(parts[0], 0x30, "tbsCertificate");
  const sigAlg = expectTag(parts[1], 0x30, "signatureAlgorithm");
  const sigValue = expectTag(parts[2], 0x03, "signatureValue");
  const fields = children(der, tbs);
  const at = fields[0]?.tag === 0xa0 ? 1 : 0; // [0] EXPLICIT Version
  expectTag(fields[at], 0x02, "serialNumber");
  const tbsSigAlg = expectTag(fields[at + 1], 0x30, "signature");
  const issuer = expectTag(fields[at + 2], 0x30, "issuer");
  expectTag(fields[at + 3], 0x30, "validity");
  const subject = expectTag(fields[at + 4], 0x30, "subject");
  const spki = expectTag(fields[at + 5], 0x30, "subjectPublicKeyInfo");
  const spkiParts = children(der, spki);
  if (spkiParts.length !== 2) throw new Error("subjectPublicKeyInfo must have 2 elements");
  const keyAlg = expectTag(spkiParts[0], 0x30, "subjectPublicKeyInfo.algorithm");
  const keyBits = expectTag(spkiParts[1], 0x03, "subjectPublicKey");
  const slice = (t: Tlv) => der.subarray(t.start, t.end);
  const content = (t: Tlv) => der.subarray(t.contentStart, t.end);
  return {
    cert: AsnConvert.parse(der.slice(), Certificate),
    tbs: slice(tbs),
    issuer: slice(issuer),
    subject: slice(subject),
    tbsSignatureAlg: slice(tbsSigAlg),
    signatureAlg: slice(sigAlg),
    subjectKeyAlg: slice(keyAlg),
    subjectKeyBits: content(keyBits),
    signatureBits: content(sigValue),
  };
}

const NAME_LABELS: Record<string, string> = {
  "2.5.4.3": "CN",
  "2.5.4.6": "C",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
};

/** RFC 4514-style (last RDN first), for messages only; names are compared as DER bytes. */
function nameToString(name: Name): string {
  return [...name]
    .reverse()
    .map((rdn) => [...rdn].map((atv) => `${NAME_LABELS[atv.type] ?? atv.type}=${atv.value.toString()}`).join("+"))
    .join(",");
}

// ---------------------------------------------------------------------------------------
// The chain
// ---------------------------------------------------------------------------------------

interface ParsedCert {
  raw: RawCertificate;
  subject: string;
  /** SEC1 P-384 point. */
  key: Uint8Array;
  notBeforeMs: number;
  notAfterMs: number;
}

function parseCert(der: Uint8Array, position: number): ParsedCert {
  let raw: RawCertificate;
  try {
    raw = parseRawCertificate(der);
  } catch (e) {
    throw chainErr(`certificate ${position}: ${(e as Error).message}`);
  }
  const tbs = raw.cert.tbsCertificate;
  const subject = nameToString(tbs.subject);
  if (!bytesEqual(raw.signatureAlg, ECDSA_WITH_SHA384_ALG) || !bytesEqual(raw.tbsSignatureAlg, raw.signatureAlg)) {
    throw chainErr(`${subject}: not signed with ecdsa-with-SHA384`);
  }
  if (!bytesEqual(raw.subjectKeyAlg, EC_P384_KEY_ALG)) throw chainErr(`${subject}: key is not P-384`);
  // BIT STRING with no unused bits, holding a valid SEC1 point.
  const key = raw.subjectKeyBits[0] === 0 ? raw.subjectKeyBits.subarray(1) : undefined;
  try {
    if (!key) throw new Error();
    p384.ProjectivePoint.fromHex(key).assertValidity();
  } catch {
    throw chainErr(`${subject}: invalid P-384 key`);
  }
  const notBeforeMs = tbs.validity.notBefore.getTime().getTime();
  const notAfterMs = tbs.validity.notAfter.getTime().getTime();
  if (!Number.isFinite(notBeforeMs) || !Number.isFinite(notAfterMs)) {
    throw chainErr(`certificate ${position}: invalid validity`);
  }
  return { raw, subject, key, notBeforeMs, notAfterMs };
}

function checkValidity(cert: ParsedCert, nowMs: number): void {
  if (nowMs < cert.notBeforeMs) {
    throw new AttestationError(`certificate not yet valid at the given time: ${cert.subject}`);
  }
  // notAfter is inclusive (RFC 5280 §4.1.2.5) and has one-second resolution.
  if (nowMs > cert.notAfterMs + 999) {
    throw new AttestationError(`certificate expired at the given time: ${cert.subject}`);
  }
}

/** The one extension `oid`'s value (DER), or undefined; a repeated one is refused. */
function singleExtension(cert: ParsedCert, oid: string): Uint8Array | undefined {
  const found = (cert.raw.cert.tbsCertificate.extensions ?? []).filter((e) => e.extnID === oid);
  if (found.length > 1) throw chainErr(`${cert.subject}: duplicate extension ${oid}`);
  return found[0] ? new Uint8Array(found[0].extnValue.buffer) : undefined;
}

/** KeyUsage ::= BIT STRING; returns a bit test. */
function parseKeyUsage(der: Uint8Array): (bit: number) => boolean {
  const t = readTlv(der, 0, der.length);
  if (t.tag !== 0x03 || t.end !== der.length || t.end === t.contentStart || der[t.contentStart]! > 7) {
    throw new Error("invalid keyUsage");
  }
  const bits = der.subarray(t.contentStart + 1, t.end);
  return (bit) => ((bits[bit >> 3] ?? 0) & (0x80 >> (bit & 7))) !== 0;
}

/** `casBelow` counts the CA certificates between this one and the leaf. */
function checkExtensions(cert: ParsedCert, isCa: boolean, casBelow: number): void {
  const subject = cert.subject;
  for (const ext of cert.raw.cert.tbsCertificate.extensions ?? []) {
    if (ext.critical && ext.extnID !== ID_CE_BASIC_CONSTRAINTS && ext.extnID !== ID_CE_KEY_USAGE) {
      throw chainErr(`${subject}: unsupported critical extension ${ext.extnID}`);
    }
  }
  let constraints: BasicConstraints | undefined;
  let usage: ((bit: number) => boolean) | undefined;
  const bcDer = singleExtension(cert, ID_CE_BASIC_CONSTRAINTS);
  const kuDer = singleExtension(cert, ID_CE_KEY_USAGE);
  try {
    if (bcDer) {
      constraints = parseExact(bcDer, BasicConstraints);
      const limit = constraints.pathLenConstraint;
      if (limit !== undefined && !(Number.isInteger(limit) && limit >= 0 && limit <= 255)) {
        throw new Error("invalid pathLenConstraint");
      }
    }
    if (kuDer) usage = parseKeyUsage(kuDer);
  } catch (e) {
    throw chainErr(`${subject}: ${(e as Error).message}`);
  }
  if (isCa) {
    if (!constraints?.cA) throw chainErr(`${subject}: issuer is not a CA`);
    if (constraints.pathLenConstraint !== undefined && casBelow > constraints.pathLenConstraint) {
      throw chainErr(`${subject}: path length exceeded`);
    }
    if (usage && !usage(KU_KEY_CERT_SIGN)) throw chainErr(`${subject}: key may not sign certificates`);
  } else if (usage && !usage(KU_DIGITAL_SIGNATURE)) {
    throw chainErr(`${subject}: key may not sign documents`);
  }
}

function checkLink(issuer: ParsedCert, child: ParsedCert): void {
  if (!bytesEqual(child.raw.issuer, issuer.raw.subject)) {
    throw chainErr(`${child.subject}: issuer does not match ${issuer.subject}`);
  }
  let signature: InstanceType<typeof p384.Signature>;
  try {
    const bits = child.raw.signatureBits;
    if (bits[0] !== 0) throw new Error();
    signature = p384.Signature.fromDER(bits.subarray(1));
  } catch {
    throw chainErr(`${child.subject}: malformed signature`);
  }
  // SHA-384 of the exact TBS bytes; high-S signatures are valid ECDSA (no low-S rule here).
  if (!p384.verify(signature, child.raw.tbs, issuer.key, { prehash: true, lowS: false })) {
    throw chainErr(`${child.subject}: bad signature`);
  }
}

/**
 * Checks root → cabundle → leaf and returns the leaf's key. Links are found by name and
 * signature only: AWS's lower certificates carry no AKI/SKI.
 */
function verifyChain(rootDer: Uint8Array, cabundle: Uint8Array[], leafDer: Uint8Array, nowMs: number): Uint8Array {
  const first = cabundle[0];
  if (!first) throw malformed("empty cabundle");
  if (!bytesEqual(first, rootDer)) throw new AttestationError("certificate bundle does not start with the trusted root");
  if (leafDer.length === 0) throw malformed("empty certificate");
  const chain = [...cabundle, leafDer].map((der, i) => parseCert(der, i));
  const leafIndex = chain.length - 1;
  chain.forEach((cert, i) => {
    if (i > 0) checkLink(chain[i - 1]!, cert);
    checkValidity(cert, nowMs);
    checkExtensions(cert, i < leafIndex, Math.max(0, leafIndex - (i + 1)));
  });
  return chain[leafIndex]!.key;
}

// ---------------------------------------------------------------------------------------
// Roots, options, policy
// ---------------------------------------------------------------------------------------

/** A copy of the last root `checkRoot` accepted, so that one configured root is parsed once. */
let lastCheckedRoot: Uint8Array | undefined;

/** Rust `NitroVerifier::new`: the root must parse and be self-issued. */
function checkRoot(der: Uint8Array): void {
  if (lastCheckedRoot && bytesEqual(lastCheckedRoot, der)) return;
  let raw: RawCertificate;
  try {
    raw = parseRawCertificate(der);
  } catch (e) {
    throw invalidRoot((e as Error).message);
  }
  if (!bytesEqual(raw.issuer, raw.subject)) throw invalidRoot("not self-issued");
  lastCheckedRoot = der.slice();
}

/** The DER of a PEM `CERTIFICATE` (e.g. AWS's root.pem), checked as a trusted root: pass it as `nitroRoot`. */
export function nitroRootFromPem(pem: string): Uint8Array {
  const m = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/.exec(pem);
  if (!m) throw invalidRoot("not a PEM block");
  if (m[1] !== "CERTIFICATE") throw invalidRoot(`PEM label ${m[1]}, expected CERTIFICATE`);
  let der: Uint8Array;
  try {
    der = fromBase64(m[2]!.replace(/\s+/g, ""));
  } catch {
    throw invalidRoot("PEM body is not base64");
  }
  checkRoot(der);
  return der;
}

function checkOptions(options: NitroOptions): void {
  if (options.nowMs !== undefined && !(Number.isSafeInteger(options.nowMs) && options.nowMs >= 0)) {
    throw invalidInput("nowMs must be a non-negative integer (Unix milliseconds)");
  }
  if (options.maxAgeMs !== undefined && !(Number.isFinite(options.maxAgeMs) && options.maxAgeMs >= 0)) {
    throw invalidInput("maxAgeMs must be a non-negative number");
  }
  if (options.nitroRoot !== undefined && !(options.nitroRoot instanceof Uint8Array)) {
    throw invalidInput("nitroRoot must be DER bytes");
  }
  if (options.expectedPcr0 !== undefined && !(options.expectedPcr0 instanceof Uint8Array)) {
    throw invalidInput("expectedPcr0 must be bytes");
  }
  if (options.pcrs !== undefined) {
    if (!(options.pcrs instanceof Map)) throw invalidInput("pcrs must be a Map of index to bytes");
    for (const [index, value] of options.pcrs) {
      if (!Number.isInteger(index) || index < 0 || !(value instanceof Uint8Array)) {
        throw invalidInput("pcrs must map non-negative integer indices to bytes");
      }
    }
  }
}

function checkPolicy(payload: Payload, options: NitroOptions, nowMs: number): void {
  const pcr0 = payload.pcrs.get(0);
  if (!pcr0) throw malformed("no PCR0");
  if (!options.allowDebug && pcr0.every((b) => b === 0)) {
    throw new AttestationError("enclave runs in debug mode (PCR0 is all zeros)");
  }
  const pins: Array<[number, Uint8Array]> = [...(options.pcrs ?? [])];
  if (options.expectedPcr0) pins.push([0, options.expectedPcr0]);
  pins.sort((a, b) => a[0] - b[0]);
  for (const [index, expected] of pins) {
    const actual = payload.pcrs.get(index);
    if (!actual || !bytesEqual(actual, expected)) {
      throw new AttestationError(`PCR${index} does not match the expected value`);
    }
  }
  if (options.maxAgeMs !== undefined) {
    if (payload.timestampMs > nowMs + MAX_FUTURE_SKEW_MS) {
      throw new AttestationError("attestation document timestamp is in the future");
    }
    const ageMs = Math.max(0, nowMs - payload.timestampMs);
    if (ageMs > options.maxAgeMs) {
      throw new AttestationError(
        `attestation document is ${ageMs} ms old, more than the allowed ${options.maxAgeMs} ms`,
      );
    }
  }
}

/**
 * Verifies an NSM attestation document (the raw COSE_Sign1 bytes) as of `options.nowMs`
 * and returns its content. It does not compare `public_key` with anything: callers do
 * (`verifyAttestation` does, for the enclave's HPKE key). Throws `AttestationError`.
 */
export function verifyNitroDocument(document: Uint8Array, options: NitroOptions = {}): AttestedDocument {
  checkOptions(options);
  const nowMs = options.nowMs ?? Date.now();
  const root = options.nitroRoot ?? AWS_NITRO_ROOT_G1_DER;
  if (options.nitroRoot) checkRoot(root);
  try {
    const cose = decodeCoseSign1(document);
    if (cose.alg !== ALG_ES384) {
      throw new AttestationError(`expected a nitro attestation document, found ${coseAlgName(cose.alg)}`);
    }
    const payload = decodePayload(cose.payload);
    if (payload.warning !== undefined) throw malformed("development warning in a Nitro document");
    const leafKey = verifyChain(root, payload.cabundle, payload.certificate, nowMs);
    // NSM signatures are raw r‖s (96 bytes), not DER.
    let signature: InstanceType<typeof p384.Signature>;
    try {
      if (cose.signature.length !== 96) throw new Error();
      signature = p384.Signature.fromCompact(cose.signature);
    } catch {
      throw badSignature();
    }
    const signed = coseSigStructure(cose.protected, cose.payload);
    if (!p384.verify(signature, signed, leafKey, { prehash: true, lowS: false })) throw badSignature();
    checkPolicy(payload, options, nowMs);
    return {
      format: "nitro",
      moduleId: payload.moduleId,
      timestampMs: payload.timestampMs,
      pcrs: payload.pcrs,
      publicKey: payload.publicKey,
      userData: payload.userData,
      nonce: payload.nonce,
    };
  } catch (e) {
    if (e instanceof AttestationError) throw e;
    // Safety net: no parser failure may escape as anything but a refusal.
    throw malformed((e as Error)?.message ?? String(e));
  }
}
