#!/usr/bin/env python3
"""Checks tests/vectors.json with an implementation independent of the Rust crate.

RFC 9180 HPKE base mode, single shot, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
AES-256-GCM, written from the RFC with only the `cryptography` package's X25519 and
AES-GCM primitives; digests via Python's own JSON writer (the vectors' ids are ASCII, so
sorted keys and compact separators are RFC 8785 here). Not run by CI (it needs
`pip install cryptography`):

    python3 crates/envelope/tests/check_vectors.py crates/envelope/tests/vectors.json
"""
import base64, hashlib, hmac, json, sys
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives import serialization as s

def extract(salt, ikm): return hmac.new(salt or b"\0"*32, ikm, hashlib.sha256).digest()
def expand(prk, info, L):
    out, t, i = b"", b"", 1
    while len(out) < L:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest(); out += t; i += 1
    return out[:L]
KEM_SUITE = b"KEM" + (0x20).to_bytes(2, "big")
HPKE_SUITE = b"HPKE" + (0x20).to_bytes(2,"big") + (1).to_bytes(2,"big") + (2).to_bytes(2,"big")
def lextract(suite, salt, label, ikm): return extract(salt, b"HPKE-v1" + suite + label + ikm)
def lexpand(suite, prk, label, info, L): return expand(prk, L.to_bytes(2,"big") + b"HPKE-v1" + suite + label + info, L)
def raw(pk): return pk.public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)
def derive_keypair(ikm):
    prk = lextract(KEM_SUITE, b"", b"dkp_prk", ikm)
    sk = lexpand(KEM_SUITE, prk, b"sk", b"", 32)
    k = X25519PrivateKey.from_private_bytes(sk); return sk, raw(k.public_key())
def kem_ss(dh, enc, pkr):
    eae = lextract(KEM_SUITE, b"", b"eae_prk", dh)
    return lexpand(KEM_SUITE, eae, b"shared_secret", enc + pkr, 32)
def key_schedule(ss, info):
    psk_id_hash = lextract(HPKE_SUITE, b"", b"psk_id_hash", b"")
    info_hash = lextract(HPKE_SUITE, b"", b"info_hash", info)
    ctx = b"\x00" + psk_id_hash + info_hash
    secret = lextract(HPKE_SUITE, ss, b"secret", b"")
    return lexpand(HPKE_SUITE, secret, b"key", ctx, 32), lexpand(HPKE_SUITE, secret, b"base_nonce", ctx, 12)
def open_(skr, enc, info, ct):
    k = X25519PrivateKey.from_private_bytes(skr)
    dh = k.exchange(X25519PublicKey.from_public_bytes(enc))
    key, nonce = key_schedule(kem_ss(dh, enc, raw(k.public_key())), info)
    return AESGCM(key).decrypt(nonce, ct, b"")
def seal_(pkr, info, pt, ikme):
    ske, enc = derive_keypair(ikme)
    dh = X25519PrivateKey.from_private_bytes(ske).exchange(X25519PublicKey.from_public_bytes(pkr))
    key, nonce = key_schedule(kem_ss(dh, enc, pkr), info)
    return ske, enc, AESGCM(key).encrypt(nonce, pt, b"")

v = json.load(open(sys.argv[1]))
for e in v["envelopes"]:
    h = bytes.fromhex
    skr = h(e["recipientPrivateKey"])
    assert raw(X25519PrivateKey.from_private_bytes(skr).public_key()).hex() == e["recipientPublicKey"]
    pt = open_(skr, h(e["enc"]), h(e["infoHex"]), h(e["ciphertext"]))
    assert pt == e["plaintext"].encode(), pt
    ske, enc, ct = seal_(h(e["recipientPublicKey"]), h(e["infoHex"]), pt, h(e["ephemeralIkm"]))
    assert enc.hex() == e["enc"] and ct.hex() == e["ciphertext"]

    assert base64.b64decode(e["sealed"]["enc"]) == enc and base64.b64decode(e["sealed"]["ciphertext"]) == ct
    print("ok", e["name"], pt.decode())
for d in v["digests"]:
    c = json.dumps(d["operation"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert c == d["canonicalJson"], (c, d["canonicalJson"])
    assert hashlib.sha256(c.encode()).hexdigest() == d["digest"]
    print("ok digest", d["operation"]["purpose"], d["digest"])
