//! rotor-fuzz: libFuzzer over one of rotor-fuzz's targets, chosen by `ROTOR_FUZZ_TARGET`
//! (libFuzzer owns the command line). `cargo xtask fuzz TARGET --time N` sets it.
#![no_main]

use std::sync::OnceLock;

static TARGET: OnceLock<fn(&[u8])> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let target = TARGET.get_or_init(|| {
        let name = std::env::var("ROTOR_FUZZ_TARGET").unwrap_or_default();
        rotor_fuzz::target(&name).unwrap_or_else(|| {
            let names: Vec<&str> = rotor_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
            eprintln!(
                "rotor-fuzz: ROTOR_FUZZ_TARGET={name:?} is not a target (have: {})",
                names.join(", ")
            );
            std::process::exit(2);
        })
    });
    target(data);
});
