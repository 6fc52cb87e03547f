//! Each flag's default is written once, on the flag: `Default` for a group of flags is what clap gives when
//! nothing is set, environment aside.

use clap::{Args, FromArgMatches};

/// The flags of `T` at their defaults, as if the command line and the environment set none of them.
pub fn defaults<T: Args + FromArgMatches>() -> T {
    let command = T::augment_args(clap::Command::new("defaults")).mut_args(|flag| flag.env(None));
    let matches = command
        .try_get_matches_from(["defaults"])
        .expect("every flag of a group with defaults has one");
    T::from_arg_matches(&matches).expect("the defaults parse")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::ProcessorArgs;

    #[test]
    fn defaults_ignore_the_environment() {
        // No other test reads WORKERS from the environment.
        std::env::set_var("WORKERS", "17");
        assert_eq!(defaults::<ProcessorArgs>().workers, 4);
    }
}
