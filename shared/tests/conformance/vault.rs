//! Key-vault conformance: the same cases against the local vault and KMS (moto).

use wappline::vault::kms::KmsVault;
use wappline::vault::local::LocalVault;
use wappline::vault::{EncryptionContext, KeyVault, VaultError};

use crate::support::aws_config;

fn ctx(tenant: &str) -> EncryptionContext {
    EncryptionContext::new().with("tenant_id", tenant)
}

async fn unwraps_only_with_the_same_context(vault: &dyn KeyVault) {
    let generated = vault.generate_data_key(&ctx("tn_a")).await.unwrap();
    assert_ne!(
        generated.wrapped.as_slice(),
        generated.plaintext.as_slice(),
        "the wrapped key must not be the key"
    );
    let unwrapped = vault
        .unwrap_data_key(&generated.wrapped, &ctx("tn_a"))
        .await
        .unwrap();
    assert_eq!(*unwrapped, *generated.plaintext);

    // Another tenant's context, an extra pair, or no context: refused.
    for wrong in [
        ctx("tn_b"),
        ctx("tn_a").with("purpose", "other"),
        EncryptionContext::new(),
        EncryptionContext::new().with("tenant", "tn_a"),
    ] {
        let err = vault
            .unwrap_data_key(&generated.wrapped, &wrong)
            .await
            .unwrap_err();
        assert_eq!(err, VaultError::InvalidCiphertext, "context {wrong:?}");
    }
}

async fn generates_distinct_keys(vault: &dyn KeyVault) {
    let a = vault.generate_data_key(&ctx("tn_a")).await.unwrap();
    let b = vault.generate_data_key(&ctx("tn_a")).await.unwrap();
    assert_ne!(*a.plaintext, *b.plaintext);
    assert_ne!(a.wrapped, b.wrapped);
}

async fn rejects_tampered_wrapped_keys(vault: &dyn KeyVault) {
    let generated = vault.generate_data_key(&ctx("tn_a")).await.unwrap();
    let mut tampered = generated.wrapped.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    let err = vault
        .unwrap_data_key(&tampered, &ctx("tn_a"))
        .await
        .unwrap_err();
    assert_eq!(err, VaultError::InvalidCiphertext);
    let err = vault
        .unwrap_data_key(&generated.wrapped[..10], &ctx("tn_a"))
        .await
        .unwrap_err();
    assert_eq!(err, VaultError::InvalidCiphertext);
}

async fn kms_vault() -> KmsVault {
    let client = aws_sdk_kms::Client::new(&aws_config().await);
    let key = client
        .create_key()
        .description("wappline conformance test key")
        .send()
        .await
        .expect("create KMS key on moto");
    let key_id = key.key_metadata().unwrap().key_id().to_owned();
    KmsVault::new(client, key_id)
}

fn local_vault() -> (tempfile::TempDir, LocalVault) {
    let dir = tempfile::tempdir().unwrap();
    let vault = LocalVault::open_or_create(dir.path()).unwrap();
    (dir, vault)
}

macro_rules! vault_cases {
    ($($case:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test]
                async fn $case() {
                    let (_dir, vault) = super::local_vault();
                    super::$case(&vault).await;
                }
            )*
        }
        mod kms {
            $(
                #[tokio::test]
                async fn $case() {
                    let vault = super::kms_vault().await;
                    super::$case(&vault).await;
                }
            )*
        }
    };
}

vault_cases!(
    unwraps_only_with_the_same_context,
    generates_distinct_keys,
    rejects_tampered_wrapped_keys,
);

#[tokio::test]
async fn local_wrapping_key_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let generated = LocalVault::open_or_create(dir.path())
        .unwrap()
        .generate_data_key(&ctx("tn_a"))
        .await
        .unwrap();
    let reopened = LocalVault::open_or_create(dir.path()).unwrap();
    let key = reopened
        .unwrap_data_key(&generated.wrapped, &ctx("tn_a"))
        .await
        .unwrap();
    assert_eq!(*key, *generated.plaintext);
    // A different wrapping key (another data dir) cannot unwrap it.
    let (_other_dir, other) = local_vault();
    assert_eq!(
        other
            .unwrap_data_key(&generated.wrapped, &ctx("tn_a"))
            .await
            .unwrap_err(),
        VaultError::InvalidCiphertext
    );
}
