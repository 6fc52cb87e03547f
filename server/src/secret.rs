//! Secrets: values the code uses and no log or `Debug` output ever shows. The type is the `sm8-wire` crate's,
//! which verifies deliveries with it.

pub use sm8_wire::secret::Secret;
