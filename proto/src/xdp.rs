//! The cmap keys under which rotord describes the XDP programs it attached (`runtime.xdp.*`),
//! written by rotord and read back by `rotor status`. The programs' counters are the
//! dataplane's `stats.xdp.prog.<name>`, named by xdp-prog's `Counter::name`. Link 0's keys are
//! the keys below; every other link that runs XDP has its own, named by [`for_link`].

/// The prefix of every key below.
pub const RUNTIME_XDP_PREFIX: &str = "runtime.xdp.";
/// The interface the program is attached to (string).
pub const INTERFACE_KEY: &str = "runtime.xdp.interface";
/// `native` or `generic` (string).
pub const MODE_KEY: &str = "runtime.xdp.mode";
/// The program's name as the kernel shows it (string, `rotor_steer`).
pub const PROGRAM_KEY: &str = "runtime.xdp.program";
/// The kernel's id of the program, as `ip -d link` and `bpftool prog` show it (u32).
pub const PROG_ID_KEY: &str = "runtime.xdp.prog_id";
/// What the source filter does with cluster-port frames from outside the nodelist: `pass` or
/// `drop` (string; `rotor.xdp_unknown_source`).
pub const UNKNOWN_SOURCE_KEY: &str = "runtime.xdp.unknown_source";
/// How many addresses the source filter lets through to the dataplane (u32).
pub const SOURCES_KEY: &str = "runtime.xdp.sources";
/// The prefix of the program's counters in cmap (`stats.xdp.prog.<counter>`).
pub const COUNTERS_PREFIX: &str = "stats.xdp.prog.";

/// Link `link`'s form of `key` (one of the keys above, or a key of the dataplane's `xdp.*`
/// counters): link 0's is `key` itself, as with one link; link N's has `link<N>.` after the
/// first `xdp.` segment (`runtime.xdp.link1.interface`, `stats.xdp.link1.prog.redirected`).
pub fn for_link(key: &str, link: u8) -> String {
    if link == 0 {
        return key.to_owned();
    }
    let at = if key.starts_with("xdp.") {
        Some(0)
    } else {
        key.find(".xdp.").map(|i| i + 1)
    };
    match at {
        Some(i) => format!("{}link{link}.{}", &key[..i + 4], &key[i + 4..]),
        None => key.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_keys_name_the_link_after_xdp() {
        assert_eq!(for_link(INTERFACE_KEY, 0), INTERFACE_KEY);
        assert_eq!(for_link(INTERFACE_KEY, 1), "runtime.xdp.link1.interface");
        assert_eq!(for_link(COUNTERS_PREFIX, 7), "stats.xdp.link7.prog.");
        assert_eq!(
            for_link("xdp.prog.redirected", 2),
            "xdp.link2.prog.redirected"
        );
    }
}
