//! libcfg.so.7 over rotor: corosync's configuration C API (`corosync/cfg.h`, the ABI's
//! definition) as a thin layer over rotor-client's [`Cfg`], served by rotord: the local node
//! id, a node's status and addresses, the link's status, a cluster-wide reload, reopening the
//! log files, killing a node, and shutdown with the tracking applications' say. Handles are
//! hdb-style entries of [`HANDLES`] (rotor-capi's `Library`; stale or unknown:
//! `CS_ERR_BAD_HANDLE`); the shutdown
//! callback runs only from `corosync_cfg_dispatch`, with the handle unlocked, so it may call
//! the library (`corosync_cfg_replyto_shutdown`, finalize included).
//!
//! Where rotor differs from corosync: NULL pointers (`cfg_handle`, `local_nodeid`, the
//! outputs of `corosync_cfg_get_node_addrs` and `corosync_cfg_ring_status_get`, a kill's
//! `reason`) are `CS_ERR_INVALID_PARAM` rather than a crash; unknown dispatch, shutdown and
//! reply flags are `CS_ERR_INVALID_PARAM`; a node has one link (link 0), and
//! `onwire_min/max/ver` are 0 (knet's on-wire versions do not exist in rotor).
//!
//! Safety contract of every exported function: pointer arguments are NULL or valid for what
//! `cfg.h` says the function does with them; the library checks NULL, never validity.
#![allow(clippy::missing_safety_doc)]

mod abi {
    //! `corosync/cfg.h`'s types and constants, generated at build time.
    #![allow(
        non_camel_case_types,
        non_upper_case_globals,
        non_snake_case,
        dead_code
    )]
    #![allow(clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/cfg.rs"));
}

// The entry points of the functions libcfg.versions tags COROSYNC_CFG_0.82.
include!(concat!(env!("OUT_DIR"), "/versioned.rs"));

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::net::IpAddr;

use abi::*;
use rotor_capi::abi::*;
use rotor_capi::library::Library;
use rotor_capi::{cs_error, guard, result, write_out};
use rotor_client::cfg::{Cfg, CfgEvent, NodeStatusV1, ShutdownFlags};

const _: () = assert!(COROSYNC_CFG_SHUTDOWN_FLAG_REQUEST == 0);
const _: () = assert!(COROSYNC_CFG_SHUTDOWN_FLAG_REGARDLESS == 1);
const _: () = assert!(COROSYNC_CFG_SHUTDOWN_FLAG_IMMEDIATE == 2);

/// Every live cfg handle, each with its shutdown callback.
static HANDLES: Library<Cfg, corosync_cfg_shutdown_callback_t> = Library::new();

/// Copies `s` into a fixed C string field, NUL-terminated, cut to fit.
fn c_string(out: &mut [c_char], s: &str) {
    let n = s.len().min(out.len().saturating_sub(1));
    for (o, b) in out.iter_mut().zip(&s.as_bytes()[..n]) {
        *o = *b as c_char;
    }
    if let Some(end) = out.get_mut(n) {
        *end = 0;
    }
}

/// `corosync_cfg_node_status_v1` as corosync fills it.
fn node_status_v1(s: &NodeStatusV1) -> corosync_cfg_node_status_v1 {
    let mut out = corosync_cfg_node_status_v1 {
        version: CFG_NODE_STATUS_V1,
        nodeid: s.node_id,
        reachable: u8::from(s.reachable),
        remote: u8::from(s.remote),
        external: u8::from(s.external),
        ..Default::default()
    };
    for l in &s.links {
        let Some(slot) = out.link_status.get_mut(usize::from(l.link)) else {
            continue;
        };
        slot.enabled = u8::from(l.enabled);
        slot.connected = u8::from(l.connected);
        slot.dynconnected = u8::from(l.dynconnected);
        slot.mtu = l.mtu;
        c_string(&mut slot.src_ipaddr, &l.src);
        c_string(&mut slot.dst_ipaddr, &l.dst);
    }
    out
}

/// A node address as `corosync_cfg_get_node_addrs` gives it: a `sockaddr_in` or
/// `sockaddr_in6` in `address`, its size in `address_length`.
fn node_address(ip: IpAddr) -> corosync_cfg_node_address_t {
    let mut out = corosync_cfg_node_address_t::default();
    let bytes: Vec<u8> = match ip {
        IpAddr::V4(v4) => {
            // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
            let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
            // SAFETY: viewing a plain-data struct as its bytes.
            unsafe {
                std::slice::from_raw_parts(
                    (&sa as *const libc::sockaddr_in).cast::<u8>(),
                    std::mem::size_of::<libc::sockaddr_in>(),
                )
            }
            .to_vec()
        }
        IpAddr::V6(v6) => {
            // SAFETY: sockaddr_in6 is plain data; all-zero is a valid value.
            let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_addr.s6_addr = v6.octets();
            // SAFETY: viewing a plain-data struct as its bytes.
            unsafe {
                std::slice::from_raw_parts(
                    (&sa as *const libc::sockaddr_in6).cast::<u8>(),
                    std::mem::size_of::<libc::sockaddr_in6>(),
                )
            }
            .to_vec()
        }
    };
    out.address_length = bytes.len() as c_int;
    for (o, b) in out.address.iter_mut().zip(&bytes) {
        *o = *b as c_char;
    }
    out
}

/// A C string the application frees with free(3), or NULL when out of memory.
fn malloc_string(s: &str) -> *mut c_char {
    let bytes = s.as_bytes();
    // SAFETY: malloc of len + 1 bytes, checked for NULL, filled within its size.
    unsafe {
        let p = libc::malloc(bytes.len() + 1).cast::<u8>();
        if !p.is_null() {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
            p.add(bytes.len()).write(0);
        }
        p.cast()
    }
}

/// An array of C strings the application frees (each, then the array) with free(3).
fn malloc_strings(strings: &[String]) -> Option<*mut *mut c_char> {
    // SAFETY: malloc of one pointer per string (at least one), checked for NULL.
    let array = unsafe {
        libc::malloc(std::mem::size_of::<*mut c_char>() * strings.len().max(1))
            .cast::<*mut c_char>()
    };
    if array.is_null() {
        return None;
    }
    for (i, s) in strings.iter().enumerate() {
        let p = malloc_string(s);
        if p.is_null() {
            for j in 0..i {
                // SAFETY: the strings allocated above, and the array.
                unsafe { libc::free(array.add(j).read().cast()) };
            }
            // SAFETY: allocated above.
            unsafe { libc::free(array.cast()) };
            return None;
        }
        // SAFETY: i < strings.len(), within the array.
        unsafe { array.add(i).write(p) };
    }
    Some(array)
}

/// The functions libcfg.versions tags `COROSYNC_CFG_0.82` (entry points generated by the
/// build).
mod versioned {
    use super::*;

    /// `corosync_cfg_initialize`: a handle; `cfg_callbacks` may be NULL (no shutdown
    /// callback).
    pub unsafe extern "C" fn corosync_cfg_initialize(
        cfg_handle: *mut corosync_cfg_handle_t,
        cfg_callbacks: *const corosync_cfg_callbacks_t,
    ) -> cs_error_t {
        guard(|| {
            if cfg_handle.is_null() {
                return CS_ERR_INVALID_PARAM;
            }
            let cfg = match Cfg::initialize() {
                Ok(c) => c,
                Err(e) => return cs_error(&e),
            };
            // SAFETY: NULL or valid, by the API's contract.
            let shutdown_callback =
                unsafe { cfg_callbacks.as_ref() }.and_then(|c| c.corosync_cfg_shutdown_callback);
            let h = HANDLES.initialize(cfg, shutdown_callback);
            // SAFETY: checked not NULL; valid by the API's contract.
            unsafe { cfg_handle.write(h) };
            CS_OK
        })
    }

    /// `corosync_cfg_fd_get`: a descriptor that polls readable while events wait.
    pub unsafe extern "C" fn corosync_cfg_fd_get(
        cfg_handle: corosync_cfg_handle_t,
        selection_fd: *mut i32,
    ) -> cs_error_t {
        // SAFETY: NULL or valid, by the API's contract.
        unsafe { HANDLES.fd_get(cfg_handle, selection_fd) }
    }

    /// `corosync_cfg_dispatch`: runs the shutdown callback of waiting events. ONE waits for
    /// one; BLOCKING waits and runs them until the handle is finalized; ALL runs what waits
    /// now; ONE_NONBLOCKING runs one waiting now (none: `CS_ERR_TRY_AGAIN`).
    pub unsafe extern "C" fn corosync_cfg_dispatch(
        cfg_handle: corosync_cfg_handle_t,
        dispatch_flags: cs_dispatch_flags_t,
    ) -> cs_error_t {
        HANDLES.dispatch(
            cfg_handle,
            dispatch_flags,
            |callback, _| *callback,
            |event, callback| {
                let CfgEvent::ShutdownRequested { flags, .. } = event;
                if let Some(f) = callback {
                    // SAFETY: the application's callback, with what cfg.h promises: the
                    // handle and the request's flags.
                    unsafe { f(cfg_handle, flags.code()) };
                }
                Ok(())
            },
        )
    }

    /// `corosync_cfg_finalize`: closes the connection; a dispatch of another thread sleeping
    /// on the handle wakes and returns `CS_ERR_BAD_HANDLE`.
    pub unsafe extern "C" fn corosync_cfg_finalize(
        cfg_handle: corosync_cfg_handle_t,
    ) -> cs_error_t {
        HANDLES.finalize(cfg_handle, |_| {})
    }

    /// `corosync_cfg_ring_status_get`: one entry per link (rotor has link 0): its name
    /// ("0 <local address>") and its status, one character per configured node in node id
    /// order (`n` this node, `3` connected, `1` not), as corosync on knet; the arrays and
    /// strings are the application's to free(3).
    pub unsafe extern "C" fn corosync_cfg_ring_status_get(
        cfg_handle: corosync_cfg_handle_t,
        interface_names: *mut *mut *mut c_char,
        status: *mut *mut *mut c_char,
        interface_count: *mut c_uint,
    ) -> cs_error_t {
        HANDLES.with(cfg_handle, |c, _| {
            if interface_names.is_null() || status.is_null() || interface_count.is_null() {
                return CS_ERR_INVALID_PARAM;
            }
            let s = match c.status() {
                Ok(s) => s,
                Err(e) => return cs_error(&e),
            };
            let mut nodes = s.nodes.clone();
            nodes.sort_by_key(|n| n.node_id);
            let link: String = nodes
                .iter()
                .map(|n| match (n.node_id == s.node_id, n.connected) {
                    (true, _) => 'n',
                    (false, true) => '3',
                    (false, false) => '1',
                })
                .collect();
            let Some(names) = malloc_strings(&[format!("0 {}", s.local_addr)]) else {
                return CS_ERR_NO_MEMORY;
            };
            let Some(states) = malloc_strings(&[link]) else {
                // SAFETY: allocated just above, one string.
                unsafe {
                    libc::free(names.read().cast());
                    libc::free(names.cast());
                }
                return CS_ERR_NO_MEMORY;
            };
            // SAFETY: checked not NULL; valid by the API's contract.
            unsafe {
                interface_names.write(names);
                status.write(states);
                interface_count.write(1);
            }
            CS_OK
        })
    }

    /// `corosync_cfg_node_status_get`: a configured node's status and links
    /// (`CFG_NODE_STATUS_V1` only); a node not in the nodelist is `CS_ERR_NOT_EXIST`.
    pub unsafe extern "C" fn corosync_cfg_node_status_get(
        cfg_handle: corosync_cfg_handle_t,
        nodeid: c_uint,
        version: corosync_cfg_node_status_version_t,
        node_status: *mut c_void,
    ) -> cs_error_t {
        // corosync checks the arguments before the handle.
        if node_status.is_null() || version != CFG_NODE_STATUS_V1 {
            return CS_ERR_INVALID_PARAM;
        }
        HANDLES.with(cfg_handle, |c, _| match c.node_status_get(nodeid) {
            Ok(s) => {
                // SAFETY: not NULL; for V1 it points to a corosync_cfg_node_status_v1
                // (cfg.h), by the API's contract.
                unsafe {
                    node_status
                        .cast::<corosync_cfg_node_status_v1>()
                        .write(node_status_v1(&s))
                };
                CS_OK
            }
            Err(e) => cs_error(&e),
        })
    }

    /// `corosync_cfg_trackstart`: this handle is asked about every shutdown request (the
    /// shutdown callback) from now on; `track_flags` is unused, as in corosync.
    pub unsafe extern "C" fn corosync_cfg_trackstart(
        cfg_handle: corosync_cfg_handle_t,
        _track_flags: u8,
    ) -> cs_error_t {
        HANDLES.with(cfg_handle, |c, _| result(c.track_start()))
    }

    /// `corosync_cfg_trackstop`.
    pub unsafe extern "C" fn corosync_cfg_trackstop(
        cfg_handle: corosync_cfg_handle_t,
    ) -> cs_error_t {
        HANDLES.with(cfg_handle, |c, _| result(c.track_stop()))
    }
}

/// `corosync_cfg_kill_node`: node `nodeid` leaves the cluster and stops, logging `reason`
/// (under 256 bytes); a node not in the ring is `CS_ERR_NOT_EXIST`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn corosync_cfg_kill_node(
    cfg_handle: corosync_cfg_handle_t,
    nodeid: c_uint,
    reason: *const c_char,
) -> cs_error_t {
    if reason.is_null() {
        return CS_ERR_INVALID_PARAM;
    }
    // SAFETY: not NULL; a C string by the API's contract.
    let reason = unsafe { CStr::from_ptr(reason) };
    // corosync checks the length before the handle.
    if reason.to_bytes().len() >= CS_MAX_NAME_LENGTH as usize {
        return CS_ERR_NAME_TOO_LONG;
    }
    HANDLES.with(cfg_handle, |c, _| {
        result(c.kill_node(nodeid, &reason.to_string_lossy()))
    })
}

/// `corosync_cfg_try_shutdown`: asks for this node's orderly shutdown (REQUEST: every
/// tracking application must agree; REGARDLESS: they are told; IMMEDIATE: at once).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn corosync_cfg_try_shutdown(
    cfg_handle: corosync_cfg_handle_t,
    flags: corosync_cfg_shutdown_flags_t,
) -> cs_error_t {
    let Some(flags) = ShutdownFlags::from_code(flags) else {
        return CS_ERR_INVALID_PARAM;
    };
    HANDLES.with(cfg_handle, |c, _| result(c.try_shutdown(flags)))
}

/// `corosync_cfg_replyto_shutdown`: this application's answer to the shutdown callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn corosync_cfg_replyto_shutdown(
    cfg_handle: corosync_cfg_handle_t,
    flags: corosync_cfg_shutdown_reply_flags_t,
) -> cs_error_t {
    let yes = match flags {
        COROSYNC_CFG_SHUTDOWN_FLAG_YES => true,
        COROSYNC_CFG_SHUTDOWN_FLAG_NO => false,
        _ => return CS_ERR_INVALID_PARAM,
    };
    HANDLES.with(cfg_handle, |c, _| result(c.reply_to_shutdown(yes)))
}

/// `corosync_cfg_get_node_addrs`: node `nodeid`'s addresses (0: this node), up to
/// `max_addrs` of them in `addrs`; `*num_addrs` is how many the node has. A node rotor has
/// no address of is `CS_ERR_EXIST`, as corosync answers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn corosync_cfg_get_node_addrs(
    cfg_handle: corosync_cfg_handle_t,
    nodeid: c_uint,
    max_addrs: usize,
    num_addrs: *mut c_int,
    addrs: *mut corosync_cfg_node_address_t,
) -> cs_error_t {
    HANDLES.with(cfg_handle, |c, _| {
        if num_addrs.is_null() || (addrs.is_null() && max_addrs > 0) {
            return CS_ERR_INVALID_PARAM;
        }
        match c.get_node_addrs(nodeid) {
            Ok(list) => {
                for (i, ip) in list.iter().take(max_addrs).enumerate() {
                    // SAFETY: i < max_addrs entries, valid by the API's contract.
                    unsafe { addrs.add(i).write(node_address(*ip)) };
                }
                // SAFETY: checked not NULL; valid by the API's contract.
                unsafe { num_addrs.write(list.len() as c_int) };
                CS_OK
            }
            Err(e) => cs_error(&e),
        }
    })
}

/// `corosync_cfg_local_get`: this node's id.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn corosync_cfg_local_get(
    handle: corosync_cfg_handle_t,
    local_nodeid: *mut c_uint,
) -> cs_error_t {
    HANDLES.with(handle, |c, _| {
        if local_nodeid.is_null() {
            return CS_ERR_INVALID_PARAM;
        }
        match c.local_get() {
            // SAFETY: checked not NULL; valid by the API's contract.
            Ok(id) => unsafe { write_out(local_nodeid, id) }
                .err()
                .unwrap_or(CS_OK),
            Err(e) => cs_error(&e),
        }
    })
}

/// `corosync_cfg_reload_config`: every node reads its config file again; returns once the
/// reload is applied on every member, or refused (rotord logs why, and cmap's
/// `config.reload_error_message` says it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn corosync_cfg_reload_config(handle: corosync_cfg_handle_t) -> cs_error_t {
    HANDLES.with(handle, |c, _| result(c.reload_config()))
}

/// `corosync_cfg_reopen_log_files`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn corosync_cfg_reopen_log_files(
    handle: corosync_cfg_handle_t,
) -> cs_error_t {
    HANDLES.with(handle, |c, _| result(c.reopen_log_files()))
}
