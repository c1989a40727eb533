#!/usr/bin/env python3
"""Independent check of Wappline's field-encryption format v1 (docs/encryption.md).

Decrypts every published vector in docs/encryption-test-vectors.json with Python's
`cryptography` AESGCM, building the AAD from the spec rather than from our Rust code, and
checks that every negative vector fails. `--generate` (re)writes the vector file from fixed
keys and nonces; the Rust test suite checks that our implementation reproduces it byte for
byte.
"""
import json
import struct
import sys
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "docs" / "encryption-test-vectors.json"
LABEL = b"wappline-field-v1"
FORMAT_V1 = 1


def lp(part: str) -> bytes:
    data = part.encode("utf-8")
    return struct.pack(">I", len(data)) + data


def aad(f: dict, key_version: int) -> bytes:
    return (
        LABEL
        + lp(f["tenant_id"])
        + lp(f["table"])
        + lp(f["pk"])
        + lp(f["sk"])
        + lp(f["attribute"])
        + bytes([FORMAT_V1])
        + struct.pack(">I", key_version)
    )


def seal(key: bytes, key_version: int, nonce: bytes, f: dict, plaintext: bytes) -> bytes:
    header = bytes([FORMAT_V1]) + struct.pack(">I", key_version) + nonce
    return header + AESGCM(key).encrypt(nonce, plaintext, aad(f, key_version))


def open_blob(key: bytes, f: dict, blob: bytes) -> bytes:
    if len(blob) < 1 + 4 + 12 + 16 or blob[0] != FORMAT_V1:
        raise ValueError("not a v1 blob")
    (key_version,) = struct.unpack(">I", blob[1:5])
    nonce = blob[5:17]
    return AESGCM(key).decrypt(nonce, blob[17:], aad(f, key_version))


def field(tenant, table, pk, sk, attribute):
    return {"tenant_id": tenant, "table": table, "pk": pk, "sk": sk, "attribute": attribute}


def generate() -> None:
    t1 = "tn_0123456789abcdef01234567"
    t2 = "tn_89abcdef0123456789abcdef"
    key1 = bytes(range(32))
    key2 = bytes(range(0x20, 0x40))
    cases = [
        ("message body, key v1", key1, 1, bytes(range(12)),
         field(t1, "data", f"T#{t1}#CONV#wa#106540352242922#15551234567", "MSG#0000001700000000000#wamid.HBgL", "body"),
         "Hello from WhatsApp \U0001F44B".encode()),
        ("access token, key v2", key2, 2, bytes([0xA5] * 12),
         field(t1, "data", f"T#{t1}", "CH#wa#106540352242922", "access_token"),
         b"EAAG-example-system-user-token"),
        ("empty plaintext", key1, 7, bytes([0] * 12),
         field(t2, "data", f"T#{t2}", "PROFILE", "note"), b""),
    ]
    vectors = []
    for name, key, ver, nonce, f, pt in cases:
        blob = seal(key, ver, nonce, f, pt)
        vectors.append({
            "name": name, "key_hex": key.hex(), "key_version": ver, "nonce_hex": nonce.hex(),
            "field": f, "plaintext_hex": pt.hex(), "blob_hex": blob.hex(),
        })
    base = vectors[0]
    blob = bytes.fromhex(base["blob_hex"])
    tampered = bytearray(blob)
    tampered[20] ^= 1
    negatives = [
        {"name": "ciphertext bit flipped", "field": base["field"], "blob_hex": bytes(tampered).hex()},
        {"name": "moved to another item", "field": dict(base["field"], sk="MSG#0000001700000000001#wamid.other"), "blob_hex": base["blob_hex"]},
        {"name": "moved to another attribute", "field": dict(base["field"], attribute="caption"), "blob_hex": base["blob_hex"]},
        {"name": "moved to another table", "field": dict(base["field"], table="dedupe"), "blob_hex": base["blob_hex"]},
        {"name": "moved to another tenant", "field": dict(base["field"], tenant_id=t2), "blob_hex": base["blob_hex"]},
        {"name": "key version in header changed", "field": base["field"], "blob_hex": (blob[:4] + bytes([blob[4] ^ 1]) + blob[5:]).hex()},
        {"name": "truncated tag", "field": base["field"], "blob_hex": blob[:-1].hex()},
    ]
    for n in negatives:
        n["key_hex"] = base["key_hex"]
    doc = {
        "format": "wappline-field-v1",
        "spec": "docs/encryption.md",
        "vectors": vectors,
        "negative_vectors": negatives,
    }
    VECTORS.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {len(vectors)} vectors and {len(negatives)} negative vectors")


def verify() -> int:
    doc = json.loads(VECTORS.read_text())
    failures = 0
    for v in doc["vectors"]:
        key = bytes.fromhex(v["key_hex"])
        got = open_blob(key, v["field"], bytes.fromhex(v["blob_hex"]))
        ok = got == bytes.fromhex(v["plaintext_hex"])
        again = seal(key, v["key_version"], bytes.fromhex(v["nonce_hex"]), v["field"], got)
        ok = ok and again.hex() == v["blob_hex"]
        print(f"{'ok  ' if ok else 'FAIL'} decrypt: {v['name']}")
        failures += not ok
    for n in doc["negative_vectors"]:
        try:
            open_blob(bytes.fromhex(n["key_hex"]), n["field"], bytes.fromhex(n["blob_hex"]))
            print(f"FAIL reject: {n['name']} (decrypted)")
            failures += 1
        except (InvalidTag, ValueError):
            print(f"ok   reject: {n['name']}")
    total = len(doc["vectors"]) + len(doc["negative_vectors"])
    print(f"vectors: {total - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--generate"]:
        generate()
    else:
        sys.exit(verify())
