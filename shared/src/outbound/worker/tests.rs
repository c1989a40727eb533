use super::*;

#[test]
fn phone_first_then_bsuid() {
    use crate::meta::{WhatsAppPhone, WhatsAppUserId};
    let mut c = CustomerRef::new(CustomerId::WhatsAppUser(
        WhatsAppUserId::parse("US.13491208655302741918").unwrap(),
    ));
    assert!(matches!(
        whatsapp_recipient(&c),
        Some(WhatsAppRecipient::User(_))
    ));
    c.phone = Some(WhatsAppPhone::parse("16505551234").unwrap());
    assert!(matches!(
        whatsapp_recipient(&c),
        Some(WhatsAppRecipient::Phone(_))
    ));
}
