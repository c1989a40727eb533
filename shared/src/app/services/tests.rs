use super::*;

#[cfg(unix)]
#[test]
fn the_embedded_data_dir_and_its_files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let settings = Settings::from_lookup(|_| None).unwrap();
    let services = Services::embedded(settings, &dir).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for file in ["tables.redb", "queues.redb", "local-wrapping.key"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    for folder in ["objects", "outbox"] {
        assert_eq!(mode(&dir.join(folder)), 0o700, "{folder}");
    }
    drop(services);
}
