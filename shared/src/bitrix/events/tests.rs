use super::*;
use serde_json::json;

/// apidocs OnImConnectorMessageAdd, "What the Handler Receives", as Bitrix24 posts it.
fn documented_message_add() -> Value {
    json!({
        "event": "ONIMCONNECTORMESSAGEADD",
        "event_handler_id": 555,
        "data": {
            "CONNECTOR": "myconnector",
            "LINE": 107,
            "MESSAGES": [{
                "im": {"chat_id": 1807, "message_id": 86497},
                "message": {"user_id": 27, "text": "[b]Samantha Johnson:[/b] [br]Good afternoon!"},
                "chat": {"id": "channel-123"}
            }]
        },
        "ts": 1773759161,
        "auth": {
            "access_token": "c978b990071b0008440001b0895f697a",
            "expires": 1773762761,
            "expires_in": 3600,
            "scope": "imconnector, imopenlines",
            "domain": "some-domain.bitrix24.com",
            "server_endpoint": "https://oauth.bitrix.info/rest/",
            "status": "F",
            "client_endpoint": "https://some-domain.bitrix24.com/rest/",
            "member_id": "bac1cd5c8940947a75e0d71b1a84e348",
            "user_id": 27,
            "application_token": "831c76b092f9f135d9b6b36c3a720757"
        }
    })
}

#[test]
fn php_style_nesting() {
    let v = parse_form(
        b"event=X&data%5BMESSAGES%5D%5B0%5D%5Bim%5D%5Bchat_id%5D=1807\
          &data[MESSAGES][0][message][text]=hi+there%21%20%26%3D\
          &data[MESSAGES][1][chat][id]=c2&tags[]=a&tags[]=b&plain=1",
    )
    .unwrap();
    assert_eq!(
        v,
        json!({
            "event": "X",
            "data": {"MESSAGES": [
                {"im": {"chat_id": "1807"}, "message": {"text": "hi there! &="}},
                {"chat": {"id": "c2"}}
            ]},
            "tags": ["a", "b"],
            "plain": "1"
        })
    );
}

#[test]
fn odd_input_is_read_safely() {
    // Gaps in indices stay an object; a scalar overridden by a nested key; empty pairs;
    // keys without values; a broken percent escape; an unclosed bracket.
    let v = parse_form(b"a[0]=x&a[2]=y&&b=1&b[c]=2&flag&p=%zz%4&k[open=v").unwrap();
    assert_eq!(v["a"], json!({"0": "x", "2": "y"}));
    assert_eq!(v["b"], json!({"c": "2"}));
    assert_eq!(v["flag"], json!(""));
    assert_eq!(v["p"], json!("%zz%4"));
    assert_eq!(v["k[open"], json!("v"));
    assert_eq!(percent_decode("%"), "%");
    assert_eq!(percent_decode("%4"), "%4");
    assert_eq!(percent_decode("%41"), "A");
    assert_eq!(percent_decode("%ff"), "\u{fffd}");
}

#[test]
fn limits() {
    assert_eq!(
        parse_form(&vec![b'a'; MAX_EVENT_BODY + 1]),
        Err(FormError::TooLarge)
    );
    let many = (0..=MAX_FIELDS)
        .map(|i| format!("k{i}=v"))
        .collect::<Vec<_>>()
        .join("&");
    assert_eq!(parse_form(many.as_bytes()), Err(FormError::TooManyFields));
    let deep = format!("a{}=1", "[x]".repeat(MAX_DEPTH + 1));
    assert!(matches!(
        parse_form(deep.as_bytes()),
        Err(FormError::Malformed(_))
    ));
    assert!(matches!(
        parse_form(b"a[5000]=1"),
        Err(FormError::Malformed(_))
    ));
    assert!(matches!(parse_form(b"[x]=1"), Err(FormError::Malformed(_))));
    let long_key = format!("{}=1", "k".repeat(MAX_KEY_LEN + 1));
    assert!(matches!(
        parse_form(long_key.as_bytes()),
        Err(FormError::Malformed(_))
    ));
    assert!(matches!(
        parse_form(b"\xff\xfe=1"),
        Err(FormError::Malformed(_))
    ));
    assert!(parse_form(b"").unwrap().as_object().unwrap().is_empty());
}

#[test]
fn round_trip_of_the_documented_event() {
    let doc = documented_message_add();
    let form = to_form(&doc);
    assert!(form.contains("data%5BMESSAGES%5D%5B0%5D%5Bim%5D%5Bchat_id%5D=1807"));
    let event = BitrixEvent::parse(form.as_bytes()).unwrap();
    assert_eq!(event.name, "ONIMCONNECTORMESSAGEADD");
    assert_eq!(event.ts, Some(1773759161));
    assert_eq!(event.handler_id, Some(555));
    assert_eq!(
        event.auth.member_id.as_deref(),
        Some("bac1cd5c8940947a75e0d71b1a84e348")
    );
    assert_eq!(
        event.auth.domain.as_deref(),
        Some("some-domain.bitrix24.com")
    );
    assert_eq!(
        event.auth.application_token.as_ref().map(|s| s.expose()),
        Some("831c76b092f9f135d9b6b36c3a720757")
    );
    assert_eq!(event.auth.user_id, Some(27));
    let EventKind::MessageAdd(m) = &event.kind else {
        panic!("{:?}", event.kind)
    };
    assert_eq!(m.connector.as_deref(), Some("myconnector"));
    assert_eq!(m.line, Some(107));
    assert_eq!(m.messages.len(), 1);
    let msg = &m.messages[0];
    assert_eq!(
        msg.im,
        Some(ImRef {
            chat_id: 1807,
            message_id: 86497
        })
    );
    assert_eq!(msg.chat_id.as_deref(), Some("channel-123"));
    assert_eq!(msg.user_id, Some(27));
    assert_eq!(
        msg.text.as_deref(),
        Some("[b]Samantha Johnson:[/b] [br]Good afternoon!")
    );
    // The JSON rendering of the same event parses the same way.
    let json_event = BitrixEvent::parse(doc.to_string().as_bytes()).unwrap();
    assert_eq!(json_event.kind, event.kind);
    // Debug output carries neither tokens nor text.
    let dbg = format!("{event:?}");
    assert!(!dbg.contains("831c76b0"), "{dbg}");
    assert!(!dbg.contains("c978b990"), "{dbg}");
    assert!(!dbg.contains("Samantha"), "{dbg}");
}

#[test]
fn files_updates_deletes_and_line_events() {
    let form = "event=onimconnectormessageadd&data[CONNECTOR]=c&data[LINE]=7\
        &data[MESSAGES][0][im][chat_id]=1&data[MESSAGES][0][im][message_id]=2\
        &data[MESSAGES][0][chat][id]=x\
        &data[MESSAGES][0][message][files][0][name]=photo.jpg\
        &data[MESSAGES][0][message][files][0][link]=https%3A%2F%2Fp.example%2Fpreview\
        &data[MESSAGES][0][message][files][0][downloadLink]=https%3A%2F%2Fp.example%2Fdl\
        &data[MESSAGES][0][message][files][0][mime]=image%2Fjpeg\
        &data[MESSAGES][0][message][files][0][type]=image\
        &data[MESSAGES][0][message][files][0][size]=1234\
        &data[MESSAGES][0][message][files][1][name]=nolink.pdf";
    let e = BitrixEvent::parse(form.as_bytes()).unwrap();
    let EventKind::MessageAdd(m) = e.kind else {
        panic!()
    };
    let files = &m.messages[0].files;
    assert_eq!(files.len(), 1, "a file without a link is skipped");
    assert_eq!(files[0].url, "https://p.example/dl");
    assert_eq!(files[0].mime_type.as_deref(), Some("image/jpeg"));
    assert_eq!(files[0].size, Some(1234));
    assert_eq!(m.messages[0].text, None);

    // Update: message.id is a list; the old name DATA for the list.
    let e = BitrixEvent::parse(
        b"event=ONIMCONNECTORMESSAGEUPDATE&data[CONNECTOR]=c&data[LINE]=7\
          &data[DATA][0][im][chat_id]=1&data[DATA][0][im][message_id]=5\
          &data[DATA][0][message][id][0]=ext-5&data[DATA][0][message][text]=new",
    )
    .unwrap();
    let EventKind::MessageUpdate(m) = e.kind else {
        panic!()
    };
    assert_eq!(m.messages[0].message_ids, vec!["ext-5"]);
    assert_eq!(m.messages[0].text.as_deref(), Some("new"));

    // Delete: message.id is one value.
    let e = BitrixEvent::parse(
        b"event=ONIMCONNECTORMESSAGEDELETE&data[CONNECTOR]=c&data[LINE]=7\
          &data[MESSAGES][0][im][chat_id]=1&data[MESSAGES][0][im][message_id]=5\
          &data[MESSAGES][0][message][id]=ext-5&data[MESSAGES][0][chat][id]=x",
    )
    .unwrap();
    let EventKind::MessageDelete(m) = e.kind else {
        panic!()
    };
    assert_eq!(m.messages[0].message_ids, vec!["ext-5"]);

    let e =
        BitrixEvent::parse(b"event=ONIMCONNECTORLINEDELETE&data=107&auth[member_id]=m").unwrap();
    assert_eq!(e.kind, EventKind::LineDelete { line: Some(107) });
    let e = BitrixEvent::parse(
        b"event=ONIMCONNECTORSTATUSDELETE&data[connector]=wappline_whatsapp&data[line]=107",
    )
    .unwrap();
    assert_eq!(
        e.kind,
        EventKind::StatusDelete {
            connector: Some("wappline_whatsapp".into()),
            line: Some(107)
        }
    );
    let e = BitrixEvent::parse(b"event=ONAPPUNINSTALL&data[LANGUAGE_ID]=de&data[CLEAN]=1").unwrap();
    assert_eq!(e.kind, EventKind::AppUninstall { clean: true });
    let e = BitrixEvent::parse(
        b"event=ONAPPINSTALL&data[VERSION]=1&data[LANGUAGE_ID]=en&auth[application_token]=abc",
    )
    .unwrap();
    assert_eq!(
        e.kind,
        EventKind::AppInstall {
            version: Some("1".into()),
            language: Some("en".into())
        }
    );
    let e = BitrixEvent::parse(b"event=ONCRMLEADADD").unwrap();
    assert_eq!(e.kind, EventKind::Other("ONCRMLEADADD".into()));
    assert_eq!(
        BitrixEvent::parse(b"data=1").unwrap_err(),
        EventError::NoEventName
    );
}

#[test]
fn im_ids_must_be_numbers() {
    let e = BitrixEvent::parse(
        b"event=ONIMCONNECTORMESSAGEADD&data[MESSAGES][0][im][chat_id]=x\
          &data[MESSAGES][0][im][message_id]=2",
    )
    .unwrap();
    let EventKind::MessageAdd(m) = e.kind else {
        panic!()
    };
    assert_eq!(m.messages[0].im, None);
}
