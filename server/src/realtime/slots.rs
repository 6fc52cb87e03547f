//! How many websockets one node holds: at most `REALTIME_MAX_CONNECTIONS` in all and
//! `REALTIME_MAX_CONNECTIONS_PER_ADDRESS` from one client address. Past either the upgrade is refused before a
//! socket exists; a slot is given back when its connection ends, however it ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// The limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotLimits {
    pub total: usize,
    pub per_address: usize,
}

/// Which limit a refused connection met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Node,
    Address,
}

#[derive(Debug)]
pub struct Slots {
    limits: SlotLimits,
    held: Mutex<Held>,
    /// Woken whenever a place is given back.
    released: Notify,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One connection's place; dropping it gives the place back.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    address: Option<IpAddr>,
}

impl Slots {
    pub fn new(limits: SlotLimits) -> Arc<Slots> {
        Arc::new(Slots {
            limits,
            held: Mutex::new(Held::default()),
            released: Notify::new(),
        })
    }

    /// A place for a connection from `address` (unknown when the server does not learn it), if there is one.
    pub fn take(self: &Arc<Self>, address: Option<IpAddr>) -> Result<Slot, Full> {
        let mut held = self.held.lock().expect("slots lock");
        if held.total >= self.limits.total {
            return Err(Full::Node);
        }
        if let Some(address) = address {
            let from_address = held.by_address.entry(address).or_default();
            if *from_address >= self.limits.per_address {
                return Err(Full::Address);
            }
            *from_address += 1;
        }
        held.total += 1;
        Ok(Slot {
            slots: self.clone(),
            address,
        })
    }
}

impl Slots {
    /// Returns once every place has been given back.
    pub async fn emptied(&self) {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before the check, so a place given back in between still wakes it.
            released.as_mut().enable();
            if self.held.lock().expect("slots lock").total == 0 {
                return;
            }
            released.await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().expect("slots lock");
        held.total -= 1;
        if let Some(address) = self.address {
            if let Some(count) = held.by_address.get_mut(&address) {
                *count -= 1;
                if *count == 0 {
                    held.by_address.remove(&address);
                }
            }
        }
        drop(held);
        self.slots.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const THERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn one_address_cannot_take_more_than_its_share_and_the_node_not_more_than_its_total() {
        let slots = Slots::new(SlotLimits {
            total: 3,
            per_address: 2,
        });
        let first = slots.take(Some(HERE)).unwrap();
        let _second = slots.take(Some(HERE)).unwrap();
        assert_eq!(slots.take(Some(HERE)).unwrap_err(), Full::Address);
        let _third = slots.take(Some(THERE)).unwrap();
        assert_eq!(slots.take(Some(THERE)).unwrap_err(), Full::Node);
        drop(first);
        assert!(
            slots.take(Some(HERE)).is_ok(),
            "a closed connection gives its place back"
        );
    }

    #[test]
    fn places_given_back_leave_no_trace_of_the_address() {
        let slots = Slots::new(SlotLimits {
            total: 10,
            per_address: 10,
        });
        drop(slots.take(Some(HERE)).unwrap());
        assert!(slots.held.lock().unwrap().by_address.is_empty());
        assert_eq!(slots.held.lock().unwrap().total, 0);
    }
}
