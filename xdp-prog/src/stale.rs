//! Finding and removing a stale copy of rotor's program (`rotor xdp-remove`): a rotord killed
//! with SIGKILL cannot detach its program, and the interface keeps it — with the source filter
//! and the ports of that run, steering cluster frames to no socket. A copy is stale when no
//! process holds the program or one of its maps (rotord holds the program; its dataplane the
//! maps): that is read from `/proc/*/fdinfo`, where the kernel names the BPF object behind every
//! descriptor, so a running rotord is recognised whatever its socket name or state. The same
//! lookup of an attached program's maps serves [`edit_sources`], a test's one-way link cut.

use std::ffi::CStr;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use libbpf_rs::libbpf_sys;
use libbpf_rs::XdpFlags;

use crate::attach::{detach_if_current, program_name};
use crate::{AttachedMode, Interface, XdpError, PROGRAM_NAME};

/// An XDP program attached to an interface of the calling thread's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedProgram {
    pub interface: String,
    pub ifindex: u32,
    pub id: u32,
    /// The kernel's name of the program (rotor's is [`PROGRAM_NAME`]).
    pub name: String,
    pub mode: AttachedMode,
}

/// A process holding a descriptor of a BPF program or map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// `/proc/PID/comm`.
    pub command: String,
}

/// The XDP programs attached to `interface` (native and generic mode; offloaded ones are not
/// rotor's business), or to every interface of the namespace when `None`.
pub fn attached_programs(interface: Option<Interface>) -> Result<Vec<AttachedProgram>, XdpError> {
    let interfaces = match interface {
        Some(i) => vec![i.resolve()?],
        None => all_interfaces(),
    };
    let mut out = Vec::new();
    for (ifindex, name) in interfaces {
        let mut opts = libbpf_sys::bpf_xdp_query_opts {
            sz: size_of::<libbpf_sys::bpf_xdp_query_opts>() as libbpf_sys::size_t,
            ..Default::default()
        };
        // Safety: opts is a properly sized, initialised bpf_xdp_query_opts that outlives the call.
        let rc = unsafe { libbpf_sys::bpf_xdp_query(ifindex as i32, 0, &mut opts) };
        if rc != 0 {
            // Gone since it was listed.
            if -rc == libc::ENODEV {
                continue;
            }
            return Err(XdpError::Bpf {
                operation: "querying the interface's XDP programs",
                source: std::io::Error::from_raw_os_error(-rc).into(),
            });
        }
        for (id, mode) in [
            (opts.drv_prog_id, AttachedMode::Native),
            (opts.skb_prog_id, AttachedMode::Generic),
        ] {
            if id == 0 {
                continue;
            }
            let name_of = match libbpf_rs::Program::fd_from_id(id) {
                Ok(fd) => program_name(fd.as_fd())?,
                Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => continue,
                Err(e) => return Err(XdpError::bpf("opening the attached XDP program")(e)),
            };
            out.push(AttachedProgram {
                interface: name.clone(),
                ifindex,
                id,
                name: name_of,
                mode,
            });
        }
    }
    Ok(out)
}

/// Detaches rotor's program from `program`'s interface if it is stale. Refused
/// with [`XdpError::NotRotors`] for a program of another name and [`XdpError::InUse`] while a
/// process holds it or its maps (a running rotord or dataplane).
pub fn remove_stale(program: &AttachedProgram) -> Result<(), XdpError> {
    if program.name != PROGRAM_NAME {
        return Err(XdpError::NotRotors {
            interface: program.interface.clone(),
            id: program.id,
            name: program.name.clone(),
        });
    }
    let fd = match libbpf_rs::Program::fd_from_id(program.id) {
        Ok(fd) => fd,
        // Detached and freed since it was listed: nothing left to remove.
        Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(XdpError::bpf("opening the attached XDP program")(e)),
    };
    let maps = program_map_ids(fd.as_fd())?;
    let holders = holders(program.id, &maps);
    if !holders.is_empty() {
        let names: Vec<String> = holders
            .iter()
            .map(|h| format!("{} (pid {})", h.command, h.pid))
            .collect();
        return Err(XdpError::InUse {
            interface: program.interface.clone(),
            id: program.id,
            holders: names.join(", "),
        });
    }
    let flag = match program.mode {
        AttachedMode::Native => XdpFlags::DRV_MODE,
        AttachedMode::Generic => XdpFlags::SKB_MODE,
    };
    match -detach_if_current(program.ifindex, flag, fd.as_fd()) {
        // EEXIST: replaced since it was listed (by a rotord starting): not ours to remove.
        0 | libc::ENODEV | libc::ENOENT => Ok(()),
        errno => Err(XdpError::Bpf {
            operation: "detaching the stale XDP program",
            source: std::io::Error::from_raw_os_error(errno).into(),
        }),
    }
}

/// Takes `addrs` out of the `sources` map of rotor's program `program` (`put_back: false`), or
/// writes `sources` back into it, for a test that makes a node deaf to some peers on one link:
/// their frames then go to the kernel as a stranger's do, while the node still sends to them.
/// Not a partition (one direction only), and rotord writes the whole map again at its next
/// reload.
pub fn edit_sources(
    program: &AttachedProgram,
    remove: &[std::net::IpAddr],
    put_back: &[crate::Source],
) -> Result<(), XdpError> {
    use libbpf_rs::MapCore;
    if program.name != PROGRAM_NAME {
        return Err(XdpError::NotRotors {
            interface: program.interface.clone(),
            id: program.id,
            name: program.name.clone(),
        });
    }
    let fd = libbpf_rs::Program::fd_from_id(program.id)
        .map_err(XdpError::bpf("opening the attached XDP program"))?;
    let mut sources = None;
    for id in program_map_ids(fd.as_fd())? {
        let map = libbpf_rs::MapHandle::from_map_id(id)
            .map_err(XdpError::bpf("opening a map of the attached XDP program"))?;
        if map.name() == "sources" {
            sources = Some(map);
        }
    }
    let Some(sources) = sources else {
        return Err(XdpError::Bpf {
            operation: "finding the attached program's sources map",
            source: std::io::Error::from_raw_os_error(libc::ENOENT).into(),
        });
    };
    for addr in remove {
        match sources.delete(&crate::SourceKey::of(*addr).0) {
            Ok(()) => {}
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => {}
            Err(e) => return Err(XdpError::bpf("removing an address from the sources map")(e)),
        }
    }
    for s in put_back {
        let key = crate::SourceKey::of(s.addr);
        let value = crate::SourceValue::of(s.node_id, s.link);
        sources
            .update(&key.0, &value.0, libbpf_rs::MapFlags::ANY)
            .map_err(XdpError::bpf("adding an address to the sources map"))?;
    }
    Ok(())
}

/// Every (index, name) of the namespace's interfaces.
fn all_interfaces() -> Vec<(u32, String)> {
    let mut out = Vec::new();
    // Safety: if_nameindex returns an array ending with a zero entry (or null), freed once below
    // with if_freenameindex; every name in it is a NUL-terminated string until then.
    unsafe {
        let head = libc::if_nameindex();
        if head.is_null() {
            return out;
        }
        let mut p = head;
        while (*p).if_index != 0 && !(*p).if_name.is_null() {
            let name = CStr::from_ptr((*p).if_name).to_string_lossy().into_owned();
            out.push(((*p).if_index, name));
            p = p.add(1);
        }
        libc::if_freenameindex(head);
    }
    out
}

/// The ids of the maps a program uses.
fn program_map_ids(fd: BorrowedFd<'_>) -> Result<Vec<u32>, XdpError> {
    let info_of = |ids: &mut Vec<u32>| -> Result<u32, XdpError> {
        let mut info = libbpf_sys::bpf_prog_info {
            nr_map_ids: ids.len() as u32,
            map_ids: ids.as_mut_ptr() as u64,
            ..Default::default()
        };
        let mut len = size_of::<libbpf_sys::bpf_prog_info>() as u32;
        // Safety: `info` is a writable bpf_prog_info of `len` bytes; `map_ids` points at
        // `nr_map_ids` writable u32s that outlive the call; `fd` is an open program fd.
        let rc = unsafe {
            libbpf_sys::bpf_obj_get_info_by_fd(
                fd.as_raw_fd(),
                (&mut info as *mut libbpf_sys::bpf_prog_info).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(XdpError::Bpf {
                operation: "reading the XDP program's maps",
                source: std::io::Error::from_raw_os_error(-rc).into(),
            });
        }
        Ok(info.nr_map_ids)
    };
    let mut ids = Vec::new();
    let count = info_of(&mut ids)?;
    ids.resize(count as usize, 0);
    let filled = info_of(&mut ids)?;
    ids.truncate(filled.min(count) as usize);
    Ok(ids)
}

/// The processes (but this one) with a descriptor of program `prog_id` or of a map in `maps`.
fn holders(prog_id: u32, maps: &[u32]) -> Vec<Holder> {
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fdinfo")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_to_string(fd.path()).is_ok_and(|info| fdinfo_names(&info, prog_id, maps))
        });
        if holds {
            let command = std::fs::read_to_string(entry.path().join("comm"))
                .map(|c| c.trim().to_owned())
                .unwrap_or_default();
            out.push(Holder { pid, command });
        }
    }
    out
}

/// Whether one `/proc/PID/fdinfo/FD` text is a descriptor of program `prog_id` or of a map in
/// `maps` (the kernel writes `prog_id:\tN` and `map_id:\tN` lines for BPF objects).
fn fdinfo_names(info: &str, prog_id: u32, maps: &[u32]) -> bool {
    info.lines().any(|line| {
        let Some((key, value)) = line.split_once(':') else {
            return false;
        };
        let Ok(id) = value.trim().parse::<u32>() else {
            return false;
        };
        match key {
            "prog_id" => id == prog_id,
            "map_id" => maps.contains(&id),
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdinfo_of_the_program_or_its_maps_names_them() {
        let prog = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nlink_type:\tbpf\n\
                    prog_type:\t6\nprog_tag:\t1b7ce0fe1aa1b1b4\nmemlock:\t4096\nprog_id:\t42\n";
        assert!(fdinfo_names(prog, 42, &[]));
        assert!(
            !fdinfo_names(prog, 43, &[42]),
            "a map id is not a program id"
        );
        let map = "pos:\t0\nflags:\t02000002\nmap_type:\t17\nkey_size:\t4\nmap_id:\t7\n";
        assert!(fdinfo_names(map, 42, &[6, 7]));
        assert!(!fdinfo_names(map, 7, &[6]));
        let file = "pos:\t0\nflags:\t0100002\nmnt_id:\t25\nino:\t7\n";
        assert!(!fdinfo_names(file, 7, &[7]));
    }
}
