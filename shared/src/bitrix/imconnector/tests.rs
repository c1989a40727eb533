use super::*;

fn msg() -> OutgoingCrmMessage {
    OutgoingCrmMessage {
        user: CrmUser {
            id: "ext-user-42".into(),
            name: Some("John".into()),
            last_name: Some("Smith".into()),
            phone: Some("+19990000000".into()),
            picture_url: Some("https://example.com/u42.png".into()),
            profile_url: Some("https://example.com/users/42".into()),
            skip_phone_validate: true,
        },
        chat: CrmChat {
            id: "channel-123".into(),
            name: Some("Support Channel".into()),
            url: Some("https://example.com/chats/123".into()),
        },
        message_id: "ext-msg-1001".into(),
        date: 1773265993,
        text: Some("Good afternoon".into()),
        files: vec![CrmFile {
            url: "https://example.com/files/spec.pdf".into(),
            name: Some("spec.pdf".into()),
        }],
        disable_crm: true,
    }
}

#[test]
fn send_messages_element_matches_the_documented_example() {
    // apidocs imconnector.send.messages, cURL (OAuth) example, minus `gender`/`email`.
    assert_eq!(
        msg().to_param().unwrap(),
        json!({
            "user": {
                "id": "ext-user-42",
                "last_name": "Smith",
                "name": "John",
                "picture": {"url": "https://example.com/u42.png"},
                "url": "https://example.com/users/42",
                "phone": "+19990000000",
                "skip_phone_validate": "Y"
            },
            "message": {
                "id": "ext-msg-1001",
                "date": 1773265993,
                "text": "Good afternoon",
                "files": [{"url": "https://example.com/files/spec.pdf", "name": "spec.pdf"}],
                "disable_crm": "Y"
            },
            "chat": {
                "id": "channel-123",
                "name": "Support Channel",
                "url": "https://example.com/chats/123"
            }
        })
    );
}

#[test]
fn minimal_message_and_refusals() {
    let mut m = msg();
    m.user = CrmUser {
        id: "u1".into(),
        ..Default::default()
    };
    m.chat = CrmChat {
        id: "c1".into(),
        ..Default::default()
    };
    m.files.clear();
    m.disable_crm = false;
    assert_eq!(
        m.to_param().unwrap(),
        json!({
            "user": {"id": "u1"},
            "message": {"id": "ext-msg-1001", "date": 1773265993, "text": "Good afternoon"},
            "chat": {"id": "c1"}
        })
    );
    m.text = Some(String::new());
    assert!(matches!(m.to_param(), Err(BitrixError::InvalidRequest(_))));
    let mut m = msg();
    m.chat.id = " ".into();
    assert!(m.to_param().is_err());
}

#[test]
fn names_are_made_acceptable() {
    assert_eq!(
        crm_name("Anna-Maria O'Neil").as_deref(),
        Some("Anna-Maria O'Neil")
    );
    assert_eq!(
        crm_name("  Иван \t Петров 🚀 ").as_deref(),
        Some("Иван Петров")
    );
    assert_eq!(crm_name("R2D2"), Some("RD".to_owned()));
    assert_eq!(crm_name("12345 🙂"), None);
    assert_eq!(
        crm_name("Abcdefghij Klmnopqrst Uvwxyz Extra").map(|n| n.chars().count()),
        Some(MAX_NAME_CHARS)
    );
}

#[test]
fn status_element_matches_the_documented_example() {
    let s = StatusUpdate {
        im: ImRef {
            chat_id: 323,
            message_id: 85911,
        },
        message_ids: vec!["ext-msg-1007".into()],
        chat_id: "channel-123".into(),
        date: Some(1738065600),
    };
    assert_eq!(
        s.to_param().unwrap(),
        json!({
            "im": {"chat_id": 323, "message_id": 85911},
            "message": {"id": ["ext-msg-1007"], "date": 1738065600},
            "chat": {"id": "channel-123"}
        })
    );
}

#[test]
fn parses_the_documented_send_messages_answer() {
    let result = json!({
        "SUCCESS": true,
        "DATA": {"RESULT": [{
            "user": "585",
            "message": {"id": "ext-msg-1001", "date": {}, "text": "Good afternoon", "files": []},
            "chat": {"id": "channel-123", "name": "Support Channel",
                     "description": "Link to the original post: https://example.com/chats/123"},
            "extra": {"skip_phone_validate": "Y", "disable_tracker": "Y"},
            "SUCCESS": true,
            "session": {"ID": "323", "CHAT_ID": "1767"}
        }, {
            "user": 586,
            "SUCCESS": false,
            "ERRORS": ["Not all required data was provided"]
        }]}
    });
    let sent = parse_sent_messages(SEND_MESSAGES, &result).unwrap();
    assert_eq!(sent.len(), 2);
    assert!(sent[0].success);
    assert_eq!(sent[0].bitrix_user_id.as_deref(), Some("585"));
    assert_eq!(sent[0].external_message_id.as_deref(), Some("ext-msg-1001"));
    assert_eq!(sent[0].external_chat_id.as_deref(), Some("channel-123"));
    assert_eq!(sent[0].session_id.as_deref(), Some("323"));
    assert_eq!(sent[0].chat_id.as_deref(), Some("1767"));
    assert!(!format!("{:?}", sent[0]).contains("Good afternoon"));
    assert!(!sent[1].success);
    assert_eq!(sent[1].bitrix_user_id.as_deref(), Some("586"));
    assert_eq!(sent[1].errors, vec!["Not all required data was provided"]);

    assert!(parse_success(SEND_STATUS_DELIVERY, &json!({"SUCCESS": true, "DATA": []})).is_ok());
    assert!(matches!(
        parse_success(SEND_STATUS_DELIVERY, &json!({"SUCCESS": false})),
        Err(BitrixError::Rejected { .. })
    ));
}

#[test]
fn registration_activation_and_data() {
    let reg = ConnectorRegistration {
        id: ConnectorId::parse("wappline_whatsapp").unwrap(),
        name: "WhatsApp (Wappline)".into(),
        icon_data_image: "data:image/svg+xml;charset=US-ASCII,%3Csvg%2F%3E".into(),
        icon_color: Some("#25D366".into()),
        placement_handler: "https://w.example/bitrix/placement".into(),
        edit_internal_messages: false,
        delete_internal_messages: false,
        chat_group: false,
        comment: None,
    };
    assert_eq!(
        reg.to_params().unwrap(),
        json!({
            "ID": "wappline_whatsapp",
            "NAME": "WhatsApp (Wappline)",
            "ICON": {"DATA_IMAGE": "data:image/svg+xml;charset=US-ASCII,%3Csvg%2F%3E", "COLOR": "#25D366"},
            "PLACEMENT_HANDLER": "https://w.example/bitrix/placement",
            "EDIT_INTERNAL_MESSAGES": "N",
            "DEL_INTERNAL_MESSAGES": "N",
            "CHAT_GROUP": "N"
        })
    );
    let mut bad = reg.clone();
    bad.id = ConnectorId::parse("has.dot").unwrap();
    assert!(bad.to_params().is_err());
    let line = OpenLineId::new(107).unwrap();
    assert_eq!(
        activate_params(&reg.id, line, true),
        json!({"CONNECTOR": "wappline_whatsapp", "LINE": 107, "ACTIVE": 1})
    );
    let data = ConnectorData {
        id: "wappline_whatsapp_line107".into(),
        url: None,
        url_im: None,
        name: Some("WhatsApp".into()),
    };
    assert_eq!(
        data.to_params(&reg.id, line).unwrap(),
        json!({"CONNECTOR": "wappline_whatsapp", "LINE": 107,
               "DATA": {"ID": "wappline_whatsapp_line107", "NAME": "WhatsApp"}})
    );
    assert!(parse_true(REGISTER, &json!(true)).is_ok());
    assert!(parse_true(REGISTER, &json!({"result": true})).is_ok());
    assert!(parse_true(ACTIVATE, &json!({"SUCCESS": "Y"})).is_ok());
    assert!(matches!(
        parse_true(REGISTER, &json!({"result": false, "error": "ERROR_X", "error_description": "no"})),
        Err(BitrixError::Rejected { code, .. }) if code == "ERROR_X"
    ));
    assert!(matches!(
        parse_true(REGISTER, &json!("x")),
        Err(BitrixError::Protocol(_))
    ));
}

#[test]
fn typed_ids_validate() {
    assert!(ConnectorId::parse("wappline_whatsapp").is_ok());
    assert!(ConnectorId::parse("").is_err());
    assert!(ConnectorId::parse("a b").is_err());
    assert!(ConnectorId::parse("a/b").is_err());
    assert_eq!(OpenLineId::parse("107").unwrap().get(), 107);
    assert!(OpenLineId::parse("0").is_err());
    assert!(OpenLineId::parse("+7").is_err());
    assert!(OpenLineId::parse("x").is_err());
    assert!(format!("{:?}", msg()).contains("ext-msg-1001"));
    assert!(!format!("{:?}", msg()).contains("Good afternoon"));
    assert!(!format!("{:?}", msg()).contains("Smith"));
    assert!(!format!("{:?}", msg()).contains("+1999"));
}

#[test]
fn calls_carry_their_method_and_documented_params() {
    let connector = ConnectorId::parse("wappline_whatsapp").unwrap();
    let line = OpenLineId::new(107).unwrap();
    let send = send_messages_call(&connector, line, &[msg()]).unwrap();
    assert_eq!(send.method, SEND_MESSAGES);
    assert_eq!(
        send.params,
        json!({"CONNECTOR": "wappline_whatsapp", "LINE": 107, "MESSAGES": [msg().to_param().unwrap()]})
    );
    assert!(!format!("{send:?}").contains("Good afternoon"));
    assert_eq!(
        update_messages_call(&connector, line, &[msg()])
            .unwrap()
            .method,
        UPDATE_MESSAGES
    );
    let delete = DeleteCrmMessage {
        user_id: "u1".into(),
        chat_id: "c1".into(),
        message_id: "m1".into(),
    };
    let call = delete_messages_call(&connector, line, &[delete]).unwrap();
    assert_eq!(call.method, DELETE_MESSAGES);
    assert_eq!(
        call.params["MESSAGES"][0],
        json!({"user": {"id": "u1"}, "message": {"id": "m1"}, "chat": {"id": "c1"}})
    );
    let status = StatusUpdate {
        im: ImRef {
            chat_id: 323,
            message_id: 85911,
        },
        message_ids: vec!["ext-msg-1007".into()],
        chat_id: "channel-123".into(),
        date: None,
    };
    let delivery = status_delivery_call(&connector, line, std::slice::from_ref(&status)).unwrap();
    assert_eq!(delivery.method, SEND_STATUS_DELIVERY);
    assert_eq!(
        delivery.params["MESSAGES"][0]["im"]["message_id"],
        json!(85911)
    );
    let reading = status_reading_call(&connector, line, &[status]).unwrap();
    assert_eq!(reading.method, SEND_STATUS_READING);
    assert_eq!(reading.params, delivery.params);
    // Refused before anything is built.
    assert!(send_messages_call(&connector, line, &[]).is_err());
    let mut empty = msg();
    empty.text = None;
    empty.files.clear();
    assert!(send_messages_call(&connector, line, &[empty]).is_err());
}
