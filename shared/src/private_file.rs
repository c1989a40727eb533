//! Files only their owner may read (keys, account email), for the embedded/local adapters.

use std::io::Write;
use std::path::Path;

/// Creates `path` (failing if it exists) with mode 0600 on Unix, writes `contents` and
/// syncs it to disk.
pub(crate) fn write_new_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}
