//! libvotequorum.so.8 over rotor: corosync's votequorum C API (`corosync/votequorum.h`, the
//! ABI's definition, as Debian's corosync 3.1.7 ships it) as a thin layer over rotor-client's
//! [`Votequorum`], served by rotord. Handles are hdb-style entries of [`HANDLES`] (rotor-capi's
//! `Library`; stale or unknown: `CS_ERR_BAD_HANDLE`); the quorum, expected votes and nodelist callbacks run only
//! from `votequorum_dispatch`, with the handle unlocked, so they may call the library,
//! finalize included (dispatch then returns `CS_ERR_BAD_HANDLE`, as corosync's).
//!
//! A quorum device name is checked as corosync checks it (empty, or
//! `VOTEQUORUM_QDEVICE_MAX_NAME_LEN` bytes or longer: `CS_ERR_INVALID_PARAM`). Where rotor
//! differs from corosync: NULL pointers (`handle`, `info`, `fd`, `context`, a device name) are
//! `CS_ERR_INVALID_PARAM` rather than a crash, and a device name must be UTF-8 (else
//! `CS_ERR_INVALID_PARAM`).
//!
//! Safety contract of every exported function: pointer arguments are NULL or valid for what
//! `votequorum.h` says the function does with them; names are NUL-terminated.
#![allow(clippy::missing_safety_doc)]

mod abi {
    //! `corosync/votequorum.h`'s types and constants, generated at build time.
    #![allow(
        non_camel_case_types,
        non_upper_case_globals,
        non_snake_case,
        dead_code
    )]
    #![allow(clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/votequorum.rs"));
}

// The entry points of the functions libvotequorum.versions tags COROSYNC_VOTEQUORUM_1.0.
include!(concat!(env!("OUT_DIR"), "/versioned.rs"));

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};

use abi::*;
use rotor_capi::abi::*;
use rotor_capi::library::Library;
use rotor_capi::{cs_error, guard, result, write_out, UserPointer};
use rotor_client::votequorum as vq;
use rotor_client::votequorum::{Info, Notification, RingId, Votequorum};

// The constants rotor-proto carries are the header's.
const _: () = {
    assert!(VOTEQUORUM_INFO_TWONODE == vq::INFO_TWONODE);
    assert!(VOTEQUORUM_INFO_QUORATE == vq::INFO_QUORATE);
    assert!(VOTEQUORUM_INFO_WAIT_FOR_ALL == vq::INFO_WAIT_FOR_ALL);
    assert!(VOTEQUORUM_INFO_LAST_MAN_STANDING == vq::INFO_LAST_MAN_STANDING);
    assert!(VOTEQUORUM_INFO_AUTO_TIE_BREAKER == vq::INFO_AUTO_TIE_BREAKER);
    assert!(VOTEQUORUM_INFO_ALLOW_DOWNSCALE == vq::INFO_ALLOW_DOWNSCALE);
    assert!(VOTEQUORUM_INFO_QDEVICE_REGISTERED == vq::INFO_QDEVICE_REGISTERED);
    assert!(VOTEQUORUM_INFO_QDEVICE_ALIVE == vq::INFO_QDEVICE_ALIVE);
    assert!(VOTEQUORUM_INFO_QDEVICE_CAST_VOTE == vq::INFO_QDEVICE_CAST_VOTE);
    assert!(VOTEQUORUM_INFO_QDEVICE_MASTER_WINS == vq::INFO_QDEVICE_MASTER_WINS);
    assert!(VOTEQUORUM_NODESTATE_MEMBER == vq::NODESTATE_MEMBER);
    assert!(VOTEQUORUM_NODESTATE_DEAD == vq::NODESTATE_DEAD);
    assert!(VOTEQUORUM_NODESTATE_LEAVING == vq::NODESTATE_LEAVING);
    assert!(VOTEQUORUM_QDEVICE_NODEID == vq::QDEVICE_NODEID);
    assert!(VOTEQUORUM_QDEVICE_MAX_NAME_LEN as usize == vq::QDEVICE_NAME_MAX);
    assert!(CS_TRACK_CURRENT == vq::TRACK_CURRENT);
    assert!(CS_TRACK_CHANGES == vq::TRACK_CHANGES);
    assert!(CS_TRACK_CHANGES_ONLY == vq::TRACK_CHANGES_ONLY);
    // votequorum_node_t is handed to the callback as a list of (nodeid, state) pairs.
    assert!(std::mem::size_of::<votequorum_node_t>() == 8);
};

/// What a handle keeps beside its connection.
struct State {
    callbacks: votequorum_callbacks_t,
    context: UserPointer,
}

/// Every live votequorum handle.
static HANDLES: Library<Votequorum, State> = Library::new();

/// A quorum device name from C, checked as corosync checks it: NULL, empty,
/// `VOTEQUORUM_QDEVICE_MAX_NAME_LEN` bytes or longer, or not UTF-8: `CS_ERR_INVALID_PARAM`.
unsafe fn device_name<'a>(name: *const c_char) -> Result<&'a str, cs_error_t> {
    if name.is_null() {
        return Err(CS_ERR_INVALID_PARAM);
    }
    // SAFETY: a NUL-terminated string, by the API's contract.
    let name = unsafe { CStr::from_ptr(name) }.to_bytes();
    if name.is_empty() || name.len() >= VOTEQUORUM_QDEVICE_MAX_NAME_LEN as usize {
        return Err(CS_ERR_INVALID_PARAM);
    }
    std::str::from_utf8(name).map_err(|_| CS_ERR_INVALID_PARAM)
}

/// Runs `f` with the checked device name `name` on the live handle `handle`.
unsafe fn with_device(
    handle: votequorum_handle_t,
    name: *const c_char,
    f: impl FnOnce(&mut Votequorum, &str) -> cs_error_t,
) -> cs_error_t {
    // SAFETY: forwards the caller's contract.
    match unsafe { device_name(name) } {
        Ok(name) => HANDLES.with(handle, |v, _| f(v, name)),
        Err(e) => e,
    }
}

/// `votequorum_info` as corosync fills it: the name NUL-terminated, the rest of it zero.
fn c_info(info: &Info) -> votequorum_info {
    let mut c = votequorum_info {
        node_id: info.node_id,
        node_state: info.node_state,
        node_votes: info.node_votes,
        node_expected_votes: info.node_expected_votes,
        highest_expected: info.highest_expected,
        total_votes: info.total_votes,
        quorum: info.quorum,
        flags: info.flags,
        qdevice_votes: info.qdevice_votes,
        qdevice_name: [0; VOTEQUORUM_QDEVICE_MAX_NAME_LEN as usize],
    };
    let name = info.qdevice_name.as_bytes();
    // One byte is left for the terminator (rotor-proto bounds the name the same way).
    let n = name.len().min(c.qdevice_name.len() - 1);
    for (d, s) in c.qdevice_name.iter_mut().zip(&name[..n]) {
        *d = *s as c_char;
    }
    c
}

/// The functions libvotequorum.versions tags `COROSYNC_VOTEQUORUM_1.0` (entry points
/// generated by the build).
mod versioned {
    use super::*;

    /// `votequorum_initialize`: a handle with the callbacks (`callbacks` may be NULL: none).
    pub unsafe extern "C" fn votequorum_initialize(
        handle: *mut votequorum_handle_t,
        callbacks: *mut votequorum_callbacks_t,
    ) -> cs_error_t {
        guard(|| {
            if handle.is_null() {
                return CS_ERR_INVALID_PARAM;
            }
            // SAFETY: NULL or valid, by the API's contract.
            let callbacks = unsafe { callbacks.as_ref() }.copied().unwrap_or_default();
            let votequorum = match Votequorum::initialize() {
                Ok(v) => v,
                Err(e) => return cs_error(&e),
            };
            let h = HANDLES.initialize(
                votequorum,
                State {
                    callbacks,
                    context: UserPointer::default(),
                },
            );
            // SAFETY: checked not NULL; valid by the API's contract.
            unsafe { handle.write(h) };
            CS_OK
        })
    }

    /// `votequorum_finalize`: closes the connection (its tracking ends with it); a dispatch
    /// of another thread sleeping on the handle wakes and returns `CS_ERR_BAD_HANDLE`.
    pub unsafe extern "C" fn votequorum_finalize(handle: votequorum_handle_t) -> cs_error_t {
        HANDLES.finalize(handle, |_| {})
    }

    /// `votequorum_getinfo`: node `nodeid`'s votes and the cluster's as this node sees them
    /// (0: this node); a node votequorum does not know: `CS_ERR_NOT_EXIST`.
    pub unsafe extern "C" fn votequorum_getinfo(
        handle: votequorum_handle_t,
        nodeid: c_uint,
        info: *mut votequorum_info,
    ) -> cs_error_t {
        HANDLES.with(handle, |v, _| {
            if info.is_null() {
                return CS_ERR_INVALID_PARAM;
            }
            match v.getinfo(nodeid) {
                // SAFETY: checked not NULL; valid by the API's contract.
                Ok(i) => unsafe { write_out(info, c_info(&i)) }
                    .err()
                    .unwrap_or(CS_OK),
                Err(e) => cs_error(&e),
            }
        })
    }

    /// `votequorum_setexpected`: refused (`CS_ERR_INVALID_PARAM`) below the votes present or
    /// where a quorate cluster would lose quorum.
    pub unsafe extern "C" fn votequorum_setexpected(
        handle: votequorum_handle_t,
        expected_votes: c_uint,
    ) -> cs_error_t {
        HANDLES.with(handle, |v, _| result(v.setexpected(expected_votes)))
    }

    /// `votequorum_setvotes`: node `nodeid`'s votes (0: this node).
    pub unsafe extern "C" fn votequorum_setvotes(
        handle: votequorum_handle_t,
        nodeid: c_uint,
        votes: c_uint,
    ) -> cs_error_t {
        HANDLES.with(handle, |v, _| result(v.setvotes(nodeid, votes)))
    }

    /// `votequorum_trackstart`: `CS_TRACK_CURRENT`, `CS_TRACK_CHANGES`,
    /// `CS_TRACK_CHANGES_ONLY`; `context` comes back with every notification; already
    /// tracking: `CS_ERR_EXIST`.
    pub unsafe extern "C" fn votequorum_trackstart(
        handle: votequorum_handle_t,
        context: u64,
        flags: c_uint,
    ) -> cs_error_t {
        HANDLES.with(handle, |v, _| result(v.trackstart(context, flags)))
    }

    /// `votequorum_trackstop`: not tracking: `CS_ERR_NOT_EXIST`.
    pub unsafe extern "C" fn votequorum_trackstop(handle: votequorum_handle_t) -> cs_error_t {
        HANDLES.with(handle, |v, _| result(v.trackstop()))
    }

    /// `votequorum_context_get`.
    pub unsafe extern "C" fn votequorum_context_get(
        handle: votequorum_handle_t,
        context: *mut *mut c_void,
    ) -> cs_error_t {
        HANDLES.with(handle, |_, s| {
            // SAFETY: NULL or valid, by the API's contract; write_out checks NULL.
            unsafe { write_out(context, s.context.0) }
                .err()
                .unwrap_or(CS_OK)
        })
    }

    /// `votequorum_context_set`.
    pub unsafe extern "C" fn votequorum_context_set(
        handle: votequorum_handle_t,
        context: *mut c_void,
    ) -> cs_error_t {
        HANDLES.with(handle, |_, s| {
            s.context = UserPointer(context);
            CS_OK
        })
    }

    /// `votequorum_qdevice_register`: this node's quorum device `name`, answered once the
    /// registration is ordered in the cluster.
    pub unsafe extern "C" fn votequorum_qdevice_register(
        handle: votequorum_handle_t,
        name: *const c_char,
    ) -> cs_error_t {
        // SAFETY: forwards the caller's contract.
        unsafe { with_device(handle, name, |v, name| result(v.qdevice_register(name))) }
    }

    /// `votequorum_qdevice_unregister`.
    pub unsafe extern "C" fn votequorum_qdevice_unregister(
        handle: votequorum_handle_t,
        name: *const c_char,
    ) -> cs_error_t {
        // SAFETY: forwards the caller's contract.
        unsafe { with_device(handle, name, |v, name| result(v.qdevice_unregister(name))) }
    }

    /// `votequorum_qdevice_poll`: the device is alive and casts its vote (or not) for the
    /// ring `ring_id` (the last nodelist notification's); an older ring: `CS_ERR_MESSAGE_ERROR`.
    pub unsafe extern "C" fn votequorum_qdevice_poll(
        handle: votequorum_handle_t,
        name: *const c_char,
        cast_vote: c_uint,
        ring_id: votequorum_ring_id_t,
    ) -> cs_error_t {
        let ring = RingId {
            nodeid: ring_id.nodeid,
            seq: ring_id.seq,
        };
        // SAFETY: forwards the caller's contract.
        unsafe {
            with_device(handle, name, |v, name| {
                result(v.qdevice_poll(name, cast_vote != 0, ring))
            })
        }
    }
}

/// `votequorum_fd_get`: a descriptor that polls readable while notifications wait.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn votequorum_fd_get(
    handle: votequorum_handle_t,
    fd: *mut c_int,
) -> cs_error_t {
    // SAFETY: NULL or valid, by the API's contract.
    unsafe { HANDLES.fd_get(handle, fd) }
}

/// `votequorum_dispatch`: runs the callbacks of waiting notifications. ONE waits for one and
/// runs it; BLOCKING waits and runs them until the handle is finalized; ALL runs what waits
/// now; ONE_NONBLOCKING runs one waiting now (none: `CS_ERR_TRY_AGAIN`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn votequorum_dispatch(
    handle: votequorum_handle_t,
    dispatch_types: cs_dispatch_flags_t,
) -> cs_error_t {
    HANDLES.dispatch(
        handle,
        dispatch_types,
        |s, _| s.callbacks,
        |n, callbacks| {
            notify(handle, n, &callbacks);
            Ok(())
        },
    )
}

/// `votequorum_qdevice_update`: renames the registered device `oldname` to `newname`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn votequorum_qdevice_update(
    handle: votequorum_handle_t,
    oldname: *const c_char,
    newname: *const c_char,
) -> cs_error_t {
    // SAFETY: the API's contract.
    let new = match unsafe { device_name(newname) } {
        Ok(n) => n,
        Err(e) => return e,
    };
    // SAFETY: forwards the caller's contract.
    unsafe { with_device(handle, oldname, |v, old| result(v.qdevice_update(old, new))) }
}

/// `votequorum_qdevice_master_wins`: whether the device's vote alone decides a tie.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn votequorum_qdevice_master_wins(
    handle: votequorum_handle_t,
    name: *const c_char,
    allow: c_uint,
) -> cs_error_t {
    // SAFETY: forwards the caller's contract.
    unsafe {
        with_device(handle, name, |v, name| {
            result(v.qdevice_master_wins(name, allow != 0))
        })
    }
}

/// Runs the application's callback for `n`, if it has one for it.
fn notify(handle: votequorum_handle_t, n: &mut Notification, callbacks: &votequorum_callbacks_t) {
    match n {
        Notification::Quorum {
            context,
            quorate,
            nodes,
        } => {
            let Some(f) = callbacks.votequorum_quorum_notify_fn else {
                return;
            };
            let mut list: Vec<votequorum_node_t> = nodes
                .iter()
                .map(|&(nodeid, state)| votequorum_node_t { nodeid, state })
                .collect();
            // SAFETY: the application's callback, with what votequorum.h promises: the
            // list's length and its entries, alive until it returns.
            unsafe {
                f(
                    handle,
                    *context,
                    u32::from(*quorate),
                    list.len() as u32,
                    list.as_mut_ptr(),
                )
            }
        }
        Notification::Nodelist {
            context,
            ring,
            nodes,
        } => {
            let Some(f) = callbacks.votequorum_nodelist_notify_fn else {
                return;
            };
            let ring_id = votequorum_ring_id_t {
                nodeid: ring.nodeid,
                seq: ring.seq,
            };
            // SAFETY: as above.
            unsafe {
                f(
                    handle,
                    *context,
                    ring_id,
                    nodes.len() as u32,
                    nodes.as_mut_ptr(),
                )
            }
        }
        Notification::ExpectedVotes {
            context,
            expected_votes,
        } => {
            let Some(f) = callbacks.votequorum_expectedvotes_notify_fn else {
                return;
            };
            // SAFETY: the application's callback.
            unsafe { f(handle, *context, *expected_votes) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_are_checked_as_corosync_checks_them() {
        // SAFETY: NUL-terminated literals.
        unsafe {
            assert_eq!(device_name(c"Qdevice".as_ptr()), Ok("Qdevice"));
            assert_eq!(device_name(c"".as_ptr()), Err(CS_ERR_INVALID_PARAM));
            assert_eq!(device_name(std::ptr::null()), Err(CS_ERR_INVALID_PARAM));
            let long = std::ffi::CString::new("q".repeat(254)).unwrap();
            assert_eq!(device_name(long.as_ptr()), Ok("q".repeat(254).as_str()));
            let too_long = std::ffi::CString::new("q".repeat(255)).unwrap();
            assert_eq!(device_name(too_long.as_ptr()), Err(CS_ERR_INVALID_PARAM));
        }
    }

    #[test]
    fn info_names_are_terminated() {
        let info = Info {
            node_id: 3,
            qdevice_name: "Qdevice".into(),
            ..Info::default()
        };
        let c = c_info(&info);
        assert_eq!(c.node_id, 3);
        // SAFETY: c_info terminates the name.
        let name = unsafe { CStr::from_ptr(c.qdevice_name.as_ptr()) };
        assert_eq!(name.to_bytes(), b"Qdevice");
        let long = Info {
            qdevice_name: "q".repeat(300),
            ..Info::default()
        };
        assert_eq!(*c_info(&long).qdevice_name.last().unwrap(), 0);
    }
}
