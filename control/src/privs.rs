//! Privileges. rotord never runs setuid or setgid (a binary installed that way is refused at
//! start), and once it has set itself up (config, key, sockets, log and, on XDP, its program
//! attached) it gives up every capability it does not need ([`after_setup`]): its own
//! effective and permitted sets keep only NET_ADMIN, BPF and PERFMON when it owns an XDP
//! program (to detach it on shutdown, and attach one for a link a reload adds) and nothing
//! otherwise, and its bounding set keeps only what the
//! dataplane it starts and restarts needs on that transport (a process running as root gets
//! its bounding set at exec). The dataplane, once set up, keeps what its transport needs to
//! run (see its `drop_privileges`): nothing on kernel UDP; on maps inherited from rotord
//! NET_RAW and IPC_LOCK, to open the AF_XDP socket of a link a reload adds.

use std::collections::HashSet;

use caps::{CapSet, Capability};

/// What a dataplane started by rotord on AF_XDP needs at start, on the program rotord
/// attached (it loads none): AF_XDP sockets (NET_RAW), the update of the inherited `xsks` map
/// and reading `counters` (BPF: kernels before 6.5 with unprivileged BPF disabled check it on
/// every bpf(2) call; SYS_ADMIN on kernels before 5.8, which have no CAP_BPF), pinning UMEM
/// pages beyond RLIMIT_MEMLOCK (IPC_LOCK) and pinning its thread (SYS_NICE).
pub const DATAPLANE_XDP: &[Capability] = &[
    Capability::CAP_NET_RAW,
    Capability::CAP_BPF,
    Capability::CAP_IPC_LOCK,
    Capability::CAP_SYS_NICE,
];

/// What a dataplane started by rotord on kernel UDP needs at start: io_uring and client ring
/// memory beyond RLIMIT_MEMLOCK (IPC_LOCK) and pinning its thread (SYS_NICE).
pub const DATAPLANE_UDP: &[Capability] = &[Capability::CAP_IPC_LOCK, Capability::CAP_SYS_NICE];

/// What rotord keeps while it owns an XDP program: detaching it on shutdown takes a netlink
/// RTM_SETLINK (NET_ADMIN) and reading the program's id (BPF on kernels before 6.5; SYS_ADMIN
/// before 5.8); loading and attaching the program of a link a reload adds takes those two (BPF
/// for the program and its maps, NET_ADMIN for an XDP program and the attach) and PERFMON
/// (the verifier refuses the program's packet-pointer arithmetic without it).
pub const ROTORD_XDP_OWNER: &[Capability] = &[
    Capability::CAP_NET_ADMIN,
    Capability::CAP_BPF,
    Capability::CAP_PERFMON,
];

/// The (bounding, kept) sets for [`drop_to`] once rotord is set up: with its own XDP program,
/// the AF_XDP dataplane's start set and what detaching the program takes; on kernel UDP, the
/// UDP dataplane's start set and nothing.
pub fn after_setup(owns_xdp_program: bool) -> (&'static [Capability], &'static [Capability]) {
    if owns_xdp_program {
        (DATAPLANE_XDP, ROTORD_XDP_OWNER)
    } else {
        (DATAPLANE_UDP, &[])
    }
}

/// An error naming the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum PrivError {
    #[error(
        "refusing to run setuid/setgid (real uid {uid}, effective uid {euid}, real gid {gid}, \
         effective gid {egid}): start it as the user it should run as"
    )]
    SetId {
        uid: u32,
        euid: u32,
        gid: u32,
        egid: u32,
    },
    #[error("capabilities: {step}: {source}")]
    Caps {
        step: &'static str,
        source: caps::errors::CapsError,
    },
}

/// Refuses a process whose effective ids differ from its real ones (a setuid/setgid binary).
pub fn refuse_setid() -> Result<(), PrivError> {
    // Safety: the get*id calls have no preconditions and cannot fail.
    let (uid, euid, gid, egid) = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    };
    if uid != euid || gid != egid {
        return Err(PrivError::SetId {
            uid,
            euid,
            gid,
            egid,
        });
    }
    Ok(())
}

/// What a drop did, for the log.
#[derive(Debug, Default)]
pub struct Dropped {
    /// Capabilities left in the bounding set (what children started from now on can have).
    pub bounding: Vec<Capability>,
    /// Capabilities left in the effective and permitted sets.
    pub kept: Vec<Capability>,
}

impl Dropped {
    /// `cap_net_admin,cap_bpf` style, sorted.
    pub fn names(caps: &[Capability]) -> String {
        let mut names: Vec<String> = caps.iter().map(|c| c.to_string().to_lowercase()).collect();
        names.sort();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(",")
        }
    }
}

fn step<T>(step: &'static str, r: Result<T, caps::errors::CapsError>) -> Result<T, PrivError> {
    r.map_err(|source| PrivError::Caps { step, source })
}

/// Keeps `bounding` (as far as the kernel knows them; SYS_ADMIN stands in for BPF and
/// PERFMON on kernels without them) in the bounding set and `kept` (as far as permitted) in
/// the effective and permitted sets; clears the inheritable and ambient sets. `kept` need not
/// be in `bounding`: the bounding set limits what a child gets at exec, not what this process
/// holds. A process without capabilities (not root) is left as it is. Dropping is one-way:
/// nothing here can raise a capability.
pub fn drop_to(bounding: &[Capability], kept: &[Capability]) -> Result<Dropped, PrivError> {
    let effective = step("read effective", caps::read(None, CapSet::Effective))?;
    let permitted = step("read permitted", caps::read(None, CapSet::Permitted))?;
    if effective.is_empty() && permitted.is_empty() {
        return Ok(Dropped::default());
    }
    let supported = caps::runtime::thread_all_supported();
    let known = |list: &[Capability]| -> HashSet<Capability> {
        let mut set: HashSet<Capability> = list
            .iter()
            .copied()
            .filter(|c| supported.contains(c))
            .collect();
        if list.iter().any(|c| {
            matches!(c, Capability::CAP_BPF | Capability::CAP_PERFMON) && !supported.contains(c)
        }) {
            set.insert(Capability::CAP_SYS_ADMIN);
        }
        set
    };
    let bound = known(bounding);
    let keep: HashSet<Capability> = known(kept)
        .into_iter()
        .filter(|c| permitted.contains(c))
        .collect();
    // Dropping from the bounding set needs CAP_SETPCAP in the effective set: raise it first if
    // it is permitted (it goes with the rest below).
    if permitted.contains(&Capability::CAP_SETPCAP) {
        step(
            "raise setpcap",
            caps::raise(None, CapSet::Effective, Capability::CAP_SETPCAP),
        )?;
    }
    for cap in step("read bounding", caps::read(None, CapSet::Bounding))? {
        if !bound.contains(&cap) {
            step(
                "drop from bounding",
                caps::drop(None, CapSet::Bounding, cap),
            )?;
        }
    }
    step("clear ambient", caps::clear(None, CapSet::Ambient))?;
    step("clear inheritable", caps::clear(None, CapSet::Inheritable))?;
    step("set effective", caps::set(None, CapSet::Effective, &keep))?;
    step("set permitted", caps::set(None, CapSet::Permitted, &keep))?;
    let mut bounding: Vec<Capability> = bound.into_iter().collect();
    bounding.sort_by_key(|c| c.index());
    let mut kept: Vec<Capability> = keep.into_iter().collect();
    kept.sort_by_key(|c| c.index());
    Ok(Dropped { bounding, kept })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sorted_and_lower_case() {
        assert_eq!(
            Dropped::names(&[Capability::CAP_NET_RAW, Capability::CAP_BPF]),
            "cap_bpf,cap_net_raw"
        );
        assert_eq!(Dropped::names(&[]), "none");
    }

    #[test]
    fn the_owner_of_a_program_keeps_only_what_detaching_and_attaching_take() {
        let (bounding, kept) = after_setup(true);
        assert_eq!(
            kept,
            [
                Capability::CAP_NET_ADMIN,
                Capability::CAP_BPF,
                Capability::CAP_PERFMON
            ]
        );
        assert!(!bounding.contains(&Capability::CAP_NET_ADMIN));
        assert!(bounding.contains(&Capability::CAP_NET_RAW));
        let (bounding, kept) = after_setup(false);
        assert!(kept.is_empty());
        assert!(!bounding.contains(&Capability::CAP_NET_RAW));
        assert!(!bounding.contains(&Capability::CAP_BPF));
    }

    #[test]
    fn this_process_is_not_setid() {
        refuse_setid().unwrap();
    }
}
