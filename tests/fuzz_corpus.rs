//! Replays the committed fuzz corpora and regression inputs on stable, without cargo-fuzz.
//!
//! For every target in `swarmgate::fuzzing::TARGETS`, each file of `fuzz/corpus/<target>/` (the minimised
//! corpus the fuzzer built) and of `fuzz/regressions/<target>/` (inputs that once broke an invariant, fixed
//! since) is run through the same check function the fuzz target calls. A panic names the target and file.
//! `FUZZ_CORPUS_EXTRA=<dir>` adds `<dir>/<target>/` (e.g. `fuzz/seeds`) to the replay.

// Test code: a failed unwrap, expect or index is the assertion (it panics on purpose), and tests read and
// write fixture files with std::fs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(kind: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let extra = std::env::var_os("FUZZ_CORPUS_EXTRA").map(PathBuf::from);
    let mut total = 0;
    let mut failures = Vec::new();
    for (target, check) in swarmgate::fuzzing::TARGETS {
        let dirs: Vec<PathBuf> = match kind {
            "extra" => extra.iter().map(|d| d.join(target)).collect(),
            _ => vec![root.join("fuzz").join(kind).join(target)],
        };
        for file in dirs.iter().flat_map(|d| files(d)) {
            let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            total += 1;
            if let Err(panic) = std::panic::catch_unwind(|| check(&data)) {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{target}: {}: {msg}", file.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    total
}

/// Runs `f` on a thread with libFuzzer's main-thread stack size (8 MiB): the fuzz targets run there, and a
/// debug build needs more stack than the test harness's 2 MiB for the deepest corpus inputs.
fn with_fuzzer_stack(f: fn() -> usize) -> usize {
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

#[test]
fn corpora_replay_without_a_broken_invariant() {
    let n = with_fuzzer_stack(|| replay("corpus"));
    assert!(n > 0, "no corpus files found under fuzz/corpus");
}

#[test]
fn fixed_crashers_stay_fixed() {
    replay("regressions");
}

#[test]
fn extra_inputs_replay() {
    replay("extra");
}

#[test]
fn every_target_has_a_corpus_and_a_fuzz_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (target, _) in swarmgate::fuzzing::TARGETS {
        assert!(
            !files(&root.join("corpus").join(target)).is_empty(),
            "fuzz/corpus/{target} is empty"
        );
        let wrapper = root.join("fuzz_targets").join(format!("{target}.rs"));
        assert!(wrapper.is_file(), "{} missing", wrapper.display());
    }
}
