//! Which subsystem tag a `tracing` event carries: its target when that is a tag already
//! (`target: "TOTEM"`), else the tag of the module it comes from, from one table.

/// Module paths of code that logs with its default target (the module path), and the tag its
/// lines carry. The longest matching prefix wins; anything not listed is `MAIN`.
const MODULE_TAGS: &[(&str, &str)] = &[
    ("ipc_shm", "IPC"),
    ("xdp_prog", "XDP"),
    ("rotor_crypto", "TOTEM"),
    ("totem_core", "TOTEM"),
    ("rotor_dataplane", "MAIN"),
    ("rotor_dataplane::runner", "TOTEM"),
    ("rotor_dataplane::transport::udp", "TOTEM"),
    ("rotor_dataplane::transport::uring", "TOTEM"),
    ("rotor_dataplane::transport::mcast", "TOTEM"),
    ("rotor_dataplane::transport::xsk", "XDP"),
    ("rotor_dataplane::transport::neigh", "XDP"),
    ("rotor_dataplane::transport::frame", "XDP"),
    ("rotor_dataplane::service", "CPG"),
    ("rotor_control", "MAIN"),
    ("rotor_control::xdp", "XDP"),
];

/// The tag of lines that name no subsystem and come from no module in the table.
pub const DEFAULT_TAG: &str = "MAIN";

/// Longest tag a target may be taken as as it is.
const TAG_LEN_MAX: usize = 16;

/// The subsystem tag for an event's target.
pub fn tag_of(target: &str) -> &str {
    if is_tag(target) {
        return target;
    }
    MODULE_TAGS
        .iter()
        .filter(|(prefix, _)| {
            target
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
        .max_by_key(|(prefix, _)| prefix.len())
        .map_or(DEFAULT_TAG, |(_, tag)| tag)
}

/// A target written as a tag: capitals, digits and `_`, as corosync names its subsystems.
fn is_tag(target: &str) -> bool {
    (1..=TAG_LEN_MAX).contains(&target.len())
        && target
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && target.as_bytes()[0].is_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_pass_through_and_modules_map_by_the_table() {
        for tag in [
            "TOTEM", "CPG", "MAIN", "IPC", "XDP", "KNET", "QUORUM", "VOTEQ",
        ] {
            assert_eq!(tag_of(tag), tag);
        }
        assert_eq!(tag_of("ipc_shm::server"), "IPC");
        assert_eq!(tag_of("ipc_shm"), "IPC");
        assert_eq!(tag_of("xdp_prog::attach"), "XDP");
        assert_eq!(tag_of("rotor_dataplane::transport::xsk"), "XDP");
        assert_eq!(tag_of("rotor_dataplane::transport::neigh"), "XDP");
        assert_eq!(tag_of("rotor_dataplane::runner"), "TOTEM");
        assert_eq!(tag_of("rotor_dataplane::service"), "CPG");
        assert_eq!(tag_of("rotor_dataplane"), "MAIN");
        assert_eq!(tag_of("rotor_dataplane::transport::any"), "MAIN");
    }

    #[test]
    fn a_prefix_matches_only_whole_path_segments() {
        assert_eq!(tag_of("ipc_shmem::x"), DEFAULT_TAG);
        assert_eq!(tag_of("rotor_dataplane::xskx"), "MAIN");
        assert_eq!(tag_of("some_crate::module"), DEFAULT_TAG);
    }

    #[test]
    fn lowercase_or_odd_targets_are_not_tags() {
        assert_eq!(tag_of("totem"), DEFAULT_TAG);
        assert_eq!(tag_of("_X"), DEFAULT_TAG);
        assert_eq!(tag_of("A-B"), DEFAULT_TAG);
        assert_eq!(tag_of("ABCDEFGHIJKLMNOPQ"), DEFAULT_TAG);
    }
}
