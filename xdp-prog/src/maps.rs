//! The two maps a dataplane uses, as plain fds: `xsks` (its AF_XDP sockets go in) and
//! `counters` (read for stats). A [`SteerProgram`](crate::SteerProgram) serves them from the
//! program it loaded; a dataplane started by rotord gets them as inherited descriptors of the
//! program rotord loaded and attached ([`SteerMaps::from_fds`]), and then needs neither the
//! program nor the privileges to load or detach it.
//!
//! The calls are libbpf-sys's fd-based ones: libbpf-rs 0.25 has no public way to wrap an fd it
//! did not open in a `MapHandle`. Every inherited fd is checked (a BPF map of the expected type,
//! name and sizes) before it is used.

use std::ffi::c_void;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use libbpf_rs::libbpf_sys;
use libbpf_rs::{MapInfo, MapType};

use crate::{Counter, XdpCounters, XdpError, COUNTERS_MAP_NAME, QUEUE_COUNT_MAX, XSKS_MAP_NAME};

/// The `xsks` and `counters` maps of one loaded steering program.
#[derive(Debug)]
pub struct SteerMaps {
    /// Invariant: an XSKMAP named `xsks`, key and value `u32`, [`QUEUE_COUNT_MAX`] entries.
    xsks: OwnedFd,
    /// Invariant: a PERCPU_ARRAY named `counters`, key `u32`, value `u64`, one entry per
    /// [`Counter`].
    counters: OwnedFd,
    /// The kernel's possible CPUs: the number of values in one per-CPU lookup.
    cpu_count: usize,
}

/// What one map must be.
struct Expected {
    name: &'static str,
    ty: MapType,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
}

const XSKS: Expected = Expected {
    name: XSKS_MAP_NAME,
    ty: MapType::Xskmap,
    key_size: 4,
    value_size: 4,
    max_entries: QUEUE_COUNT_MAX,
};

const COUNTERS: Expected = Expected {
    name: COUNTERS_MAP_NAME,
    ty: MapType::PercpuArray,
    key_size: 4,
    value_size: 8,
    max_entries: Counter::ALL.len() as u32,
};

impl SteerMaps {
    /// Takes the `xsks` and `counters` maps of a steering program loaded elsewhere (rotord),
    /// after checking that each fd is a BPF map of the right type, name, key and value size
    /// and size; an fd that is not is refused with [`XdpError::InheritedMap`], never used.
    pub fn from_fds(xsks: OwnedFd, counters: OwnedFd) -> Result<SteerMaps, XdpError> {
        crate::route_libbpf_output();
        check(xsks.as_fd(), &XSKS)?;
        check(counters.as_fd(), &COUNTERS)?;
        tracing::debug!(
            "inherited maps checked: {} (fd {}) and {} (fd {}) of the XDP program {}",
            XSKS.name,
            xsks.as_raw_fd(),
            COUNTERS.name,
            counters.as_raw_fd(),
            crate::PROGRAM_NAME
        );
        // SAFETY: libbpf_num_possible_cpus reads /sys once and caches it; no preconditions.
        let cpus = unsafe { libbpf_sys::libbpf_num_possible_cpus() };
        let cpu_count = usize::try_from(cpus)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                XdpError::bpf("counting the possible CPUs")(
                    std::io::Error::from_raw_os_error(cpus.unsigned_abs() as i32).into(),
                )
            })?;
        Ok(SteerMaps {
            xsks,
            counters,
            cpu_count,
        })
    }

    /// Steers the cluster frames received on `queue_index` to the AF_XDP socket `xsk`.
    /// The socket must already be bound to the program's interface and this queue (the
    /// kernel checks).
    pub fn insert_xsk(&self, queue_index: u32, xsk: BorrowedFd<'_>) -> Result<(), XdpError> {
        check_queue_index(queue_index)?;
        let fd = u32::try_from(xsk.as_raw_fd()).expect("a BorrowedFd is never negative");
        // SAFETY: key and value point at live u32s, the sizes the map was checked to have.
        let rc = unsafe {
            libbpf_sys::bpf_map_update_elem(
                self.xsks.as_raw_fd(),
                (&queue_index as *const u32).cast::<c_void>(),
                (&fd as *const u32).cast::<c_void>(),
                u64::from(libbpf_sys::BPF_ANY),
            )
        };
        errno_result(rc, "inserting an AF_XDP socket into the xsks map")?;
        tracing::debug!("queue {queue_index}: AF_XDP socket (fd {fd}) put in the xsks map");
        Ok(())
    }

    /// Stops steering `queue_index` to a socket: its cluster frames go to the kernel again
    /// (counted as `no_socket`). Removing an empty slot is not an error.
    pub fn remove_xsk(&self, queue_index: u32) -> Result<(), XdpError> {
        check_queue_index(queue_index)?;
        // SAFETY: the key points at a live u32, the key size the map was checked to have.
        let rc = unsafe {
            libbpf_sys::bpf_map_delete_elem(
                self.xsks.as_raw_fd(),
                (&queue_index as *const u32).cast::<c_void>(),
            )
        };
        if -rc == libc::ENOENT {
            tracing::debug!("queue {queue_index}: no AF_XDP socket in the xsks map to remove");
            return Ok(());
        }
        errno_result(rc, "removing an AF_XDP socket from the xsks map")?;
        tracing::debug!("queue {queue_index}: AF_XDP socket removed from the xsks map");
        Ok(())
    }

    /// The counters, summed over all CPUs (since the program was loaded). One batched lookup
    /// reads them all: the dataplane reads them on its poll thread every report, and a system
    /// call per counter cost it 2–3 µs each.
    pub fn counters(&self) -> Result<XdpCounters, XdpError> {
        const N: usize = Counter::ALL.len();
        let mut keys = [0u32; N];
        let mut values = vec![0u64; N * self.cpu_count];
        let mut next_key = 0u32;
        let mut count = N as u32;
        let opts = libbpf_sys::bpf_map_batch_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_map_batch_opts>() as _,
            elem_flags: 0,
            flags: 0,
        };
        // SAFETY: a batch lookup of at most `count` (N) entries writes at most N keys (4 bytes,
        // checked) into `keys`, N × the possible CPUs' values (8 bytes each, checked) into
        // `values`, one key into `next_key` and the count read into `count`; all outlive the
        // call. A null `in_batch` starts at the first key.
        let rc = unsafe {
            libbpf_sys::bpf_map_lookup_batch(
                self.counters.as_raw_fd(),
                std::ptr::null_mut(),
                (&mut next_key as *mut u32).cast::<c_void>(),
                keys.as_mut_ptr().cast::<c_void>(),
                values.as_mut_ptr().cast::<c_void>(),
                &mut count,
                &opts,
            )
        };
        // The end of the map after the last entry read is not an error.
        if !(rc == -libc::ENOENT && count as usize == N) {
            errno_result(rc, "reading the counters map")?;
        }
        if count as usize != N {
            return Err(XdpError::Bpf {
                operation: "reading the counters map",
                source: std::io::Error::other(format!("{count} of {N} counters read")).into(),
            });
        }
        let mut sums = [0u64; N];
        for (key, per_cpu) in keys.iter().zip(values.chunks_exact(self.cpu_count)) {
            if let Some(sum) = sums.get_mut(*key as usize) {
                *sum = per_cpu.iter().fold(0u64, |a, &v| a.wrapping_add(v));
            }
        }
        let [redirected, passed, not_parsed, no_socket, unknown_source_passed, unknown_source_dropped] =
            sums;
        Ok(XdpCounters {
            redirected,
            passed,
            not_parsed,
            no_socket,
            unknown_source_passed,
            unknown_source_dropped,
        })
    }

    /// The fd of the `xsks` map (to hand to another process).
    pub fn xsks_fd(&self) -> BorrowedFd<'_> {
        self.xsks.as_fd()
    }

    /// The fd of the `counters` map (to hand to another process).
    pub fn counters_fd(&self) -> BorrowedFd<'_> {
        self.counters.as_fd()
    }
}

fn check(fd: BorrowedFd<'_>, want: &Expected) -> Result<(), XdpError> {
    let refuse = |reason: String| XdpError::InheritedMap {
        map: want.name,
        fd: fd.as_raw_fd(),
        reason,
    };
    let info = MapInfo::new(fd).map_err(|e| refuse(format!("not a BPF map ({e})")))?;
    let name = info.name().unwrap_or("?");
    let i = &info.info;
    if info.map_type() != want.ty
        || name != want.name
        || i.key_size != want.key_size
        || i.value_size != want.value_size
        || i.max_entries != want.max_entries
    {
        return Err(refuse(format!(
            "map \"{name}\" of type {} (key {} B, value {} B, {} entries), expected \"{}\" of \
             type {} (key {} B, value {} B, {} entries)",
            map_type_name(info.map_type()),
            i.key_size,
            i.value_size,
            i.max_entries,
            want.name,
            map_type_name(want.ty),
            want.key_size,
            want.value_size,
            want.max_entries
        )));
    }
    Ok(())
}

/// A BPF map type as the kernel's headers name it (BPF_MAP_TYPE_… in lower case).
fn map_type_name(ty: MapType) -> String {
    match ty {
        MapType::Hash => "hash".into(),
        MapType::Array => "array".into(),
        MapType::PercpuArray => "percpu_array".into(),
        MapType::Xskmap => "xskmap".into(),
        other => format!("number {}", other as u32),
    }
}

/// 0 → Ok; a negative errno (libbpf's convention) → the error of `operation`.
fn errno_result(rc: i32, operation: &'static str) -> Result<(), XdpError> {
    if rc >= 0 {
        return Ok(());
    }
    Err(XdpError::Bpf {
        operation,
        source: std::io::Error::from_raw_os_error(-rc).into(),
    })
}

pub(crate) fn check_queue_index(queue_index: u32) -> Result<(), XdpError> {
    if queue_index >= QUEUE_COUNT_MAX {
        return Err(XdpError::QueueIndexOutOfRange { queue_index });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_index_is_bounded() {
        assert!(check_queue_index(QUEUE_COUNT_MAX - 1).is_ok());
        assert!(check_queue_index(QUEUE_COUNT_MAX).is_err());
    }

    #[test]
    fn errno_becomes_an_error() {
        assert!(errno_result(0, "x").is_ok());
        assert!(matches!(
            errno_result(-libc::EPERM, "x"),
            Err(XdpError::Bpf { operation: "x", .. })
        ));
    }
}
