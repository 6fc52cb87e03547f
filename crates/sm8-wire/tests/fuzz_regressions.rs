//! Replays the saved fuzz inputs through the harness each fuzz target runs (`sm8_wire::fuzzing`), on stable Rust:
//! the seed corpus (`fuzz/corpus/<target>/`) and every input that once made a target fail
//! (`fuzz/regressions/<target>/`), so a finding fixed once stays fixed.

use std::fs;
use std::path::{Path, PathBuf};

use sm8_wire::fuzzing::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `dir`, in name order; none when it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_saved_fuzz_input_passes_its_target() {
    for (target, harness) in TARGETS {
        let corpus = inputs(&fuzz_dir().join("corpus").join(target));
        assert!(!corpus.is_empty(), "fuzz/corpus/{target} holds no seed input");
        let regressions = inputs(&fuzz_dir().join("regressions").join(target));
        for input in corpus.iter().chain(&regressions) {
            let data = fs::read(input).expect("a readable input");
            // A failing input names itself before the harness's own panic message.
            eprintln!("{target}: {}", input.display());
            harness(&data);
        }
    }
}
