//! Object-store conformance: the same cases against the embedded store (files in a temp dir)
//! and S3 (moto, a fresh bucket per test). Each case fails if an adapter shows a half-written
//! object, loses bytes across parts, reads a range wrong, lists outside a prefix or in the
//! wrong order, or treats deleting a missing object as an error.

use std::sync::Arc;

use tempfile::TempDir;
use wappline::objects::embedded::EmbeddedObjects;
use wappline::objects::s3::{provision_bucket, S3Objects, MIN_PART_BYTES};
use wappline::objects::{ByteRange, ObjectError, ObjectKey, ObjectStore};

use crate::support::{aws_config, unique};

fn key(k: &str) -> ObjectKey {
    ObjectKey::parse(k).expect("valid key")
}

fn embedded() -> (Arc<dyn ObjectStore>, Option<TempDir>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedObjects::open(dir.path()).expect("open embedded objects");
    (Arc::new(store), Some(dir))
}

async fn s3() -> (Arc<dyn ObjectStore>, Option<TempDir>) {
    let config = aws_config().await;
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let bucket = unique("obj").to_lowercase();
    provision_bucket(&client, &bucket)
        .await
        .expect("create bucket on moto");
    (
        Arc::new(S3Objects::new(client, bucket).with_part_size(MIN_PART_BYTES)),
        None,
    )
}

/// Deterministic bytes that differ at every offset of a part, so a lost or repeated part
/// shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
}

async fn put_get_head_delete(store: Arc<dyn ObjectStore>) {
    let k = key("exports/tn_a/ex_1/export.json");
    assert!(store.get(&k, None).await.unwrap().is_none());
    assert!(store.head(&k).await.unwrap().is_none());
    let info = store.put(&k, b"{\"hello\":1}").await.unwrap();
    assert_eq!(info.size, 11);
    assert_eq!(store.head(&k).await.unwrap().unwrap().size, 11);
    let body = store.get(&k, None).await.unwrap().unwrap();
    assert_eq!((body.length, body.total_size), (11, 11));
    assert_eq!(body.read_all().await.unwrap(), b"{\"hello\":1}");
    // Overwrite replaces whole.
    store.put(&k, b"second").await.unwrap();
    let again = store.get(&k, None).await.unwrap().unwrap();
    assert_eq!(again.read_all().await.unwrap(), b"second");
    // An empty object is an object.
    let empty = key("exports/tn_a/ex_1/empty.csv");
    store.put(&empty, b"").await.unwrap();
    assert_eq!(store.head(&empty).await.unwrap().unwrap().size, 0);
    assert!(store
        .get(&empty, None)
        .await
        .unwrap()
        .unwrap()
        .read_all()
        .await
        .unwrap()
        .is_empty());
    store.delete(&k).await.unwrap();
    assert!(store.get(&k, None).await.unwrap().is_none());
    // Deleting again (or something never written) is fine.
    store.delete(&k).await.unwrap();
    store.delete(&key("never/was")).await.unwrap();
}

async fn large_objects_are_written_in_parts(store: Arc<dyn ObjectStore>) {
    // Over two S3 parts, written in odd-sized pieces that straddle part boundaries.
    let data = pattern(2 * MIN_PART_BYTES + 123_457);
    let k = key("big/object.bin");
    let mut w = store.writer(&k).await.unwrap();
    for piece in data.chunks(700_001) {
        w.write(piece).await.unwrap();
    }
    // Not visible before finishing.
    assert!(store.head(&k).await.unwrap().is_none());
    let info = w.finish().await.unwrap();
    assert_eq!(info.size, data.len() as u64);
    let body = store.get(&k, None).await.unwrap().unwrap();
    assert_eq!(body.length, data.len() as u64);
    let back = body.read_all().await.unwrap();
    assert!(back == data, "large object differs after read back");
    // A range across the first part boundary.
    let (start, end) = (MIN_PART_BYTES as u64 - 10, MIN_PART_BYTES as u64 + 10);
    let part = store
        .get(&k, Some(ByteRange::new(start, end)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(part.length, 20);
    assert_eq!(part.total_size, data.len() as u64);
    assert_eq!(
        part.read_all().await.unwrap(),
        &data[start as usize..end as usize]
    );
}

async fn aborted_and_dropped_writes_leave_nothing(store: Arc<dyn ObjectStore>) {
    let k = key("partial/one.csv");
    let mut w = store.writer(&k).await.unwrap();
    w.write(&pattern(MIN_PART_BYTES + 5)).await.unwrap();
    w.abort().await.unwrap();
    assert!(store.head(&k).await.unwrap().is_none());
    assert!(store
        .list("partial/", None, 10)
        .await
        .unwrap()
        .objects
        .is_empty());
    // An existing object survives an aborted rewrite.
    store.put(&k, b"kept").await.unwrap();
    let mut w = store.writer(&k).await.unwrap();
    w.write(b"replacement that never finishes").await.unwrap();
    drop(w);
    let body = store.get(&k, None).await.unwrap().unwrap();
    assert_eq!(body.read_all().await.unwrap(), b"kept");
}

async fn ranges(store: Arc<dyn ObjectStore>) {
    let k = key("r/ten.txt");
    store.put(&k, b"0123456789").await.unwrap();
    let read = |r: ByteRange| {
        let store = store.clone();
        let k = k.clone();
        async move {
            match store.get(&k, Some(r)).await {
                Ok(Some(b)) => Ok(b.read_all().await.unwrap()),
                Ok(None) => panic!("object missing"),
                Err(e) => Err(e),
            }
        }
    };
    assert_eq!(read(ByteRange::new(2, 5)).await.unwrap(), b"234");
    assert_eq!(read(ByteRange::from(7)).await.unwrap(), b"789");
    assert_eq!(read(ByteRange::new(8, 100)).await.unwrap(), b"89");
    assert!(matches!(
        read(ByteRange::from(10)).await,
        Err(ObjectError::InvalidRange)
    ));
    assert!(store
        .get(&key("r/missing"), Some(ByteRange::from(0)))
        .await
        .unwrap()
        .is_none());
}

async fn list_by_prefix_in_pages(store: Arc<dyn ObjectStore>) {
    let names = [
        "exports/tn_a/ex_1/a.csv",
        "exports/tn_a/ex_1/b.csv",
        "exports/tn_a/ex_2/a.csv",
        "exports/tn_ab/ex_3/a.csv",
        "exports/tn_b/ex_4/a.csv",
        "other/x",
    ];
    for n in names {
        store.put(&key(n), n.as_bytes()).await.unwrap();
    }
    let all = |page: &wappline::objects::ObjectPage| {
        page.objects
            .iter()
            .map(|o| o.key.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    // A prefix ending in the separator never matches a longer tenant id.
    let page = store.list("exports/tn_a/", None, 100).await.unwrap();
    assert_eq!(all(&page), &names[..3]);
    assert_eq!(page.next, None);
    assert_eq!(page.objects[0].size, names[0].len() as u64);
    // A bare string prefix, as S3's.
    let page = store.list("exports/tn_a", None, 100).await.unwrap();
    assert_eq!(all(&page), &names[..4]);
    // Pages of two, resumed after the last key.
    let first = store.list("exports/", None, 2).await.unwrap();
    assert_eq!(all(&first), &names[..2]);
    let second = store
        .list("exports/", first.next.as_ref(), 2)
        .await
        .unwrap();
    assert_eq!(all(&second), &names[2..4]);
    let third = store
        .list("exports/", second.next.as_ref(), 2)
        .await
        .unwrap();
    assert_eq!(all(&third), &names[4..5]);
    assert_eq!(third.next, None);
    assert!(store
        .list("nothing/", None, 10)
        .await
        .unwrap()
        .objects
        .is_empty());
    assert!(store
        .list("../", None, 10)
        .await
        .unwrap()
        .objects
        .is_empty());
    // Everything under a prefix goes, nothing else does.
    assert_eq!(store.delete_prefix("exports/tn_a/").await.unwrap(), 3);
    let rest = store.list("", None, 100).await.unwrap();
    assert_eq!(all(&rest), &names[3..]);
}

macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $case() {
                    let (store, _dir) = super::embedded();
                    super::$case(store).await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test]
                async fn $case() {
                    let (store, _dir) = super::s3().await;
                    super::$case(store).await;
                }
            )*
        }
    };
}

on_both!(
    put_get_head_delete,
    large_objects_are_written_in_parts,
    aborted_and_dropped_writes_leave_nothing,
    ranges,
    list_by_prefix_in_pages,
);

#[test]
fn embedded_leftovers_of_a_crash_are_cleared_and_keys_stay_inside() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("objects").join(".tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("half-written"), b"x").unwrap();
    EmbeddedObjects::open(dir.path()).unwrap();
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    assert!(ObjectKey::parse("../escape").is_err());
    assert!(ObjectKey::parse(".tmp/x").is_err());
}
