import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ed25519 } from "@noble/curves/ed25519";
import {
  AttestationError,
  DEV_PUBLIC_KEY_HEX,
  DEV_WARNING,
  canonicalJson,
  checkNewPin,
  clientKeyPairFromPrivateKey,
  coseSigStructure,
  devPublicKeyFromSeed,
  generateClientKeyPair,
  hpkeOpen,
  hpkeSeal,
  INFO_CLIENT,
  INFO_PIN,
  messageHex,
  openMnemonic,
  openRecoveryKit,
  operationDigest,
  sealPinEnvelope,
  sha256,
  typedDataHash,
  verifyAttestation,
  type AttestationResponse,
  type Operation,
  type TypedData,
} from "../src/crypto.js";
import { cbor, cborDecode, cborEncode, type CborValue } from "../src/cbor.js";
import { fromBase64, fromHex, toBase64, toHex, utf8Decode, utf8Encode } from "../src/bytes.js";

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
// The vectors the Rust envelope crate checks; the SDK must reproduce every one of them.
const vectors = JSON.parse(readFileSync(here("../../../crates/envelope/tests/vectors.json"), "utf8")) as {
  suite: string;
  digests: Array<{ canonicalJson: string; digest: string; operation: Operation }>;
  envelopes: Array<{
    name: string;
    info: string;
    infoHex: string;
    plaintext: string;
    plaintextHex: string;
    enc: string;
    ciphertext: string;
    ephemeralIkm: string;
    recipientPrivateKey: string;
    recipientPublicKey: string;
    sealed: { enc: string; ciphertext: string };
  }>;
};

describe("JCS canonical JSON and operation digests", () => {
  it("reproduces both worked examples of API.md", async () => {
    const signMessage: Operation = {
      purpose: "sign_message",
      appId: "app_01",
      accountId: "acc_01",
      message: messageHex("hello keystead"),
    };
    expect(canonicalJson(signMessage)).toBe(
      '{"accountId":"acc_01","appId":"app_01","message":"0x68656c6c6f206b65797374656164","purpose":"sign_message"}',
    );
    expect(await operationDigest(signMessage)).toBe("1a3538ed34512b66677093a8fd576ae8965c82e2d89312a3510c81d83569f7ff");

    // Members deliberately out of order: the digest must not depend on insertion order.
    const signTx: Operation = {
      purpose: "sign_transaction",
      intent: {
        value: "1000000000000000",
        to: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
        maxPriorityFeePerGas: "1000000000",
        maxFeePerGas: "2000000000",
        gasLimit: "25200",
        data: "0x",
        chainId: 31337,
      },
      appId: "app_01",
      accountId: "acc_01",
    };
    expect(await operationDigest(signTx)).toBe("b040b826f007ce1cc02ae0330081a56739c6c17501f19a69f8be942e9c5b0039");
  });

  it("matches every digest in vectors.json", async () => {
    expect(vectors.digests.length).toBe(8);
    for (const v of vectors.digests) {
      expect(canonicalJson(v.operation)).toBe(v.canonicalJson);
      expect(await operationDigest(v.operation)).toBe(v.digest);
    }
  });

  it("matches the EIP-712 Mail vector of enclave-protocol.md §4", async () => {
    const typed: TypedData = JSON.parse(
      '{"types":{"EIP712Domain":[{"name":"name","type":"string"},{"name":"version","type":"string"},{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}],"Person":[{"name":"name","type":"string"},{"name":"wallet","type":"address"}],"Mail":[{"name":"from","type":"Person"},{"name":"to","type":"Person"},{"name":"contents","type":"string"}]},"primaryType":"Mail","domain":{"name":"Ether Mail","version":"1","chainId":1,"verifyingContract":"0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},"message":{"from":{"name":"Cow","wallet":"0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},"to":{"name":"Bob","wallet":"0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},"contents":"Hello, Bob!"}}',
    );
    const hash = typedDataHash(typed);
    expect(hash).toBe("0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2");
    expect(await operationDigest({ purpose: "sign_typed_data", appId: "app_01", accountId: "acc_01", hash })).toBe(
      "2e6717249969a4e3435e6654040b0d30b0f959024a02935a3c62e87a3f5bc3b3",
    );
  });

  it("escapes strings as JCS does and sorts by UTF-16 code units", () => {
    expect(canonicalJson({ b: "\u0001\n\"\\/\u007f é", a: [1, 2.5, -0, 1e21, true, null] })).toBe(
      '{"a":[1,2.5,0,1e+21,true,null],"b":"\\u0001\\n\\"\\\\/\u007f é"}',
    );
    // U+E000 sorts after U+1F600's high surrogate D83D in UTF-16 order.
    expect(canonicalJson({ "\ue000": 1, "\u{1f600}": 2 })).toBe('{"\u{1f600}":2,"\ue000":1}');
    expect(() => canonicalJson({ a: undefined })).toThrow();
    expect(() => canonicalJson({ a: Number.NaN })).toThrow();
  });

  it("encodes messages as 0x lowercase hex", () => {
    expect(messageHex("")).toBe("0x");
    expect(messageHex("0xABcd", "hex")).toBe("0xabcd");
    expect(messageHex(new Uint8Array([1, 255]))).toBe("0x01ff");
    expect(() => messageHex("abc", "hex")).toThrow();
  });
});

describe("HPKE vectors", () => {
  it("checks the suite string", () => {
    expect(vectors.suite).toBe("DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM");
  });

  for (const v of vectors.envelopes) {
    it(`opens "${v.name}"`, async () => {
      expect(v.info).toBe(v.name.startsWith("pin") ? INFO_PIN : INFO_CLIENT);
      expect(toHex(utf8Encode(v.info))).toBe(v.infoHex);
      expect(toHex(fromBase64(v.sealed.enc))).toBe(v.enc);
      expect(toHex(fromBase64(v.sealed.ciphertext))).toBe(v.ciphertext);
      const pt = await hpkeOpen(fromHex(v.recipientPrivateKey), v.info, v.sealed);
      expect(utf8Decode(pt)).toBe(v.plaintext);
      expect(toHex(pt)).toBe(v.plaintextHex);
      // The wrong info never opens it.
      await expect(hpkeOpen(fromHex(v.recipientPrivateKey), v.info === INFO_PIN ? INFO_CLIENT : INFO_PIN, v.sealed)).rejects.toThrow(
        "does not open",
      );
    });

    it(`seals "${v.name}" byte for byte from its ephemeral IKM`, async () => {
      const sealed = await hpkeSeal(fromHex(v.recipientPublicKey), v.info, utf8Encode(v.plaintext), fromHex(v.ephemeralIkm));
      expect(sealed).toEqual(v.sealed);
    });
  }

  it("sealPinEnvelope writes exactly the documented plaintext (the sign_message vector)", async () => {
    const v = vectors.envelopes[0]!;
    const sealed = await sealPinEnvelope({
      pin: "482915",
      purpose: "sign_message",
      digest: "1a3538ed34512b66677093a8fd576ae8965c82e2d89312a3510c81d83569f7ff",
      publicKey: fromHex(v.recipientPublicKey),
      testFixed: {
        nonce: "60012fd29eee4c748ebfa16a85e2de2e62f010b0447b09466804d9c34691783c",
        expiresAt: 1750000300,
        ephemeralIkm: fromHex(v.ephemeralIkm),
      },
    });
    expect(sealed).toEqual(v.sealed);
  });

  it("sealPinEnvelope uses a fresh nonce and a bounded expiry", async () => {
    const v = vectors.envelopes[0]!;
    const now = 1_750_000_000;
    const open = async (s: { enc: string; ciphertext: string }) =>
      JSON.parse(utf8Decode(await hpkeOpen(fromHex(v.recipientPrivateKey), INFO_PIN, s))) as Record<string, unknown>;
    const input = {
      pin: "482915",
      purpose: "change_pin" as const,
      digest: "f6c273ff95ae3f467efb9ab8ea3d22b92a2ba599d727829c195b90aee7998f3f",
      publicKey: toBase64(fromHex(v.recipientPublicKey)),
      now,
    };
    const a = await open(await sealPinEnvelope(input));
    const b = await open(await sealPinEnvelope(input));
    expect(Object.keys(a)).toEqual(["pin", "purpose", "digest", "nonce", "expiresAt"]);
    expect(a.nonce).toMatch(/^[0-9a-f]{64}$/);
    expect(a.nonce).not.toBe(b.nonce);
    expect(a.expiresAt).toBe(now + 300);
    const longest = await open(await sealPinEnvelope({ ...input, lifetimeSeconds: 600 }));
    expect(longest.expiresAt).toBe(now + 600);
    await expect(sealPinEnvelope({ ...input, lifetimeSeconds: 601 })).rejects.toThrow();
    await expect(sealPinEnvelope({ ...input, digest: "0x" + input.digest.slice(2) })).rejects.toThrow();
    await expect(sealPinEnvelope({ ...input, digest: input.digest.toUpperCase() })).rejects.toThrow();
  });

  it("never puts the PIN in an error message", async () => {
    const err = await sealPinEnvelope({
      pin: "918273",
      purpose: "sign_message",
      digest: "zz",
      publicKey: new Uint8Array(32),
    }).catch((e: Error) => e);
    expect(String(err)).not.toContain("918273");
  });

  it("opens the recovery kit vector with the client's one-time key", async () => {
    const v = vectors.envelopes[1]!;
    const keys = clientKeyPairFromPrivateKey(fromHex(v.recipientPrivateKey));
    expect(keys.clientKey).toBe("zpVeKh5KWOKSIMomwgBmk1B8wEakydDJBvtC+TFwowA=");
    expect(toHex(fromBase64(keys.clientKey))).toBe(v.recipientPublicKey);
    expect(await openRecoveryKit(keys, v.sealed)).toBe("K7QM-2XWD-9RTF-HP4C");
    await expect(openMnemonic(keys, v.sealed)).rejects.toThrow("no mnemonic");
  });

  it("round-trips a fresh one-time key pair (export)", async () => {
    const keys = await generateClientKeyPair();
    expect(fromBase64(keys.clientKey).length).toBe(32);
    const words = "abandon ".repeat(23) + "art";
    const sealed = await hpkeSeal(keys.clientKey, INFO_CLIENT, utf8Encode(JSON.stringify({ mnemonic: words })));
    expect(await openMnemonic(keys, sealed)).toBe(words);
    const other = await generateClientKeyPair();
    const err = await other.open(sealed).catch((e: Error) => e);
    expect(String(err)).toContain("does not open");
    expect(String(err)).not.toContain("abandon");
  });
});

describe("PIN rules", () => {
  it("refuses exactly the 30 weak six-digit PINs", () => {
    let refused = 0;
    for (let i = 0; i < 1_000_000; i++) {
      if (checkNewPin(String(i).padStart(6, "0")) !== null) refused++;
    }
    expect(refused).toBe(30);
    expect(checkNewPin("12345")).toBe("wrong_length");
    expect(checkNewPin("12345a")).toBe("not_digits");
    expect(checkNewPin("１２３４５６")).toBe("not_digits");
    expect(checkNewPin("777777")).toBe("repeated");
    expect(checkNewPin("890123")).toBe("sequential");
    expect(checkNewPin("109876")).toBe("sequential");
    expect(checkNewPin("482915")).toBeNull();
  });
});

describe("dev attestation", () => {
  const fixture = JSON.parse(readFileSync(here("./fixtures/attestation-dev.json"), "utf8")) as AttestationResponse;

  it("derives the published dev key from its seed", async () => {
    expect(await devPublicKeyFromSeed()).toBe(DEV_PUBLIC_KEY_HEX);
  });

  it("verifies a document the real server served and returns its key with dev: true", () => {
    const out = verifyAttestation(fixture, { accept: "dev" });
    expect(out.dev).toBe(true);
    expect(out.format).toBe("dev");
    expect(out.publicKeyBase64).toBe(fixture.publicKey);
    expect(out.moduleId).toBe("keystead-dev");
    expect(out.warning).toBe(DEV_WARNING);
    expect(out.pcrs.get(0)?.length).toBe(48);
    expect(() => verifyAttestation(fixture, { accept: "dev", expectedPcr0: new Uint8Array(48) })).toThrow("PCR0");
    expect(() => verifyAttestation(fixture, { accept: "dev", expectedPcr0: out.pcrs.get(0)! })).not.toThrow();
  });

  it("refuses a label other than the configured format, and a swapped key or suite", () => {
    expect(() => verifyAttestation(fixture, { accept: "nitro" })).toThrow(AttestationError);
    expect(() => verifyAttestation({ ...fixture, format: "nitro" }, { accept: "dev" })).toThrow("format");
    const other = toBase64(new Uint8Array(32).fill(7));
    expect(() => verifyAttestation({ ...fixture, publicKey: other }, { accept: "dev" })).toThrow("differs");
    expect(() => verifyAttestation({ ...fixture, suite: "x" }, { accept: "dev" })).toThrow("suite");
  });

  it("refuses every single-byte modification of the document", () => {
    const doc = fromBase64(fixture.document);
    let accepted = 0;
    for (let i = 0; i < doc.length; i++) {
      const bad = doc.slice();
      bad[i]! ^= 0x01;
      try {
        verifyAttestation({ ...fixture, document: toBase64(bad) }, { accept: "dev" });
        accepted++;
      } catch (e) {
        expect(e).toBeInstanceOf(AttestationError);
      }
    }
    expect(accepted).toBe(0);
  });

  // Builds dev documents the way crates/attestation/src/dev.rs does, to exercise the checks.
  async function devDocument(mutate: (payload: Array<[CborValue, CborValue]>) => void, key = new Uint8Array(32).fill(9)) {
    const seed = await sha256(utf8Encode("keystead development attestation key (proves nothing)"));
    const payload: Array<[CborValue, CborValue]> = [
      [cbor.text("module_id"), cbor.text("keystead-dev")],
      [cbor.text("digest"), cbor.text("SHA384")],
      [cbor.text("timestamp"), cbor.int(1_700_000_000_000)],
      [cbor.text("pcrs"), cbor.map([[cbor.int(0), cbor.bytes(new Uint8Array(48).fill(0xab))]])],
      [cbor.text("certificate"), cbor.bytes(new Uint8Array(0))],
      [cbor.text("cabundle"), cbor.array([])],
      [cbor.text("public_key"), cbor.bytes(key)],
      [cbor.text("user_data"), cbor.null()],
      [cbor.text("nonce"), cbor.null()],
      [cbor.text("warning"), cbor.text(DEV_WARNING)],
    ];
    mutate(payload);
    const payloadBytes = cborEncode(cbor.map(payload));
    const protectedHeader = cborEncode(cbor.map([[cbor.int(1), cbor.int(-8)]]));
    const sig = ed25519.sign(coseSigStructure(protectedHeader, payloadBytes), seed);
    const doc = cborEncode(cbor.array([cbor.bytes(protectedHeader), cbor.map([]), cbor.bytes(payloadBytes), cbor.bytes(sig)]));
    return {
      format: "dev",
      document: toBase64(doc),
      publicKey: toBase64(key),
      suite: "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM",
    };
  }

  it("accepts a document built like dev.rs, also under CBOR tag 18", async () => {
    const ok = await devDocument(() => {});
    expect(verifyAttestation(ok, { accept: "dev" }).publicKeyBase64).toBe(ok.publicKey);
    const inner = cborDecode(fromBase64(ok.document));
    const tagged = { ...ok, document: toBase64(cborEncode({ type: "tag", tag: 18n, value: inner })) };
    expect(verifyAttestation(tagged, { accept: "dev" }).dev).toBe(true);
  });

  it("refuses documents without the warning, with Nitro content, without PCR0 or key", async () => {
    const cases: Array<[string, (p: Array<[CborValue, CborValue]>) => void]> = [
      ["warning", (p) => p.splice(9, 1)],
      ["Nitro-only", (p) => (p[0]![1] = cbor.text("i-123"))],
      ["Nitro-only", (p) => (p[4]![1] = cbor.bytes(new Uint8Array([1])))],
      ["PCR0", (p) => (p[3]![1] = cbor.map([[cbor.int(1), cbor.bytes(new Uint8Array(48))]]))],
      ["no public key", (p) => (p[6]![1] = cbor.null())],
      ["duplicate", (p) => p.push([cbor.text("nonce"), cbor.null()])],
      ["SHA384", (p) => (p[1]![1] = cbor.text("SHA256"))],
    ];
    for (const [message, mutate] of cases) {
      const doc = await devDocument(mutate);
      expect(() => verifyAttestation(doc, { accept: "dev" }), message).toThrow(message);
    }
  });
});
