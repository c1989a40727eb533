//! Build settings the deployed functions depend on, read from the files every build uses.

use std::path::Path;

/// The value of `key` in the `[env]` table of the workspace's `.cargo/config.toml`, where
/// cargo (and so `cargo lambda build` and `sam build`) takes build-script environment from.
fn cargo_env(key: &str) -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cargo/config.toml");
    let text = std::fs::read_to_string(&path).expect(".cargo/config.toml is readable");
    let mut in_env = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_env = line == "[env]";
            continue;
        }
        if !in_env || line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            if k.trim() == key {
                return Some(v.trim().trim_matches('"').to_owned());
            }
        }
    }
    None
}

/// Decision 0077: aws-lc gathers CPU jitter entropy at a process's first random bytes, about
/// 45 ms of every cold start; built without it, it seeds from the operating system alone.
#[test]
fn aws_lc_is_built_without_jitter_entropy() {
    assert_eq!(
        cargo_env("AWS_LC_SYS_NO_JITTER_ENTROPY").as_deref(),
        Some("1"),
        "`.cargo/config.toml` must set AWS_LC_SYS_NO_JITTER_ENTROPY = \"1\" under [env]"
    );
}
