//! A send job that passed the erasure check when it was loaded, and whose person's contact
//! erasure began while it recorded its attempt, before it asked Meta (decision 0122): nothing
//! goes out to the person, and the job is done. Before, only the check at the job's load
//! stood between an erasure and the send, and everything between the two (the handover,
//! the read receipt, a file's download and upload, pacing) could take seconds.

use wappline::conversation::erased::ErasedSubjects;

use super::*;

impl Rig {
    /// The person of `at` is marked erased while the send's attempt is written, before Meta
    /// is asked; then the job is delivered, and done.
    pub(super) async fn erasure_begins_as_the_attempt_is_recorded(&self, at: &MessageRef) {
        let (store, tenant, conversation) = (
            self.platform.store.clone(),
            self.tenant.clone(),
            at.conversation.clone(),
        );
        *self.store.hook().before_attempt.lock().unwrap() = Some(Box::pin(async move {
            ErasedSubjects::new(store)
                .mark(&tenant, &conversation, wappline::clock::now_millis())
                .await
                .unwrap();
        }));
        assert_eq!(self.deliver().await, Outcome::Done);
        assert!(
            self.store.hook().before_attempt.lock().unwrap().is_none(),
            "the erasure began while the attempt was recorded"
        );
    }
}

#[tokio::test]
async fn an_erasure_begun_while_the_attempt_is_recorded_sends_nothing() {
    let r = rig(Duration::from_secs(600)).await;
    let at = r.reply("we will call you tomorrow").await;
    r.erasure_begins_as_the_attempt_is_recorded(&at).await;
    assert_eq!(r.sends_to_customer(), 0, "nothing sent to the person");
    assert_eq!(r.status(&at).await, None, "never sent");
}
