//! The embedded object store: one file per object under `<data dir>/objects/`, the key's
//! segments as directories. A write goes to a temporary file in `objects/.tmp/` (keys never
//! start with a dot, so no key can reach it), is flushed to disk and renamed into place when
//! finished: a reader sees the old object or the new one, never a part, and a crash leaves only
//! a temporary file, removed at the next open.
//!
//! File calls are plain blocking `std::fs` calls on small buffers, as the other embedded
//! adapters do: this adapter serves one local process.

use std::fs::{self, File};
use std::io::{BufWriter, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{
    ByteRange, ObjectBody, ObjectError, ObjectInfo, ObjectKey, ObjectPage, ObjectReader,
    ObjectStore, ObjectWriter, MAX_LIST_PAGE,
};

const TMP_DIR: &str = ".tmp";
const CHUNK: usize = 64 * 1024;

/// Objects as files under a data directory.
#[derive(Clone, Debug)]
pub struct EmbeddedObjects {
    root: PathBuf,
}

impl EmbeddedObjects {
    /// Opens (creating) `<data_dir>/objects/` and removes temporary files of unfinished writes.
    pub fn open(data_dir: &Path) -> Result<Self, ObjectError> {
        let root = data_dir.join("objects");
        let tmp = root.join(TMP_DIR);
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp)?;
        Ok(EmbeddedObjects { root })
    }

    fn path(&self, key: &ObjectKey) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(key.as_str().split('/'));
        p
    }

    fn walk(&self, dir: &Path, rel: &str, out: &mut Vec<ObjectInfo>) -> Result<(), ObjectError> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let key = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                self.walk(&entry.path(), &key, out)?;
            } else if file_type.is_file() {
                if let Ok(k) = ObjectKey::parse(&key) {
                    out.push(ObjectInfo {
                        key: k,
                        size: entry.metadata()?.len(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Removes empty directories from `dir` up to (not including) the root.
    fn prune(&self, mut dir: &Path) {
        while dir != self.root && dir.starts_with(&self.root) {
            if fs::remove_dir(dir).is_err() {
                return;
            }
            match dir.parent() {
                Some(p) => dir = p,
                None => return,
            }
        }
    }
}

fn random_name() -> Result<String, ObjectError> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b)
        .map_err(|_| ObjectError::Backend("random source failed".into()))?;
    Ok(hex::encode(b))
}

struct FileWriter {
    file: Option<BufWriter<File>>,
    tmp: PathBuf,
    dest: PathBuf,
    key: ObjectKey,
    size: u64,
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[async_trait]
impl ObjectWriter for FileWriter {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), ObjectError> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| ObjectError::Backend("writer already closed".into()))?;
        file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<ObjectInfo, ObjectError> {
        let file = self
            .file
            .take()
            .ok_or_else(|| ObjectError::Backend("writer already closed".into()))?;
        let result = (|| -> Result<(), ObjectError> {
            let file = file
                .into_inner()
                .map_err(|e| ObjectError::Backend(e.error().to_string()))?;
            file.sync_all()?;
            drop(file);
            let parent = self.dest.parent().expect("object path has a parent");
            // A concurrent delete may prune the directory between creating and renaming.
            for attempt in 0..3 {
                fs::create_dir_all(parent)?;
                match fs::rename(&self.tmp, &self.dest) {
                    Ok(()) => break,
                    Err(e) if e.kind() == ErrorKind::NotFound && attempt < 2 => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            if let Ok(dir) = File::open(parent) {
                let _ = dir.sync_all();
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        result?;
        Ok(ObjectInfo {
            key: self.key.clone(),
            size: self.size,
        })
    }

    async fn abort(mut self: Box<Self>) -> Result<(), ObjectError> {
        if self.file.take().is_some() {
            match fs::remove_file(&self.tmp) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

struct FileReader {
    file: File,
    remaining: u64,
}

#[async_trait]
impl ObjectReader for FileReader {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ObjectError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let want = usize::try_from(self.remaining.min(CHUNK as u64)).unwrap_or(CHUNK);
        let mut buf = vec![0u8; want];
        let mut filled = 0;
        while filled < want {
            let n = self.file.read(&mut buf[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            return Err(ObjectError::Backend("object shorter than its size".into()));
        }
        buf.truncate(filled);
        self.remaining -= filled as u64;
        Ok(Some(buf))
    }
}

#[async_trait]
impl ObjectStore for EmbeddedObjects {
    async fn writer(&self, key: &ObjectKey) -> Result<Box<dyn ObjectWriter>, ObjectError> {
        let tmp = self.root.join(TMP_DIR).join(random_name()?);
        fs::create_dir_all(self.root.join(TMP_DIR))?;
        let file = File::create(&tmp)?;
        Ok(Box::new(FileWriter {
            file: Some(BufWriter::with_capacity(CHUNK, file)),
            tmp,
            dest: self.path(key),
            key: key.clone(),
            size: 0,
        }))
    }

    async fn get(
        &self,
        key: &ObjectKey,
        range: Option<ByteRange>,
    ) -> Result<Option<ObjectBody>, ObjectError> {
        let mut file = match File::open(self.path(key)) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Ok(None);
        }
        let size = meta.len();
        let (start, end) = match range {
            Some(r) => r.resolve(size)?,
            None => (0, size),
        };
        if start > 0 {
            file.seek(SeekFrom::Start(start))?;
        }
        Ok(Some(ObjectBody {
            length: end - start,
            total_size: size,
            reader: Box::new(FileReader {
                file,
                remaining: end - start,
            }),
        }))
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectInfo>, ObjectError> {
        match fs::metadata(self.path(key)) {
            Ok(m) if m.is_file() => Ok(Some(ObjectInfo {
                key: key.clone(),
                size: m.len(),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectError> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        if let Some(parent) = path.parent() {
            self.prune(parent);
        }
        Ok(())
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&ObjectKey>,
        limit: usize,
    ) -> Result<ObjectPage, ObjectError> {
        let limit = limit.clamp(1, MAX_LIST_PAGE);
        // Walk only the deepest directory the prefix names; a prefix that no key could start
        // with (a dot segment, a character keys never hold) lists nothing.
        let (dir_rel, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        if !dir_rel.is_empty() && ObjectKey::parse(dir_rel).is_err() {
            return Ok(ObjectPage {
                objects: Vec::new(),
                next: None,
            });
        }
        let mut dir = self.root.clone();
        if !dir_rel.is_empty() {
            dir.extend(dir_rel.split('/'));
        }
        let mut all = Vec::new();
        self.walk(&dir, dir_rel, &mut all)?;
        all.retain(|o| {
            o.key.as_str().starts_with(prefix) && after.is_none_or(|a| o.key.as_str() > a.as_str())
        });
        all.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
        let more = all.len() > limit;
        all.truncate(limit);
        let next = if more {
            all.last().map(|o| o.key.clone())
        } else {
            None
        };
        Ok(ObjectPage { objects: all, next })
    }
}
