//! Topics are per account. Clients of every account name topics the same way (`realtime:jobs`,
//! `realtime:company:{uuid}`, …); the hub, the bus and the retained log name them with their account:
//! the default account's topic is the client's name itself, so a single-account deployment, its retained log and
//! its resume offsets are unchanged; another account's is `{account}/realtime:…`. A client topic always starts
//! with `realtime:` and an account slug has neither `:` nor `/`, so the two never collide.

use super::auth::TOPIC_PREFIX;
use crate::store::DEFAULT_ACCOUNT;

/// The hub's name for the client topic `topic` of `account`.
pub fn scoped(account: &str, topic: &str) -> String {
    if account == DEFAULT_ACCOUNT {
        topic.to_owned()
    } else {
        format!("{account}/{topic}")
    }
}

/// The client's name for the hub topic `hub_topic`.
pub fn unscoped(hub_topic: &str) -> &str {
    if hub_topic.starts_with(TOPIC_PREFIX) {
        return hub_topic;
    }
    hub_topic.split_once('/').map_or(hub_topic, |(_, topic)| topic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_accounts_topics_keep_their_names_and_others_are_prefixed() {
        assert_eq!(scoped(DEFAULT_ACCOUNT, "realtime:jobs"), "realtime:jobs");
        assert_eq!(scoped("acme", "realtime:jobs"), "acme/realtime:jobs");
    }

    #[test]
    fn unscoping_gives_back_the_clients_name_even_with_slashes_in_it() {
        for account in [DEFAULT_ACCOUNT, "acme"] {
            for topic in ["realtime:jobs", "realtime:room/with/slashes"] {
                assert_eq!(unscoped(&scoped(account, topic)), topic);
            }
        }
    }
}
