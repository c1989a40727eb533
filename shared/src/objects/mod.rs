//! The object-store port: S3-shaped blobs under path-like keys (exports, later other files).
//!
//! An object is written through an [`ObjectWriter`] in pieces and becomes visible only when
//! the writer finishes, whole (an aborted or crashed write leaves nothing readable), so a
//! large file never has to sit in memory at once. It is read back as a stream of chunks,
//! whole or by byte range; objects are listed by key prefix and deleted idempotently.
//!
//! Adapters: [`s3::S3Objects`] (aws-sdk-s3: a single `PutObject` for small objects, a
//! multipart upload beyond one part) and [`embedded::EmbeddedObjects`] (files under
//! `<data dir>/objects/`, written to a temporary file and renamed into place). One
//! conformance suite (`shared/tests/conformance/objects.rs`) runs against both.

pub mod embedded;
pub mod fence;
pub mod s3;

use std::fmt;

use async_trait::async_trait;

/// Longest key accepted (S3's limit, in bytes).
pub const MAX_KEY_BYTES: usize = 1024;
/// Upper bound on a list page.
pub const MAX_LIST_PAGE: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("invalid object key: {0}")]
    InvalidKey(String),
    /// The byte range starts at or beyond the object's end.
    #[error("byte range not satisfiable")]
    InvalidRange,
    #[error("object store backend error: {0}")]
    Backend(String),
    /// Outside the export prefix of the tenant the work acts for (decision 0037).
    #[error("access denied: {0}")]
    Denied(String),
}

impl From<std::io::Error> for ObjectError {
    fn from(e: std::io::Error) -> Self {
        ObjectError::Backend(e.to_string())
    }
}

/// An object's key: 1-1024 bytes of `/`-separated segments, each of `[A-Za-z0-9._=-]`, not
/// empty, not starting with a dot (so never `.` or `..`). The same key is a safe relative
/// path on disk and an S3 key that needs no escaping.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

impl ObjectKey {
    pub fn parse(key: &str) -> Result<Self, ObjectError> {
        let ok = !key.is_empty()
            && key.len() <= MAX_KEY_BYTES
            && key.split('/').all(|seg| {
                !seg.is_empty()
                    && !seg.starts_with('.')
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._=-".contains(&b))
            });
        if ok {
            Ok(ObjectKey(key.to_owned()))
        } else {
            Err(ObjectError::InvalidKey(format!("{key:?}")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A listed or written object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: ObjectKey,
    pub size: u64,
}

/// Bytes `start..end` of an object (`end` exclusive; `None` reads to the end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: Option<u64>,
}

impl ByteRange {
    pub fn from(start: u64) -> Self {
        ByteRange { start, end: None }
    }
    pub fn new(start: u64, end: u64) -> Self {
        ByteRange {
            start,
            end: Some(end),
        }
    }

    /// Resolves against an object of `size` bytes: the concrete `start..end`, or
    /// [`ObjectError::InvalidRange`] when it starts at or past the end or is empty.
    pub fn resolve(&self, size: u64) -> Result<(u64, u64), ObjectError> {
        let end = self.end.unwrap_or(size).min(size);
        if self.start >= size || end <= self.start {
            return Err(ObjectError::InvalidRange);
        }
        Ok((self.start, end))
    }
}

/// A page of a listing, in key order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectPage {
    pub objects: Vec<ObjectInfo>,
    /// Pass back as `after` for the next page.
    pub next: Option<ObjectKey>,
}

/// An object being written. Nothing is visible under the key until [`finish`] returns; a
/// writer dropped or aborted without finishing leaves the previous object (if any) intact.
///
/// [`finish`]: ObjectWriter::finish
#[async_trait]
pub trait ObjectWriter: Send {
    /// Appends bytes. Adapters buffer at most one part (S3) before sending it on.
    async fn write(&mut self, bytes: &[u8]) -> Result<(), ObjectError>;
    /// Completes the object (replacing any object of the same key) and returns its size.
    async fn finish(self: Box<Self>) -> Result<ObjectInfo, ObjectError>;
    /// Gives up: discards what was written (and any uploaded parts).
    async fn abort(self: Box<Self>) -> Result<(), ObjectError>;
}

/// A stream of an object's bytes.
#[async_trait]
pub trait ObjectReader: Send {
    /// The next chunk, `None` at the end.
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ObjectError>;
}

/// An object read back: the length of this body (the range's, when ranged), the whole
/// object's size, and its bytes as a stream.
pub struct ObjectBody {
    pub length: u64,
    pub total_size: u64,
    pub reader: Box<dyn ObjectReader>,
}

impl ObjectBody {
    /// Reads the whole body into memory (tests and small objects only).
    pub async fn read_all(mut self) -> Result<Vec<u8>, ObjectError> {
        let mut out = Vec::with_capacity(usize::try_from(self.length).unwrap_or(0));
        while let Some(chunk) = self.reader.next_chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

impl fmt::Debug for ObjectBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectBody")
            .field("length", &self.length)
            .field("total_size", &self.total_size)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Starts writing `key`.
    async fn writer(&self, key: &ObjectKey) -> Result<Box<dyn ObjectWriter>, ObjectError>;

    /// Writes a whole object from memory.
    async fn put(&self, key: &ObjectKey, bytes: &[u8]) -> Result<ObjectInfo, ObjectError> {
        let mut w = self.writer(key).await?;
        if let Err(e) = w.write(bytes).await {
            let _ = w.abort().await;
            return Err(e);
        }
        w.finish().await
    }

    /// Reads `key` (all of it, or `range`); `None` when there is no such object.
    async fn get(
        &self,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<Option<ObjectBody>, ObjectError>;

    /// The object's size, `None` when there is no such object.
    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, ObjectError>;

    /// Deletes `key`; deleting a missing object is not an error.
    async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectError>;

    /// Objects whose keys begin with `prefix` (a plain string prefix, as S3's), in key order,
    /// after `after`, at most `limit` (capped at [`MAX_LIST_PAGE`]).
    async fn list(
        &self,
        prefix: &str,
        after: Option<&ObjectKey>,
        limit: usize,
    ) -> Result<ObjectPage, ObjectError>;

    /// A URL that lets whoever holds it GET the object directly from the backend for `ttl`,
    /// served as `content_type` and as an attachment named `filename`; `None` when the backend
    /// has no such thing (the embedded store: stream it through [`ObjectStore::get`]).
    async fn presigned_get(
        &self,
        _key: &ObjectKey,
        _ttl: std::time::Duration,
        _content_type: &str,
        _filename: &str,
    ) -> Result<Option<String>, ObjectError> {
        Ok(None)
    }

    /// Deletes every object under `prefix`, page by page; returns how many.
    async fn delete_prefix(&self, prefix: &str) -> Result<usize, ObjectError> {
        let mut n = 0;
        loop {
            let page = self.list(prefix, None, MAX_LIST_PAGE).await?;
            if page.objects.is_empty() {
                return Ok(n);
            }
            for o in &page.objects {
                self.delete(&o.key).await?;
                n += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_path_safe() {
        for good in ["a", "exports/tn_1/ex_2/export.json", "a/b=c/d-e_f.g"] {
            assert!(ObjectKey::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "../a",
            "a/../b",
            "a/./b",
            ".hidden",
            "a\\b",
            "a b",
            "a/b\0",
            "é",
            &"x".repeat(MAX_KEY_BYTES + 1),
        ] {
            assert!(ObjectKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ranges_resolve() {
        assert_eq!(ByteRange::from(0).resolve(10).unwrap(), (0, 10));
        assert_eq!(ByteRange::new(2, 5).resolve(10).unwrap(), (2, 5));
        assert_eq!(ByteRange::new(2, 50).resolve(10).unwrap(), (2, 10));
        assert!(ByteRange::from(10).resolve(10).is_err());
        assert!(ByteRange::new(3, 3).resolve(10).is_err());
    }
}
