//! Any bytes POSTed to the webhook. They are parsed exactly as the server parses them
//! (`NotificationBatch::parse`) without panicking; a parsed batch's `Debug` (what a log line
//! could show) does not depend on the clientStates it carries; and any body that parses as a
//! presence (what a decrypted payload or a presence read is) maps to a valid avatar emoji or to
//! none.
#![no_main]

use kehai_core::{Emoji, presence::msteams};
use kehai_microsoft::{Presence, notifications::NotificationBatch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(batch) = NotificationBatch::parse(body) {
        let mut other = batch.clone();
        for n in &mut other.value {
            n.client_state = n.client_state.as_ref().map(|s| format!("other {s}"));
        }
        assert_eq!(format!("{batch:?}"), format!("{other:?}"), "Debug shows a clientState");
        for n in &batch.value {
            if let Some(data) = &n.resource_data {
                check_presence(serde_json::from_value::<Presence>(data.clone()).ok());
            }
        }
    }
    check_presence(serde_json::from_slice::<Presence>(body).ok());
});

fn check_presence(presence: Option<Presence>) {
    let Some(p) = presence else { return };
    let ooo = p.out_of_office_settings.as_ref().is_some_and(|o| o.is_out_of_office);
    if let Some(shown) = msteams::shown(&p.availability, &p.activity, ooo) {
        assert_eq!(Emoji::parse(shown.emoji.as_str()).as_ref(), Ok(&shown.emoji));
    }
}
