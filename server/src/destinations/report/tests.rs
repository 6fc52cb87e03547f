use super::{excerpt, first_chars, MAX_EXCERPT_BYTES};

#[test]
fn an_excerpt_keeps_at_most_4_kib_and_never_splits_a_character() {
    assert_eq!(excerpt(b"short answer"), "short answer");
    let long = "é".repeat(MAX_EXCERPT_BYTES);
    let cut = excerpt(long.as_bytes());
    assert_eq!(cut, "é".repeat(MAX_EXCERPT_BYTES / 2));
    let odd = format!("a{}", "é".repeat(MAX_EXCERPT_BYTES));
    let cut = excerpt(odd.as_bytes());
    assert_eq!(cut.len(), MAX_EXCERPT_BYTES - 1);
    assert!(cut.ends_with('é') && !cut.contains('\u{FFFD}'));
}

#[test]
fn bytes_that_are_not_utf8_become_replacement_characters_within_the_bound() {
    assert_eq!(excerpt(b"ok \xff\xfe"), "ok \u{FFFD}\u{FFFD}");
    let garbage = vec![0xff; MAX_EXCERPT_BYTES * 2];
    let cut = excerpt(&garbage);
    assert!(cut.len() <= MAX_EXCERPT_BYTES);
    assert!(cut.chars().all(|c| c == '\u{FFFD}'));
}

#[test]
fn first_chars_counts_characters_not_bytes() {
    assert_eq!(first_chars("héllo", 2), "hé");
    assert_eq!(first_chars("hé", 10), "hé");
}
