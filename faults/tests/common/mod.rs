//! What the netns runs of the fault crate share: the binaries they start.

use std::path::{Path, PathBuf};

/// Builds rotord, rotor-dataplane and rotor and returns the directory they sit in with this
/// crate's checker.
pub fn built_bins() -> PathBuf {
    rotor_testbed::rotor::cargo_build().expect("building rotord, rotor-dataplane and rotor");
    Path::new(env!("CARGO_BIN_EXE_rotor-checker"))
        .parent()
        .expect("the checker sits in a directory")
        .to_path_buf()
}
