//! Privileges. rotord never runs setuid or setgid (a binary installed that way is refused at
//! start), and once it has set itself up it gives up every capability it does not need: its
//! own effective and permitted sets become empty, and its bounding set keeps only what the
//! dataplane it starts and restarts needs (a process running as root gets its bounding set at
//! exec). The dataplane, once its sockets are open and its XDP program attached, keeps only what
//! it needs to detach the program on exit.

use std::collections::HashSet;

use caps::{CapSet, Capability};

/// What the dataplane needs at start: AF_XDP sockets (NET_RAW), attaching the XDP program and
/// netlink (NET_ADMIN), loading BPF programs and maps (BPF; SYS_ADMIN on kernels before 5.8,
/// which have no CAP_BPF), reading BPF program info (PERFMON), pinning UMEM pages (IPC_LOCK),
/// raising RLIMIT_MEMLOCK on older kernels (SYS_RESOURCE) and pinning its thread (SYS_NICE).
pub const DATAPLANE_START: &[Capability] = &[
    Capability::CAP_NET_ADMIN,
    Capability::CAP_NET_RAW,
    Capability::CAP_BPF,
    Capability::CAP_PERFMON,
    Capability::CAP_IPC_LOCK,
    Capability::CAP_SYS_RESOURCE,
    Capability::CAP_SYS_NICE,
];

/// What a running dataplane keeps: detaching its XDP program on exit.
pub const DATAPLANE_RUN: &[Capability] = &[Capability::CAP_NET_ADMIN, Capability::CAP_BPF];

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
/// PERFMON on kernels without them) in the bounding set and `kept` in the effective and
/// permitted sets; clears the inheritable and ambient sets. A process without capabilities
/// (not root) is left as it is. Dropping is one-way: nothing here can raise a capability.
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
        .filter(|c| bound.contains(c) && permitted.contains(c))
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
    fn this_process_is_not_setid() {
        refuse_setid().unwrap();
    }
}
