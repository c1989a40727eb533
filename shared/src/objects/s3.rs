//! The S3 object store (aws-sdk-s3). One bucket; keys as given.
//!
//! A writer buffers at most one part (default 8 MiB; S3 needs at least 5 MiB for every part
//! but the last). An object that fits in one part is sent with a single `PutObject`; a larger
//! one becomes a multipart upload, completed on `finish` and aborted on `abort` (the bucket's
//! lifecycle rule should also abort incomplete uploads after a day, for crashed writers).
//! Nothing is visible under the key before the upload completes.

use async_trait::async_trait;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;

use super::{
    ByteRange, ObjectBody, ObjectError, ObjectInfo, ObjectKey, ObjectPage, ObjectReader,
    ObjectStore, ObjectWriter, MAX_LIST_PAGE,
};

/// S3's smallest part (every part of a multipart upload but the last).
pub const MIN_PART_BYTES: usize = 5 * 1024 * 1024;
/// The part size a writer uses unless told otherwise.
pub const DEFAULT_PART_BYTES: usize = 8 * 1024 * 1024;

fn backend<E: std::error::Error>(e: E) -> ObjectError {
    ObjectError::Backend(DisplayErrorContext(e).to_string())
}

/// Objects in one S3 bucket.
#[derive(Clone, Debug)]
pub struct S3Objects {
    client: Client,
    bucket: String,
    part_bytes: usize,
}

impl S3Objects {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        S3Objects {
            client,
            bucket: bucket.into(),
            part_bytes: DEFAULT_PART_BYTES,
        }
    }

    /// Uses parts of `bytes` (at least [`MIN_PART_BYTES`]).
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_bytes = bytes.max(MIN_PART_BYTES);
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

/// Creates `bucket` (tests and the emulator; in AWS the template owns the bucket). An
/// existing bucket of ours is fine.
pub async fn provision_bucket(client: &Client, bucket: &str) -> Result<(), ObjectError> {
    match client.create_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e) => match e.as_service_error() {
            Some(s) if s.is_bucket_already_owned_by_you() => Ok(()),
            _ => Err(backend(e)),
        },
    }
}

struct S3Writer {
    client: Client,
    bucket: String,
    key: ObjectKey,
    part_bytes: usize,
    buffer: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    size: u64,
}

impl S3Writer {
    fn parts_sent_count(&self) -> usize {
        self.parts.len()
    }
}

impl S3Writer {
    async fn send_part(&mut self) -> Result<(), ObjectError> {
        if self.upload_id.is_none() {
            let created = self
                .client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(self.key.as_str())
                .send()
                .await
                .map_err(backend)?;
            let id = created
                .upload_id()
                .ok_or_else(|| ObjectError::Backend("multipart upload without an id".into()))?;
            self.upload_id = Some(id.to_owned());
        }
        let number = i32::try_from(self.parts.len() + 1)
            .map_err(|_| ObjectError::Backend("too many parts".into()))?;
        let body = std::mem::take(&mut self.buffer);
        let sent = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(self.key.as_str())
            .upload_id(self.upload_id.as_deref().unwrap_or_default())
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(backend)?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(sent.e_tag().map(str::to_owned))
                .build(),
        );
        Ok(())
    }

    /// Size and ETag of the object now under the key.
    async fn head_size(&self) -> Result<Option<(u64, String)>, ObjectError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key.as_str())
            .send()
            .await
        {
            Ok(out) => Ok(out
                .content_length()
                .and_then(|l| u64::try_from(l).ok())
                .map(|size| (size, out.e_tag().unwrap_or_default().to_owned()))),
            Err(e) => match e.as_service_error() {
                Some(s) if s.is_not_found() => Ok(None),
                _ => Err(backend(e)),
            },
        }
    }

    async fn abort_upload(&mut self) -> Result<(), ObjectError> {
        if let Some(id) = self.upload_id.take() {
            self.client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(self.key.as_str())
                .upload_id(id)
                .send()
                .await
                .map_err(backend)?;
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectWriter for S3Writer {
    async fn write(&mut self, mut bytes: &[u8]) -> Result<(), ObjectError> {
        while !bytes.is_empty() {
            let room = self.part_bytes - self.buffer.len();
            let take = room.min(bytes.len());
            self.buffer.extend_from_slice(&bytes[..take]);
            self.size += take as u64;
            bytes = &bytes[take..];
            // Memory stays at one part: a full part goes out at once.
            if self.buffer.len() == self.part_bytes {
                self.send_part().await?;
            }
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<ObjectInfo, ObjectError> {
        if self.upload_id.is_none() {
            let body = std::mem::take(&mut self.buffer);
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(self.key.as_str())
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(backend)?;
        } else {
            if !self.buffer.is_empty() {
                if let Err(e) = self.send_part().await {
                    let _ = self.abort_upload().await;
                    return Err(e);
                }
            }
            let completed = self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(self.key.as_str())
                .upload_id(self.upload_id.as_deref().unwrap_or_default())
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(self.parts.clone()))
                        .build(),
                )
                .send()
                .await;
            if let Err(e) = completed {
                // An answer of 200 whose body the SDK cannot read (moto names its root
                // `CompleteMultipartUploadResponse`): the upload completed if the object is
                // there, multipart with our number of parts, with every byte written. S3's own
                // errors-in-a-200 parse as errors.
                let ok_status = e.raw_response().map(|r| r.status().as_u16()) == Some(200);
                let parts_tag = format!("-{}\"", self.parts_sent_count());
                let landed = ok_status
                    && matches!(
                        self.head_size().await,
                        Ok(Some((size, tag))) if size == self.size && tag.ends_with(&parts_tag)
                    );
                if !landed {
                    let _ = self.abort_upload().await;
                    return Err(backend(e));
                }
            }
        }
        Ok(ObjectInfo {
            key: self.key.clone(),
            size: self.size,
        })
    }

    async fn abort(mut self: Box<Self>) -> Result<(), ObjectError> {
        self.buffer = Vec::new();
        self.abort_upload().await
    }
}

struct S3Reader {
    body: ByteStream,
}

#[async_trait]
impl ObjectReader for S3Reader {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ObjectError> {
        match self.body.next().await {
            None => Ok(None),
            Some(Ok(bytes)) => Ok(Some(bytes.to_vec())),
            Some(Err(e)) => Err(backend(e)),
        }
    }
}

#[async_trait]
impl ObjectStore for S3Objects {
    async fn writer(&self, key: &ObjectKey) -> Result<Box<dyn ObjectWriter>, ObjectError> {
        Ok(Box::new(S3Writer {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.clone(),
            part_bytes: self.part_bytes,
            buffer: Vec::new(),
            upload_id: None,
            parts: Vec::new(),
            size: 0,
        }))
    }

    async fn get(
        &self,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<Option<ObjectBody>, ObjectError> {
        // A ranged read resolves the range against the size first, so both adapters agree
        // on what an unsatisfiable range is.
        let (resolved, total) = match range {
            Some(r) => match self.head(key).await? {
                Some(info) => (Some(r.resolve(info.size)?), Some(info.size)),
                None => return Ok(None),
            },
            None => (None, None),
        };
        let mut request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str());
        if let Some((start, end)) = resolved {
            request = request.range(format!("bytes={start}-{}", end - 1));
        }
        let out = match request.send().await {
            Ok(o) => o,
            Err(e) => {
                return match e.as_service_error() {
                    Some(s) if s.is_no_such_key() => Ok(None),
                    _ => Err(backend(e)),
                }
            }
        };
        let length = out
            .content_length()
            .and_then(|l| u64::try_from(l).ok())
            .unwrap_or_default();
        Ok(Some(ObjectBody {
            length,
            total_size: total.unwrap_or(length),
            reader: Box::new(S3Reader { body: out.body }),
        }))
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, ObjectError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectInfo {
                key: key.clone(),
                size: out
                    .content_length()
                    .and_then(|l| u64::try_from(l).ok())
                    .unwrap_or_default(),
            })),
            Err(e) => match e.as_service_error() {
                Some(s) if s.is_not_found() => Ok(None),
                _ => Err(backend(e)),
            },
        }
    }

    async fn presigned_get(
        &self,
        key: &ObjectKey,
        ttl: std::time::Duration,
        content_type: &str,
        filename: &str,
    ) -> Result<Option<String>, ObjectError> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(ttl)
            .map_err(|e| ObjectError::Backend(e.to_string()))?;
        // The file name is ours (key-safe characters), so it needs no escaping here.
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .response_content_type(content_type)
            .response_content_disposition(format!("attachment; filename=\"{filename}\""))
            .response_cache_control("no-store")
            .presigned(config)
            .await
            .map_err(backend)?;
        Ok(Some(request.uri().to_owned()))
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&ObjectKey>,
        limit: usize,
    ) -> Result<ObjectPage, ObjectError> {
        let limit = limit.clamp(1, MAX_LIST_PAGE);
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_start_after(after.map(|a| a.as_str().to_owned()))
            .max_keys(i32::try_from(limit).unwrap_or(1000))
            .send()
            .await
            .map_err(backend)?;
        let mut objects = Vec::new();
        for o in out.contents() {
            let Some(key) = o.key().and_then(|k| ObjectKey::parse(k).ok()) else {
                continue;
            };
            objects.push(ObjectInfo {
                key,
                size: o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
            });
        }
        let next = if out.is_truncated().unwrap_or(false) {
            objects.last().map(|o| o.key.clone())
        } else {
            None
        };
        Ok(ObjectPage { objects, next })
    }
}
