//! The validators of what people type: emoji, display names, space names and slugs, email
//! addresses. Any text: no panic; what is accepted keeps its rules (one emoji Unicode lists;
//! a trimmed one-line name of 1–64 characters; …) and is accepted again as itself.
#![no_main]

use kehai_core::{DisplayName, Email, Emoji, SpaceName, SpaceSlug};
use libfuzzer_sys::fuzz_target;
use unicode_segmentation::UnicodeSegmentation;

fn one_line(s: &str) -> bool {
    !s.chars().any(|c| {
        c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    })
}

fuzz_target!(|s: &str| {
    if let Ok(emoji) = Emoji::parse(s) {
        let e = emoji.as_str();
        assert!(emojis::get(e).is_some(), "{e:?} is not an emoji Unicode lists");
        assert_eq!(e.graphemes(true).count(), 1);
        assert_eq!(e.replace('\u{FE0F}', ""), s.replace('\u{FE0F}', ""), "accepted {s:?} as another emoji");
        assert_eq!(Emoji::parse(e).as_ref(), Ok(&emoji));
    }
    if let Ok(name) = DisplayName::parse(s) {
        let n = name.as_str();
        assert_eq!(n, s.trim());
        assert!((1..=DisplayName::MAX_CHARS).contains(&n.chars().count()) && one_line(n));
        assert_eq!(DisplayName::parse(n).as_ref(), Ok(&name));
    }
    if let Ok(name) = SpaceName::parse(s) {
        let n = name.as_str();
        assert!(n == s.trim() && (1..=100).contains(&n.chars().count()) && one_line(n));
        assert_eq!(SpaceName::parse(n).as_ref(), Ok(&name));
    }
    if let Ok(slug) = SpaceSlug::parse(s) {
        assert!(slug.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        assert_eq!(SpaceSlug::parse(slug.as_str()).as_ref(), Ok(&slug));
    }
    if let Ok(email) = Email::parse(s) {
        let e = email.as_str();
        assert!(e.len() <= 254 && e.matches('@').count() == 1 && one_line(e) && !e.contains(char::is_whitespace));
        assert_eq!(Email::parse(e).as_ref(), Ok(&email));
    }
});
