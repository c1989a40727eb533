//! The published test vectors (docs/encryption-test-vectors.json) are reproduced byte for
//! byte by our implementation; the test script also decrypts them with Python's
//! `cryptography` as an independent implementation.

use serde_json::Value;
use wappline::crypto::format::{aead_key, key_version, open, seal, FieldRef};
use wappline::ids::TenantId;
use wappline::store::{Key, Table};

fn table(name: &str) -> Table {
    Table::ALL
        .into_iter()
        .find(|t| t.logical_name() == name)
        .unwrap_or_else(|| panic!("unknown table {name}"))
}

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/encryption-test-vectors.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn parts(f: &Value) -> (TenantId, Table, Key, String) {
    (
        TenantId::parse(f["tenant_id"].as_str().unwrap()).unwrap(),
        table(f["table"].as_str().unwrap()),
        Key::new(f["pk"].as_str().unwrap(), f["sk"].as_str().unwrap()),
        f["attribute"].as_str().unwrap().to_owned(),
    )
}

fn hex_arr<const N: usize>(v: &Value) -> [u8; N] {
    hex::decode(v.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

#[test]
fn implementation_reproduces_published_vectors() {
    let doc = vectors();
    let vs = doc["vectors"].as_array().unwrap();
    assert!(vs.len() >= 3);
    for v in vs {
        let key = aead_key(&hex_arr::<32>(&v["key_hex"]));
        let (t, table, k, attr) = parts(&v["field"]);
        let field = FieldRef::new(&t, table, &k, &attr);
        let plaintext = hex::decode(v["plaintext_hex"].as_str().unwrap()).unwrap();
        let version = v["key_version"].as_u64().unwrap() as u32;
        let blob = seal(
            &key,
            version,
            hex_arr::<12>(&v["nonce_hex"]),
            &field,
            &plaintext,
        );
        assert_eq!(
            hex::encode(&blob),
            v["blob_hex"].as_str().unwrap(),
            "{}",
            v["name"]
        );
        assert_eq!(key_version(&blob), Some(version));
        assert_eq!(open(&key, &field, &blob).unwrap(), plaintext);
    }
}

#[test]
fn negative_vectors_are_rejected() {
    let doc = vectors();
    let ns = doc["negative_vectors"].as_array().unwrap();
    assert!(ns.len() >= 5);
    for n in ns {
        let key = aead_key(&hex_arr::<32>(&n["key_hex"]));
        let (t, table, k, attr) = parts(&n["field"]);
        let field = FieldRef::new(&t, table, &k, &attr);
        let blob = hex::decode(n["blob_hex"].as_str().unwrap()).unwrap();
        assert!(open(&key, &field, &blob).is_none(), "{}", n["name"]);
    }
}
