use super::*;

#[test]
fn secrets_compare_by_value() {
    let a = Secret::parse("t", "831c76b092f9f135d9b6b36c3a720757").unwrap();
    let b = Secret::parse("t", "831c76b092f9f135d9b6b36c3a720757").unwrap();
    let c = Secret::parse("t", "831c76b092f9f135d9b6b36c3a720758").unwrap();
    let d = Secret::parse("t", "831c").unwrap();
    assert!(same_secret(&a, &b));
    assert!(!same_secret(&a, &c));
    assert!(!same_secret(&a, &d));
}

#[test]
fn edits_keep_media() {
    let media = Content::Media(crate::meta::Media::new(crate::meta::MediaKind::Image));
    let edited = edited_content(Some(&media), "new".into());
    assert!(matches!(&edited, Content::Multiple { parts } if parts.len() == 2));
    let edited = edited_content(Some(&Content::Text { body: "old".into() }), "new".into());
    assert_eq!(edited, Content::Text { body: "new".into() });
}
