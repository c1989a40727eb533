//! The two adapter families, built fresh per test.

use std::sync::Arc;

use wappline::queue::sqs::{provision_queues, SqsQueue};
use wappline::queue::{platform, Queue};
use wappline::store::dynamo::{provision_tables, DynamoStore, TableNames};
use wappline::store::embedded::EmbeddedStore;
use wappline::store::TableStore;
use wappline::vault::kms::KmsVault;
use wappline::vault::local::LocalVault;
use wappline::vault::KeyVault;

use crate::support::{aws_config, unique};

/// A store and a vault of one family; `_dir` keeps the embedded files alive.
pub struct Backend {
    pub store: Arc<dyn TableStore>,
    pub vault: Arc<dyn KeyVault>,
    pub _dir: Option<tempfile::TempDir>,
}

impl Backend {
    /// This backend's vault over `store` (this backend's store behind a fault hook, say).
    /// `self` keeps the data directory: it must outlive the result.
    pub fn with_store(&self, store: Arc<dyn TableStore>) -> Backend {
        Backend {
            store,
            vault: self.vault.clone(),
            _dir: None,
        }
    }
}

pub async fn embedded() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    Backend {
        store: Arc::new(EmbeddedStore::open(dir.path()).unwrap()),
        vault: Arc::new(LocalVault::open_or_create(dir.path()).unwrap()),
        _dir: Some(dir),
    }
}

pub async fn aws() -> Backend {
    let config = aws_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let names = TableNames::with_prefix(&unique("dom"));
    provision_tables(&dynamo, &names).await.unwrap();
    let kms = aws_sdk_kms::Client::new(&config);
    let key_id = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_owned();
    Backend {
        store: Arc::new(DynamoStore::new(dynamo, names)),
        vault: Arc::new(KmsVault::new(kms, key_id)),
        _dir: None,
    }
}

/// Runs each listed `async fn case(Backend)` on both families.
#[macro_export]
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case($crate::backends::embedded().await).await;
                }
            )*
        }
        mod aws {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case($crate::backends::aws().await).await;
                }
            )*
        }
    };
}

/// The platform's queues on SQS (moto), named with a fresh `prefix`.
pub async fn sqs_platform_queues(prefix: &str) -> Arc<dyn Queue> {
    let client = aws_sdk_sqs::Client::new(&aws_config().await);
    let urls = provision_queues(&client, &unique(prefix), &platform::specs())
        .await
        .unwrap();
    Arc::new(SqsQueue::new(client, urls))
}
