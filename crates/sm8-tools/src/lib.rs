//! Tools that exercise the product from outside, as ServiceM8 and its users would: `simulate` sends real-format
//! webhooks to a receiver; `bench` measures the product against its targets. Neither is part of what serves.

pub mod bench;
pub mod simulate;
