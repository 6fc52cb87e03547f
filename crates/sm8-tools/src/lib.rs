//! Tools that exercise the product from outside, as ServiceM8 and its users would: `simulate` sends real-format
//! webhooks to a receiver; `bench` measures the product against its targets. And `site`, the build's last step,
//! which packs the browser bundle. None is part of what serves.

pub mod bench;
pub mod simulate;
pub mod site;
