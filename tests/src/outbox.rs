//! The local platform's mail: the outbox directory of `.eml` files in the server's data dir,
//! read as a person reads their mail.

use std::path::{Path, PathBuf};

/// The messages of the local outbox under the data dir `dir` addressed to `to`, oldest first.
/// Only whole `.eml` files count (a message being written is not one yet).
pub fn mails_to(dir: &Path, to: &str) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("outbox"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|x| x == "eml"));
    files.sort();
    files
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter(|m| m.contains(&format!("To: {to}\r\n")))
        .collect()
}

/// The link of a mail that starts with `prefix` (e.g. `<base><path>?token=`), whole.
pub fn link(mail: &str, prefix: &str) -> String {
    let start = mail
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} in {mail}"));
    mail[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect()
}

/// The `token` query parameter of a mailed link (the last parameter of ours).
pub fn token_of(link: &str) -> String {
    let (_, token) = link
        .split_once("?token=")
        .unwrap_or_else(|| panic!("no token in {link}"));
    token.to_owned()
}
