//! Every input under `fuzz/corpus/TARGET/` (what coverage-guided runs kept) and
//! `fuzz/regressions/TARGET/` (every crash ever found) through its target, in the ordinary
//! suite: a fixed crash stays fixed. Plus a few thousand seeded random inputs per target, so
//! the targets run even where the corpus is small.

use std::path::Path;

fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<(String, Vec<u8>)> = entries
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            let p = e.path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_corpus_and_regression_input_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for kind in ["corpus", "regressions"] {
        let Ok(dirs) = std::fs::read_dir(root.join(kind)) else {
            continue;
        };
        for d in dirs.flatten() {
            let name = d.file_name().to_string_lossy().into_owned();
            let target = rotor_fuzz::target(&name)
                .unwrap_or_else(|| panic!("fuzz/{kind}/{name}: no such target"));
            for (path, data) in inputs(&d.path()) {
                eprintln!("{path}");
                target(&data);
            }
        }
    }
}

#[test]
fn every_target_has_a_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, _) in rotor_fuzz::TARGETS {
        let n = inputs(&root.join("corpus").join(name)).len();
        assert!(
            n > 0,
            "fuzz/corpus/{name} is empty: run `cargo xtask fuzz {name} --merge`"
        );
    }
}

#[test]
fn seeded_random_inputs() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for (_, target) in rotor_fuzz::TARGETS {
        for case in 0..300 {
            let len = case % 200;
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            target(&data);
        }
    }
}
