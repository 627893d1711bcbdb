// Nitro attestation: the cases of crates/attestation/tests/nitro.rs and the unit tests in
// crates/attestation/src/nitro.rs, on the same real NSM documents (checked as of their own
// time), plus a generated P-384 PKI for the rules the real samples cannot reach
// (extensions, algorithms, future timestamps, the full verifyAttestation path).

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ed25519 } from "@noble/curves/ed25519";
import { p256 } from "@noble/curves/p256";
import { p384 } from "@noble/curves/p384";
import {
  AWS_NITRO_ROOT_G1_DER,
  AttestationError,
  attestationPolicyFromConfig,
  DEV_WARNING,
  HPKE_SUITE_NAME,
  coseSigStructure,
  nitroRootFromPem,
  sha256,
  verifyAttestation,
  verifyNitroDocument,
  type AttestationResponse,
  type NitroOptions,
} from "../src/crypto.js";
import { cbor, cborDecode, cborEncode, type CborValue } from "../src/cbor.js";
import { bytesEqual, concatBytes, fromHex, toBase64, toHex, utf8Encode } from "../src/bytes.js";

const fixture = (name: string) =>
  fileURLToPath(new URL(`../../../crates/attestation/tests/fixtures/${name}`, import.meta.url));
const SAMPLE_1 = new Uint8Array(readFileSync(fixture("sample-1.cbor")));
const SAMPLE_2 = new Uint8Array(readFileSync(fixture("sample-2.cbor")));
const ROOT_PEM = readFileSync(fixture("aws-nitro-root-g1.cert"), "utf8");
const OTHER_ROOT_PEM = readFileSync(fixture("other-root.cert"), "utf8");
const ROOT_DER_FILE = new Uint8Array(
  readFileSync(fileURLToPath(new URL("../../../crates/attestation/certs/aws-nitro-root-g1.der", import.meta.url))),
);

const SAMPLE_1_TS = 1_665_651_482_136;
const SAMPLE_2_TS = 1_679_495_307_405;
// Leaf validity windows (whole seconds, UTC).
const SAMPLE_1_LEAF_NOT_BEFORE = 1_665_651_479_000; // 2022-10-13 08:57:59
const SAMPLE_1_LEAF_NOT_AFTER = 1_665_662_282_000; // 2022-10-13 11:58:02
const SAMPLE_2_LEAF_NOT_BEFORE = 1_679_495_304_000; // 2023-03-22 14:28:24
const SAMPLE_2_LEAF_NOT_AFTER = 1_679_506_107_000; // 2023-03-22 17:28:27

const S1_PCR0 = "f4d48b81a460c9916d1e685119074bf24660afd3e34fae9fca0a0d28d9d5599936332687e6f66fc890ac8cf150142d8b";
const S1_PCR1 = "bcdf05fefccaa8e55bf2c8d6dee9e79bbff31e34bf28a99aa19e6b29c37ee80b214a414b7607236edf26fcb78654e63f";
const S1_PCR2 = "d8f114da658de5481f8d9ec73907feb553560787522f705c92d7d96beed8e15e2aa611984e098c576832c292e8dc469a";
const S2_PCR4 = "77bbaf8092c4ff65c8fa065ffa6024ffc9dd5d8e97cc2db6f28a568f9427e3ff1a3fd305931f689663412615fc15a759";

const ROOT = nitroRootFromPem(ROOT_PEM);
const verify = (doc: Uint8Array, nowMs: number, options: NitroOptions = {}) =>
  verifyNitroDocument(doc, { nitroRoot: ROOT, nowMs, ...options });
/** Sample 2 comes from a debug-mode enclave. */
const verifyDebug = (doc: Uint8Array, nowMs: number, options: NitroOptions = {}) =>
  verify(doc, nowMs, { allowDebug: true, ...options });

/** The AttestationError message `fn` throws (fails the test if it returns or throws anything else). */
function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(AttestationError);
    return (e as Error).message;
  }
  throw new Error("expected an AttestationError, but verification succeeded");
}

function find(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  throw new Error("needle not present");
}

function flip(doc: Uint8Array, pos: number): Uint8Array {
  const d = doc.slice();
  d[pos]! ^= 0x01;
  return d;
}

// The document's parts, to rebuild it with a changed payload (the COSE signature then no
// longer matches, but the chain is checked first, as in Rust).
type Fields = Array<[CborValue, CborValue]>;
function payloadFields(doc: Uint8Array): Fields {
  const cose = cborDecode(doc);
  if (cose.type !== "array" || cose.value[2]?.type !== "bytes") throw new Error("not a COSE_Sign1");
  const payload = cborDecode(cose.value[2].value);
  if (payload.type !== "map") throw new Error("payload is not a map");
  return payload.value;
}
function field(fields: Fields, name: string): CborValue {
  const entry = fields.find(([k]) => k.type === "text" && k.value === name);
  if (!entry) throw new Error(`no ${name}`);
  return entry[1];
}
function certificateOf(doc: Uint8Array): Uint8Array {
  const v = field(payloadFields(doc), "certificate");
  if (v.type !== "bytes") throw new Error("certificate");
  return v.value;
}
function cabundleOf(doc: Uint8Array): Uint8Array[] {
  const v = field(payloadFields(doc), "cabundle");
  if (v.type !== "array") throw new Error("cabundle");
  return v.value.map((c) => (c.type === "bytes" ? c.value : new Uint8Array()));
}
function rebuild(doc: Uint8Array, change: { cabundle?: Uint8Array[]; certificate?: Uint8Array }): Uint8Array {
  const cose = cborDecode(doc);
  if (cose.type !== "array") throw new Error("not a COSE_Sign1");
  const fields = payloadFields(doc).map(([k, v]): [CborValue, CborValue] => {
    if (k.type === "text" && k.value === "cabundle" && change.cabundle) return [k, cbor.array(change.cabundle.map(cbor.bytes))];
    if (k.type === "text" && k.value === "certificate" && change.certificate) return [k, cbor.bytes(change.certificate)];
    return [k, v];
  });
  const items = [...cose.value];
  items[2] = cbor.bytes(cborEncode(cbor.map(fields)));
  return cborEncode(cbor.array(items));
}

describe("the built-in AWS Nitro root", () => {
  it("is the published AWS root G1", async () => {
    expect(toHex(await sha256(AWS_NITRO_ROOT_G1_DER)).toUpperCase()).toBe(
      "641A0321A3E244EFE456463195D606317ED7CDCC3C1756E09893F3C68F79BB5B",
    );
    expect(bytesEqual(AWS_NITRO_ROOT_G1_DER, ROOT_DER_FILE)).toBe(true);
    expect(bytesEqual(AWS_NITRO_ROOT_G1_DER, ROOT)).toBe(true);
  });

  it("is the default, with the same decision as the PEM root", () => {
    const builtin = verifyNitroDocument(SAMPLE_1, { nowMs: SAMPLE_1_TS });
    expect(builtin).toEqual(verify(SAMPLE_1, SAMPLE_1_TS));
    expect(refusal(() => verifyNitroDocument(SAMPLE_2, { nowMs: SAMPLE_2_TS }))).toBe(
      refusal(() => verify(SAMPLE_2, SAMPLE_2_TS)),
    );
  });
});

describe("real NSM documents", () => {
  it("accepts sample 1 at its timestamp", () => {
    const doc = verify(SAMPLE_1, SAMPLE_1_TS);
    expect(doc.format).toBe("nitro");
    expect(doc.moduleId).toBe("i-020b6af9246d90e92-enc0183d09086c24190");
    expect(doc.timestampMs).toBe(SAMPLE_1_TS);
    expect(doc.pcrs.size).toBe(16);
    expect(toHex(doc.pcrs.get(0)!)).toBe(S1_PCR0);
    expect(toHex(doc.pcrs.get(1)!)).toBe(S1_PCR1);
    expect(toHex(doc.pcrs.get(2)!)).toBe(S1_PCR2);
    expect(doc.pcrs.get(5)!.every((b) => b === 0)).toBe(true);
    expect(doc.publicKey).toBeNull();
    expect(doc.userData).toBeNull();
    expect(doc.nonce?.length).toBe(256);
    expect(toHex(doc.nonce!.subarray(0, 32))).toBe("cb3dc2eb76c0c1344adf10cc4868591e5bb7fa4b4a8069e144762f71ea1d0017");
  });

  it("accepts sample 2 (a debug enclave) at its timestamp when debug is allowed", () => {
    const doc = verifyDebug(SAMPLE_2, SAMPLE_2_TS);
    expect(doc.moduleId).toBe("i-0592d6788f2a6df5f-enc018709b898cd0326");
    expect(doc.timestampMs).toBe(SAMPLE_2_TS);
    expect(doc.pcrs.size).toBe(16);
    for (const i of [0, 1, 2]) expect(bytesEqual(doc.pcrs.get(i)!, new Uint8Array(48))).toBe(true);
    expect(toHex(doc.pcrs.get(4)!)).toBe(S2_PCR4);
    expect(doc.publicKey).toEqual(utf8Encode("my super secret key"));
    expect(doc.userData).toEqual(utf8Encode("hello, world!"));
    expect(doc.nonce).toBeNull();
  });

  it("refuses the debug enclave by default", () => {
    expect(refusal(() => verify(SAMPLE_2, SAMPLE_2_TS))).toBe("enclave runs in debug mode (PCR0 is all zeros)");
    expect(refusal(() => verify(SAMPLE_2, SAMPLE_2_TS, { allowDebug: false }))).toMatch(/debug mode/);
  });

  it("accepts across the leaf validity window, notAfter inclusive to the second", () => {
    for (const now of [SAMPLE_1_LEAF_NOT_BEFORE, SAMPLE_1_LEAF_NOT_AFTER, SAMPLE_1_LEAF_NOT_AFTER + 999]) {
      expect(verify(SAMPLE_1, now).moduleId).toMatch(/^i-020b/);
    }
    for (const now of [SAMPLE_2_LEAF_NOT_BEFORE, SAMPLE_2_LEAF_NOT_AFTER, SAMPLE_2_LEAF_NOT_AFTER + 999]) {
      expect(verifyDebug(SAMPLE_2, now).moduleId).toMatch(/^i-0592/);
    }
  });

  it("refuses after the leaf expires", () => {
    expect(refusal(() => verify(SAMPLE_1, SAMPLE_1_LEAF_NOT_AFTER + 1000))).toBe(
      "certificate expired at the given time: CN=i-020b6af9246d90e92-enc0183d09086c24190.us-east-1.aws,OU=AWS,O=Amazon,L=Seattle,ST=Washington,C=US",
    );
    expect(refusal(() => verifyDebug(SAMPLE_2, SAMPLE_2_LEAF_NOT_AFTER + 1000))).toMatch(/^certificate expired at the given time: CN=i-0592/);
  });

  it("refuses before the leaf's notBefore", () => {
    expect(refusal(() => verify(SAMPLE_1, SAMPLE_1_LEAF_NOT_BEFORE - 1000))).toMatch(
      /^certificate not yet valid at the given time: CN=i-020b6af9246d90e92-enc/,
    );
    expect(refusal(() => verifyDebug(SAMPLE_2, SAMPLE_2_LEAF_NOT_BEFORE - 1))).toMatch(/^certificate not yet valid/);
  });

  it("refuses today: real chains are short-lived", () => {
    expect(refusal(() => verify(SAMPLE_1, 1_750_000_000_000))).toMatch(/^certificate expired/);
    // Default time is the local clock.
    expect(refusal(() => verifyNitroDocument(SAMPLE_1))).toMatch(/^certificate expired/);
  });

  it("refuses flipped bits anywhere", () => {
    const len = SAMPLE_1.length;
    const positions: number[] = [];
    for (let p = 0; p < len; p += 97) positions.push(p);
    positions.push(1, 2, 3, 4, 5, len - 96, len - 50, len - 1);
    for (const pos of positions) refusal(() => verify(flip(SAMPLE_1, pos), SAMPLE_1_TS));
  });

  it("says precisely why a flipped bit is refused", () => {
    const len = SAMPLE_1.length;
    expect(verify(SAMPLE_1, SAMPLE_1_TS).moduleId).toBeTruthy(); // the unflipped control
    // Inside the COSE signature.
    expect(refusal(() => verify(flip(SAMPLE_1, len - 10), SAMPLE_1_TS))).toBe("attestation document signature does not verify");
    // Inside the signed nonce (last payload field, just before the signature).
    expect(refusal(() => verify(flip(SAMPLE_1, len - 96 - 4 - 20), SAMPLE_1_TS))).toBe(
      "attestation document signature does not verify",
    );
    // Inside the protected header: alg -35 becomes -36.
    expect(SAMPLE_1.subarray(2, 6)).toEqual(Uint8Array.of(0xa1, 0x01, 0x38, 0x22));
    expect(refusal(() => verify(flip(SAMPLE_1, 5), SAMPLE_1_TS))).toBe(
      "expected a nitro attestation document, found COSE alg -36",
    );
    // Inside cabundle[0]: no longer the pinned root.
    const rootAt = find(SAMPLE_1, AWS_NITRO_ROOT_G1_DER);
    expect(refusal(() => verify(flip(SAMPLE_1, rootAt + 200), SAMPLE_1_TS))).toBe(
      "certificate bundle does not start with the trusted root",
    );
    // Inside the leaf's subject name: its issuer's signature breaks.
    const leafCn = find(SAMPLE_1, utf8Encode("i-020b6af9246d90e92-enc0183d09086c24190.us-east-1.aws"));
    expect(refusal(() => verify(flip(SAMPLE_1, leafCn + 3), SAMPLE_1_TS))).toMatch(/^certificate chain invalid: .*bad signature$/);
    // Inside the instance CA's subject name: the leaf's issuer no longer matches it.
    const caCn = find(SAMPLE_1, utf8Encode("i-020b6af9246d90e92.us-east-1.aws.nitro-enclaves"));
    expect(refusal(() => verify(flip(SAMPLE_1, caCn + 3), SAMPLE_1_TS))).toMatch(/issuer does not match/);
  });

  it("refuses a different root with the same name", () => {
    const other = nitroRootFromPem(OTHER_ROOT_PEM);
    expect(bytesEqual(other, ROOT)).toBe(false);
    expect(refusal(() => verify(SAMPLE_1, SAMPLE_1_TS, { nitroRoot: other }))).toBe(
      "certificate bundle does not start with the trusted root",
    );
    expect(refusal(() => verifyDebug(SAMPLE_2, SAMPLE_2_TS, { nitroRoot: other }))).toBe(
      "certificate bundle does not start with the trusted root",
    );
  });

  it("refuses invalid roots", () => {
    expect(refusal(() => verify(SAMPLE_1, SAMPLE_1_TS, { nitroRoot: utf8Encode("not a certificate") }))).toMatch(
      /^invalid trusted root certificate: /,
    );
    expect(refusal(() => nitroRootFromPem("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"))).toBe(
      "invalid trusted root certificate: PEM label PUBLIC KEY, expected CERTIFICATE",
    );
    // A valid certificate that is not self-issued (the leaf) cannot be a root.
    expect(refusal(() => verify(SAMPLE_1, SAMPLE_1_TS, { nitroRoot: certificateOf(SAMPLE_1) }))).toBe(
      "invalid trusted root certificate: not self-issued",
    );
  });

  it("refuses truncated and extended documents", () => {
    for (let len = 0; len < SAMPLE_1.length; len++) refusal(() => verify(SAMPLE_1.subarray(0, len), SAMPLE_1_TS));
    refusal(() => verify(concatBytes(SAMPLE_1, Uint8Array.of(0)), SAMPLE_1_TS));
  });

  it("honours PCR pins (pcrs map and expectedPcr0)", () => {
    const pins = new Map([
      [0, fromHex(S1_PCR0)],
      [1, fromHex(S1_PCR1)],
      [2, fromHex(S1_PCR2)],
    ]);
    expect(verify(SAMPLE_1, SAMPLE_1_TS, { pcrs: pins }).pcrs.size).toBe(16);
    const wrong = fromHex(S1_PCR1);
    wrong[47]! ^= 1;
    expect(refusal(() => verify(SAMPLE_1, SAMPLE_1_TS, { pcrs: new Map([[0, fromHex(S1_PCR0)], [1, wrong]]) }))).toBe(
      "PCR1 does not match the expected value",
    );
    // A pinned PCR missing from the document is a mismatch too.
    expect(refusal(() => verify(SAMPLE_1, SAMPLE_1_TS, { pcrs: new Map([[20, new Uint8Array(48)]]) }))).toBe(
      "PCR20 does not match the expected value",
    );
    // Sample 2 (debug, PCR0 zero) fails a PCR0 pin even with debug allowed.
    expect(refusal(() => verifyDebug(SAMPLE_2, SAMPLE_2_TS, { pcrs: new Map([[0, fromHex(S1_PCR0)]]) }))).toBe(
      "PCR0 does not match the expected value",
    );
    // expectedPcr0 pins PCR0 for nitro as for dev.
    expect(verify(SAMPLE_1, SAMPLE_1_TS, { expectedPcr0: fromHex(S1_PCR0) }).moduleId).toBeTruthy();
    expect(refusal(() => verify(SAMPLE_1, SAMPLE_1_TS, { expectedPcr0: fromHex(S1_PCR1) }))).toBe(
      "PCR0 does not match the expected value",
    );
    expect(refusal(() => verify(SAMPLE_1, SAMPLE_1_TS, { pcrs: { 0: fromHex(S1_PCR0) } as never }))).toMatch(
      /^invalid attestation input: pcrs must be a Map/,
    );
  });

  it("enforces maxAgeMs", () => {
    const policy: NitroOptions = { pcrs: new Map([[0, fromHex(S1_PCR0)]]), maxAgeMs: 60_000 };
    expect(verify(SAMPLE_1, SAMPLE_1_TS + 60_000, policy).timestampMs).toBe(SAMPLE_1_TS);
    expect(refusal(() => verify(SAMPLE_1, SAMPLE_1_TS + 60_001, policy))).toBe(
      "attestation document is 60001 ms old, more than the allowed 60000 ms",
    );
    // Slightly before the document's own timestamp (clock skew) is fine.
    expect(verify(SAMPLE_1, SAMPLE_1_TS - 2_000, policy).timestampMs).toBe(SAMPLE_1_TS);
    // Without maxAgeMs, age is not checked (the leaf is still valid an hour later).
    expect(verify(SAMPLE_1, SAMPLE_1_TS + 3_600_000).timestampMs).toBe(SAMPLE_1_TS);
    expect(refusal(() => verify(SAMPLE_1, SAMPLE_1_TS, { maxAgeMs: -1 }))).toMatch(/^invalid attestation input/);
  });
});

describe("the certificate chain (nitro.rs unit tests)", () => {
  const cabundle = cabundleOf(SAMPLE_1);
  const leaf = certificateOf(SAMPLE_1);

  it("re-encoding an unchanged payload keeps the document valid (control for the cases below)", () => {
    expect(cabundle.length).toBe(4);
    expect(bytesEqual(rebuild(SAMPLE_1, { cabundle, certificate: leaf }), SAMPLE_1)).toBe(true);
  });

  it("refuses reordered or missing intermediates", () => {
    const swapped = [cabundle[0]!, cabundle[2]!, cabundle[1]!, cabundle[3]!];
    expect(refusal(() => verify(rebuild(SAMPLE_1, { cabundle: swapped }), SAMPLE_1_TS))).toMatch(
      /^certificate chain invalid: .*issuer does not match/,
    );
    const missing = [cabundle[0]!, cabundle[1]!, cabundle[3]!];
    expect(refusal(() => verify(rebuild(SAMPLE_1, { cabundle: missing }), SAMPLE_1_TS))).toMatch(/issuer does not match/);
    expect(refusal(() => verify(rebuild(SAMPLE_1, { cabundle: [] }), SAMPLE_1_TS))).toBe(
      "malformed attestation document: empty cabundle",
    );
    expect(refusal(() => verify(rebuild(SAMPLE_1, { certificate: new Uint8Array() }), SAMPLE_1_TS))).toBe(
      "malformed attestation document: empty certificate",
    );
  });

  it("honours pathLenConstraint", () => {
    // The leaf appended as a further "CA": one CA too many below the regional CA (pathlen 2),
    // the first certificate to notice.
    expect(refusal(() => verify(rebuild(SAMPLE_1, { cabundle: [...cabundle, leaf] }), SAMPLE_1_TS))).toBe(
      "certificate chain invalid: CN=2f442bd2442676f0.us-east-1.aws.nitro-enclaves,OU=AWS,O=Amazon,C=US: path length exceeded",
    );
  });

  it("refuses a leaf from another chain", () => {
    expect(refusal(() => verify(rebuild(SAMPLE_1, { certificate: certificateOf(SAMPLE_2) }), SAMPLE_1_TS))).toMatch(
      /issuer does not match/,
    );
  });

  it("refuses a leaf whose TBS was altered with the names intact", () => {
    // Last byte of tbsCertificate (after the 4-byte outer SEQUENCE header and the TBS's own).
    expect(leaf[0]).toBe(0x30);
    expect(leaf[1]).toBe(0x82);
    expect(leaf[4]).toBe(0x30);
    expect(leaf[5]).toBe(0x82);
    const tbsLen = 4 + ((leaf[6]! << 8) | leaf[7]!);
    const bad = flip(leaf, 4 + tbsLen - 1);
    expect(refusal(() => verify(rebuild(SAMPLE_1, { certificate: bad }), SAMPLE_1_TS))).toMatch(/: bad signature$/);
  });

  it("refuses a certificate that is not DER", () => {
    const trailing = concatBytes(leaf, Uint8Array.of(0));
    expect(refusal(() => verify(rebuild(SAMPLE_1, { certificate: trailing }), SAMPLE_1_TS))).toMatch(
      /^certificate chain invalid: certificate 4: trailing bytes/,
    );
    expect(refusal(() => verify(rebuild(SAMPLE_1, { certificate: utf8Encode("junk") }), SAMPLE_1_TS))).toMatch(
      /^certificate chain invalid: certificate 4: /,
    );
  });
});

// ---------------------------------------------------------------------------------------
// A generated P-384 PKI (its own tiny DER writer, independent of the code under test)
// ---------------------------------------------------------------------------------------

function der(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const body = concatBytes(...parts);
  const n = body.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return concatBytes(Uint8Array.of(tag, ...len), body);
}
const seq = (...p: Uint8Array[]) => der(0x30, ...p);
const oid = (hex: string) => der(0x06, fromHex(hex));
const int = (n: number) => der(0x02, Uint8Array.of(n));
const bool = (b: boolean) => der(0x01, Uint8Array.of(b ? 0xff : 0));
const utc = (ms: number) => {
  const s = new Date(ms).toISOString(); // 2024-01-01T00:00:00.000Z
  return der(0x17, utf8Encode(s.slice(2, 4) + s.slice(5, 7) + s.slice(8, 10) + s.slice(11, 13) + s.slice(14, 16) + s.slice(17, 19) + "Z"));
};
const name = (cn: string) => seq(der(0x31, seq(oid("550403"), der(0x0c, utf8Encode(cn)))));
const OID_ECDSA_SHA384 = "2a8648ce3d040303";
const OID_ECDSA_SHA256 = "2a8648ce3d040302";
const ECDSA_SHA384 = seq(oid(OID_ECDSA_SHA384));
const ext = (oidHex: string, critical: boolean, value: Uint8Array) =>
  seq(oid(oidHex), ...(critical ? [bool(true)] : []), der(0x04, value));
const basicConstraints = (ca: boolean, pathLen?: number, critical = true) =>
  ext("551d13", critical, seq(...(ca ? [bool(true)] : []), ...(pathLen !== undefined ? [int(pathLen)] : [])));
/** keyUsage with the given bits set (0 digitalSignature, 5 keyCertSign, 6 cRLSign). */
const keyUsage = (...bits: number[]) => {
  let v = 0;
  for (const b of bits) v |= 0x80 >> b;
  return ext("551d0f", true, der(0x03, Uint8Array.of(0x00, v)));
};

const NOT_BEFORE = Date.UTC(2024, 0, 1);
const NOT_AFTER = Date.UTC(2034, 0, 1);
const DOC_TS = Date.UTC(2024, 2, 9, 12, 0, 0, 123);

interface Key {
  sk: Uint8Array;
  pub: Uint8Array;
}
const key = (fill: number): Key => {
  const sk = new Uint8Array(48).fill(fill);
  return { sk, pub: p384.getPublicKey(sk, false) };
};
const ROOT_KEY = key(1);
const CA_KEY = key(2);
const LEAF_KEY = key(3);

interface CertSpec {
  subject: string;
  issuer: string;
  issuerKey: Key;
  spki?: Uint8Array;
  pub: Uint8Array;
  extensions: Uint8Array[];
  sigAlg?: Uint8Array;
  tbsSigAlg?: Uint8Array;
}
function makeCert(spec: CertSpec): Uint8Array {
  const sigAlg = spec.sigAlg ?? ECDSA_SHA384;
  const spki = spec.spki ?? seq(seq(oid("2a8648ce3d0201"), oid("2b81040022")), der(0x03, Uint8Array.of(0), spec.pub));
  const tbs = seq(
    der(0xa0, int(2)),
    int(7),
    spec.tbsSigAlg ?? sigAlg,
    name(spec.issuer),
    seq(utc(NOT_BEFORE), utc(NOT_AFTER)),
    name(spec.subject),
    spki,
    ...(spec.extensions.length ? [der(0xa3, seq(...spec.extensions))] : []),
  );
  const sig = p384.sign(tbs, spec.issuerKey.sk, { prehash: true }).toDERRawBytes();
  return seq(tbs, sigAlg, der(0x03, Uint8Array.of(0), sig));
}

const ROOT_CERT = makeCert({
  subject: "test root",
  issuer: "test root",
  issuerKey: ROOT_KEY,
  pub: ROOT_KEY.pub,
  extensions: [basicConstraints(true), keyUsage(5, 6)],
});
const CA_CERT = makeCert({
  subject: "test ca",
  issuer: "test root",
  issuerKey: ROOT_KEY,
  pub: CA_KEY.pub,
  extensions: [basicConstraints(true, 0), keyUsage(5, 6)],
});
const leafCert = (extensions: Uint8Array[] = [basicConstraints(false), keyUsage(0)], over: Partial<CertSpec> = {}) =>
  makeCert({ subject: "test leaf", issuer: "test ca", issuerKey: CA_KEY, pub: LEAF_KEY.pub, extensions, ...over });

const HPKE_KEY = new Uint8Array(32).fill(0x42);

function nsmDocument(opts: {
  cabundle?: Uint8Array[];
  certificate?: Uint8Array;
  publicKey?: Uint8Array | null;
  timestamp?: number;
  signWith?: Key;
  highS?: boolean;
  extra?: Fields;
} = {}): Uint8Array {
  const payload = cborEncode(
    cbor.map([
      [cbor.text("module_id"), cbor.text("i-test-enc")],
      [cbor.text("digest"), cbor.text("SHA384")],
      [cbor.text("timestamp"), cbor.int(opts.timestamp ?? DOC_TS)],
      [cbor.text("pcrs"), cbor.map([0, 1, 2].map((i) => [cbor.int(i), cbor.bytes(new Uint8Array(48).fill(0x10 + i))]))],
      [cbor.text("certificate"), cbor.bytes(opts.certificate ?? leafCert())],
      [cbor.text("cabundle"), cbor.array((opts.cabundle ?? [ROOT_CERT, CA_CERT]).map(cbor.bytes))],
      [cbor.text("public_key"), opts.publicKey === null ? cbor.null() : cbor.bytes(opts.publicKey ?? HPKE_KEY)],
      [cbor.text("user_data"), cbor.null()],
      [cbor.text("nonce"), cbor.null()],
      ...(opts.extra ?? []),
    ]),
  );
  const protectedHeader = cborEncode(cbor.map([[cbor.int(1), cbor.int(-35)]]));
  const low = p384.sign(coseSigStructure(protectedHeader, payload), (opts.signWith ?? LEAF_KEY).sk, { prehash: true });
  expect(low.hasHighS()).toBe(false);
  const sig = opts.highS ? new p384.Signature(low.r, p384.CURVE.n - low.s) : low;
  if (opts.highS) expect(sig.hasHighS()).toBe(true);
  return cborEncode(
    cbor.array([cbor.bytes(protectedHeader), cbor.map([]), cbor.bytes(payload), cbor.bytes(sig.toCompactRawBytes())]),
  );
}
const verifyTest = (doc: Uint8Array, options: NitroOptions = {}) =>
  verifyNitroDocument(doc, { nitroRoot: ROOT_CERT, nowMs: DOC_TS, ...options });
const response = (doc: Uint8Array, publicKey: Uint8Array = HPKE_KEY): AttestationResponse => ({
  format: "nitro",
  document: toBase64(doc),
  publicKey: toBase64(publicKey),
  suite: HPKE_SUITE_NAME,
});

describe("generated chains: extensions, algorithms, time", () => {
  it("accepts the well-formed chain (control), and only under its own root", () => {
    expect(verifyTest(nsmDocument()).publicKey).toEqual(HPKE_KEY);
    expect(refusal(() => verifyNitroDocument(nsmDocument(), { nowMs: DOC_TS }))).toBe(
      "certificate bundle does not start with the trusted root",
    );
    // ECDSA does not require low S; neither does the Rust verifier.
    expect(verifyTest(nsmDocument({ highS: true })).moduleId).toBe("i-test-enc");
    expect(refusal(() => verifyTest(nsmDocument({ signWith: CA_KEY })))).toBe("attestation document signature does not verify");
  });

  it("refuses unsupported critical extensions, accepts them non-critical", () => {
    const nameConstraints = (critical: boolean) => ext("551d1e", critical, seq());
    expect(verifyTest(nsmDocument({ certificate: leafCert([basicConstraints(false), keyUsage(0), nameConstraints(false)]) })).moduleId).toBe("i-test-enc");
    expect(refusal(() => verifyTest(nsmDocument({ certificate: leafCert([basicConstraints(false), nameConstraints(true)]) })))).toBe(
      "certificate chain invalid: CN=test leaf: unsupported critical extension 2.5.29.30",
    );
  });

  it("requires CAs to be CAs, and honours keyUsage", () => {
    const ca = (extensions: Uint8Array[]) =>
      makeCert({ subject: "test ca", issuer: "test root", issuerKey: ROOT_KEY, pub: CA_KEY.pub, extensions });
    const withCa = (c: Uint8Array) => nsmDocument({ cabundle: [ROOT_CERT, c] });
    expect(verifyTest(withCa(ca([basicConstraints(true)]))).moduleId).toBe("i-test-enc");
    expect(refusal(() => verifyTest(withCa(ca([]))))).toBe("certificate chain invalid: CN=test ca: issuer is not a CA");
    expect(refusal(() => verifyTest(withCa(ca([basicConstraints(false)]))))).toBe(
      "certificate chain invalid: CN=test ca: issuer is not a CA",
    );
    expect(refusal(() => verifyTest(withCa(ca([basicConstraints(true), keyUsage(0, 6)]))))).toBe(
      "certificate chain invalid: CN=test ca: key may not sign certificates",
    );
    expect(refusal(() => verifyTest(withCa(ca([basicConstraints(true), basicConstraints(true)]))))).toBe(
      "certificate chain invalid: CN=test ca: duplicate extension 2.5.29.19",
    );
    // Leaf: keyUsage is optional, but if present must allow digitalSignature.
    expect(verifyTest(nsmDocument({ certificate: leafCert([]) })).moduleId).toBe("i-test-enc");
    expect(refusal(() => verifyTest(nsmDocument({ certificate: leafCert([keyUsage(5)]) })))).toBe(
      "certificate chain invalid: CN=test leaf: key may not sign documents",
    );
    // pathLenConstraint 0 on the root: no CA may sit below it.
    const root0 = makeCert({
      subject: "test root",
      issuer: "test root",
      issuerKey: ROOT_KEY,
      pub: ROOT_KEY.pub,
      extensions: [basicConstraints(true, 0)],
    });
    expect(refusal(() => verifyTest(nsmDocument({ cabundle: [root0, CA_CERT] }), { nitroRoot: root0 }))).toBe(
      "certificate chain invalid: CN=test root: path length exceeded",
    );
  });

  it("accepts only ecdsa-with-SHA384 without parameters, identical in TBS and outside", () => {
    const withLeaf = (over: Partial<CertSpec>) => nsmDocument({ certificate: leafCert(undefined, over) });
    const sha256 = seq(oid(OID_ECDSA_SHA256));
    const withNull = seq(oid(OID_ECDSA_SHA384), der(0x05, new Uint8Array()));
    const msg = "certificate chain invalid: CN=test leaf: not signed with ecdsa-with-SHA384";
    expect(refusal(() => verifyTest(withLeaf({ sigAlg: sha256 })))).toBe(msg);
    expect(refusal(() => verifyTest(withLeaf({ sigAlg: withNull })))).toBe(msg);
    expect(refusal(() => verifyTest(withLeaf({ tbsSigAlg: sha256 })))).toBe(msg);
  });

  it("accepts only P-384 keys", () => {
    const p256Key = p256.getPublicKey(new Uint8Array(32).fill(5), false);
    const p256Spki = seq(seq(oid("2a8648ce3d0201"), oid("2a8648ce3d030107")), der(0x03, Uint8Array.of(0), p256Key));
    expect(refusal(() => verifyTest(nsmDocument({ certificate: leafCert(undefined, { spki: p256Spki }) })))).toBe(
      "certificate chain invalid: CN=test leaf: key is not P-384",
    );
    const notOnCurve = LEAF_KEY.pub.slice();
    notOnCurve[96]! ^= 1;
    expect(refusal(() => verifyTest(nsmDocument({ certificate: leafCert(undefined, { pub: notOnCurve }) })))).toBe(
      "certificate chain invalid: CN=test leaf: invalid P-384 key",
    );
  });

  it("enforces maxAgeMs with 60 s of future skew", () => {
    const doc = nsmDocument();
    expect(verifyTest(doc, { maxAgeMs: 1000, nowMs: DOC_TS - 60_000 }).timestampMs).toBe(DOC_TS);
    expect(refusal(() => verifyTest(doc, { maxAgeMs: 1000, nowMs: DOC_TS - 60_001 }))).toBe(
      "attestation document timestamp is in the future",
    );
    expect(verifyTest(doc, { maxAgeMs: 1000, nowMs: DOC_TS + 1000 }).timestampMs).toBe(DOC_TS);
    expect(refusal(() => verifyTest(doc, { maxAgeMs: 1000, nowMs: DOC_TS + 1001 }))).toBe(
      "attestation document is 1001 ms old, more than the allowed 1000 ms",
    );
    // Without maxAgeMs, a future timestamp is not a refusal (as in Rust).
    expect(verifyTest(doc, { nowMs: DOC_TS - 3_600_000 }).timestampMs).toBe(DOC_TS);
  });
});

describe("verifyAttestation with accept: nitro", () => {
  it("accepts a document binding exactly the response's key", () => {
    const out = verifyAttestation(response(nsmDocument()), { accept: "nitro", nitroRoot: ROOT_CERT, nowMs: DOC_TS });
    expect(out.format).toBe("nitro");
    expect(out.dev).toBe(false);
    expect(out.warning).toBeUndefined();
    expect("warning" in out).toBe(false);
    expect(out.publicKey).toEqual(HPKE_KEY);
    expect(out.publicKeyBase64).toBe(toBase64(HPKE_KEY));
    expect(out.moduleId).toBe("i-test-enc");
    expect(out.timestampMs).toBe(DOC_TS);
    expect(out.pcrs.size).toBe(3);
    // The policy reaches the document check.
    const policy = { accept: "nitro" as const, nitroRoot: ROOT_CERT, nowMs: DOC_TS };
    expect(() => verifyAttestation(response(nsmDocument()), { ...policy, expectedPcr0: new Uint8Array(48) })).toThrow(
      "PCR0 does not match",
    );
    expect(() => verifyAttestation(response(nsmDocument()), { ...policy, nowMs: NOT_AFTER + 1000 })).toThrow("expired");
  });

  it("refuses a key other than the document's, and a document without one", () => {
    const policy = { accept: "nitro" as const, nitroRoot: ROOT_CERT, nowMs: DOC_TS };
    expect(() => verifyAttestation(response(nsmDocument(), new Uint8Array(32).fill(7)), policy)).toThrow(
      "the document's public key differs from publicKey",
    );
    expect(() => verifyAttestation(response(nsmDocument({ publicKey: null })), policy)).toThrow(
      "nitro document has no public key",
    );
    // A 33-byte document key can never equal the 32-byte response key.
    const longer = concatBytes(HPKE_KEY, Uint8Array.of(0));
    expect(() => verifyAttestation(response(nsmDocument({ publicKey: longer })), policy)).toThrow("differs");
    expect(() => verifyAttestation({ ...response(nsmDocument()), suite: "x" }, policy)).toThrow("suite");
  });

  it("real samples: everything verifies but neither binds a 32-byte HPKE key", () => {
    // Sample 1 has no public_key at all.
    expect(() =>
      verifyAttestation(response(SAMPLE_1), { accept: "nitro", nowMs: SAMPLE_1_TS }),
    ).toThrow("nitro document has no public key");
    // ... and its chain is checked first: at a later time the refusal is the expiry.
    expect(() => verifyAttestation(response(SAMPLE_1), { accept: "nitro", nowMs: 1_750_000_000_000 })).toThrow("expired");
    // Sample 2's key is "my super secret key" (19 bytes): the response key must be 32 bytes.
    const s2 = { accept: "nitro" as const, allowDebug: true, nowMs: SAMPLE_2_TS };
    expect(() => verifyAttestation(response(SAMPLE_2), s2)).toThrow("differs");
    expect(() => verifyAttestation(response(SAMPLE_2, utf8Encode("my super secret key")), s2)).toThrow(
      "publicKey is not 32 bytes",
    );
    expect(() => verifyAttestation(response(SAMPLE_2), { ...s2, allowDebug: false })).toThrow("debug mode");
  });

  it("keeps the formats apart", async () => {
    // A dev document under accept "nitro" (label and document both say dev, or only the document).
    const seed = await sha256(utf8Encode("keystead development attestation key (proves nothing)"));
    const devPayload = cborEncode(
      cbor.map([
        [cbor.text("module_id"), cbor.text("keystead-dev")],
        [cbor.text("digest"), cbor.text("SHA384")],
        [cbor.text("timestamp"), cbor.int(SAMPLE_1_TS)],
        [cbor.text("pcrs"), cbor.map([[cbor.int(0), cbor.bytes(new Uint8Array(48).fill(7))]])],
        [cbor.text("certificate"), cbor.bytes(new Uint8Array())],
        [cbor.text("cabundle"), cbor.array([])],
        [cbor.text("public_key"), cbor.bytes(HPKE_KEY)],
        [cbor.text("user_data"), cbor.null()],
        [cbor.text("nonce"), cbor.null()],
        [cbor.text("warning"), cbor.text(DEV_WARNING)],
      ]),
    );
    const prot = cborEncode(cbor.map([[cbor.int(1), cbor.int(-8)]]));
    const devDoc = cborEncode(
      cbor.array([cbor.bytes(prot), cbor.map([]), cbor.bytes(devPayload), cbor.bytes(ed25519.sign(coseSigStructure(prot, devPayload), seed))]),
    );
    // Control: it is a valid dev document.
    expect(verifyAttestation({ ...response(devDoc), format: "dev" }, { accept: "dev" }).dev).toBe(true);
    expect(refusal(() => verifyNitroDocument(devDoc, { nowMs: SAMPLE_1_TS }))).toBe(
      "expected a nitro attestation document, found EdDSA (dev)",
    );
    expect(() => verifyAttestation(response(devDoc), { accept: "nitro" })).toThrow("found EdDSA (dev)");
    expect(() => verifyAttestation({ ...response(devDoc), format: "dev" }, { accept: "nitro" })).toThrow(
      'attestation format is "dev", this client accepts nitro',
    );
    // A nitro document under accept "dev".
    const nitroAsDev = { ...response(nsmDocument()), format: "dev" };
    expect(() => verifyAttestation(nitroAsDev, { accept: "dev" })).toThrow("expected a dev (EdDSA) document, found ES384 (nitro)");
    expect(() => verifyAttestation({ ...response(SAMPLE_1), format: "dev" }, { accept: "dev" })).toThrow("found ES384 (nitro)");
    expect(() => verifyAttestation(response(SAMPLE_1), { accept: "dev" })).toThrow('attestation format is "nitro"');
    // A development warning inside an ES384 document is refused too.
    expect(refusal(() => verifyTest(nsmDocument({ extra: [[cbor.text("warning"), cbor.text(DEV_WARNING)]] })))).toBe(
      "malformed attestation document: development warning in a Nitro document",
    );
  });
});

describe("attestationPolicyFromConfig (the widget's config.json)", () => {
  const pcr0 = "ab".repeat(48);

  it("defaults to dev on loopback only, and nitro needs PCR0", () => {
    expect(attestationPolicyFromConfig({}, true)).toEqual({ accept: "dev", pcrs: new Map() });
    expect(() => attestationPolicyFromConfig({}, false)).toThrow("needs pcrs.0");
    expect(() => attestationPolicyFromConfig({ attestation: "nitro" }, true)).toThrow("needs pcrs.0");
    expect(() => attestationPolicyFromConfig({ attestation: "nitro", pcrs: { "1": pcr0 } }, false)).toThrow("needs pcrs.0");
    const nitro = attestationPolicyFromConfig({ attestation: "nitro", pcrs: { "0": pcr0, "2": pcr0.toUpperCase() } }, false);
    expect(nitro.accept).toBe("nitro");
    expect(nitro.pcrs).toEqual(new Map([[0, fromHex(pcr0)], [2, fromHex(pcr0)]]));
    // Not an object at all (a failed fetch): the same as no configuration.
    expect(attestationPolicyFromConfig(null, true).accept).toBe("dev");
  });

  it("refuses malformed settings", () => {
    for (const bad of [
      { attestation: "none" },
      { attestation: "dev", pcrs: [pcr0] },
      { attestation: "nitro", pcrs: { "0": pcr0.slice(2) } },
      { attestation: "nitro", pcrs: { "0": "zz".repeat(48) } },
      { attestation: "nitro", pcrs: { "0": pcr0, "01": pcr0 } },
      { attestation: "nitro", pcrs: { "0": pcr0, "32": pcr0 } },
      { attestation: "nitro", pcrs: { "0": 5 } },
    ]) {
      expect(() => attestationPolicyFromConfig(bad, false), JSON.stringify(bad)).toThrow(AttestationError);
    }
  });

  it("its pins are enforced on a document", () => {
    const pinned = (hex: string) => ({
      ...attestationPolicyFromConfig({ attestation: "nitro", pcrs: { "0": hex } }, false),
      nitroRoot: ROOT_CERT,
      nowMs: DOC_TS,
    });
    const doc = response(nsmDocument());
    expect(() => verifyAttestation(doc, pinned(pcr0))).toThrow("PCR0 does not match");
    const actual = verifyAttestation(doc, { accept: "nitro", nitroRoot: ROOT_CERT, nowMs: DOC_TS }).pcrs.get(0)!;
    expect(verifyAttestation(doc, pinned(toHex(actual))).format).toBe("nitro");
  });
});
