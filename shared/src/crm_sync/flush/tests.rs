//! How a post's answer is read: the files Bitrix24 did not keep (decision 0066).

use super::*;
use serde_json::json;

fn answer(files: serde_json::Value) -> serde_json::Value {
    json!({"SUCCESS": true, "DATA": {"RESULT": [{
        "SUCCESS": true,
        "session": {"ID": "11", "CHAT_ID": "42"},
        "message": {"id": "wamid.1", "text": "hi", "files": files}
    }]}})
}

fn sent() -> Vec<(u32, String)> {
    vec![(0, "https://x/a".into()), (2, "https://x/b".into())]
}

fn missing(result: &serde_json::Value) -> MissingFiles {
    match parse_outcome(imconnector::SEND_MESSAGES, result, &sent()).unwrap() {
        OpOutcome::Sent { missing, .. } => missing,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_file_missing_from_the_answer_is_named_by_its_index() {
    let m = missing(&answer(json!([{"url": "https://x/a"}])));
    assert_eq!(
        m,
        MissingFiles {
            count: 1,
            of: vec![2]
        }
    );
    let none = missing(&answer(json!([])));
    assert_eq!(
        none,
        MissingFiles {
            count: 2,
            of: vec![0, 2]
        }
    );
}

#[test]
fn every_file_kept_or_no_list_is_nothing_missing() {
    let all = answer(json!([{"url": "https://x/a"}, {"url": "https://x/b"}]));
    assert!(missing(&all).is_none());
    let mut no_list = answer(json!([]));
    no_list["DATA"]["RESULT"][0]["message"]
        .as_object_mut()
        .unwrap()
        .remove("files");
    assert!(missing(&no_list).is_none());
}

#[test]
fn links_bitrix24_rewrote_leave_which_file_unknown() {
    let m = missing(&answer(json!([{"url": "https://portal/disk/1"}])));
    assert_eq!(
        m,
        MissingFiles {
            count: 1,
            of: vec![0, 2]
        }
    );
}
