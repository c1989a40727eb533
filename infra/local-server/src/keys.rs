//! The local server's keys and token, made once in its data directory and kept there,
//! readable by its owner only.

use std::path::{Path, PathBuf};

use wappline::accounts::SessionKey;
use wappline::crypto::signing_key::KeyError;
use wappline::export::ExportLinkKey;
use wappline::media::MediaLinkKey;

/// A signing key kept in the data dir (mode 0600), made on first start, so links and
/// sessions survive a restart.
/// Returned as hex, as the settings read it (and check it).
pub(crate) fn load_or_create_key<K>(
    dir: &Path,
    file: &str,
    from_hex: fn(&str) -> Result<K, KeyError>,
    generate: fn() -> Result<K, KeyError>,
    to_hex: fn(&K) -> zeroize::Zeroizing<String>,
) -> Result<String, String> {
    let path = dir.join(file);
    if let Ok(hex_key) = std::fs::read_to_string(&path) {
        let hex_key = hex_key.trim().to_owned();
        from_hex(&hex_key).map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok(hex_key);
    }
    let key = generate().map_err(|e| e.to_string())?;
    let hex_key = to_hex(&key);
    write_private(&path, &hex_key).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(hex_key.to_string())
}

/// The key that signs users' access tokens.
pub(crate) fn load_or_create_session_key(dir: &Path) -> Result<String, String> {
    load_or_create_key(
        dir,
        "session.key",
        SessionKey::from_hex,
        SessionKey::generate,
        SessionKey::to_hex,
    )
}

/// The key that signs export download links.
pub(crate) fn load_or_create_export_key(dir: &Path) -> Result<String, String> {
    load_or_create_key(
        dir,
        "export-link.key",
        ExportLinkKey::from_hex,
        ExportLinkKey::generate,
        ExportLinkKey::to_hex,
    )
}

/// The key that signs media links.
pub(crate) fn load_or_create_media_key(dir: &Path) -> Result<String, String> {
    load_or_create_key(
        dir,
        "media-link.key",
        MediaLinkKey::from_hex,
        MediaLinkKey::generate,
        MediaLinkKey::to_hex,
    )
}

pub(crate) fn load_or_create_token(dir: &Path) -> Result<(String, PathBuf), String> {
    let path = dir.join("admin-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_owned();
        if !t.is_empty() {
            return Ok((t, path));
        }
    }
    let mut bytes = [0u8; 24];
    wappline::crypto::random_bytes(&mut bytes).map_err(|e| e.to_string())?;
    let token = hex::encode(bytes);
    write_private(&path, &token).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok((token, path))
}

pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(contents.as_bytes())
}
