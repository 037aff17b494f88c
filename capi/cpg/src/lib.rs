//! libcpg.so.4 over rotor: corosync's CPG C API (`corosync/cpg.h`, the ABI's definition) as a
//! thin layer over rotor-client's [`Cpg`]. A handle is an entry of [`HANDLES`] (rotor-capi's
//! `Library`: the lookup, fd, dispatch and finalize every library shares) holding one `Cpg`
//! session; every call looks it up (stale or unknown: `CS_ERR_BAD_HANDLE`), locks it, and
//! maps the client's errors to `cs_error_t` (a full ring to the dataplane is
//! `CS_ERR_TRY_AGAIN`, after a spin of [`MCAST_SPIN`]). Callbacks run only from `cpg_dispatch`, with the handle unlocked, so
//! they may call back into the library (multicast, leave, even finalize: dispatch then
//! returns `CS_ERR_BAD_HANDLE`, as corosync's does).
//!
//! Where rotor differs from corosync, on purpose: a message is one multicast up to
//! [`Cpg::max_message_size`] (1 MiB; `cpg_max_atomic_msgsize_get` says so) and a larger one is
//! `CS_ERR_TOO_BIG` rather than fragments; an empty group name is `CS_ERR_INVALID_PARAM`;
//! output pointers that are NULL are `CS_ERR_INVALID_PARAM` rather than a crash; the flow
//! control state is `CPG_FLOW_CONTROL_ENABLED` from a multicast refused with
//! `CS_ERR_TRY_AGAIN` until one is accepted (corosync 3 always says disabled); zero-copy
//! buffers (`cpg_zcb_*`) are ordinary memory of this process, multicast with one copy.
//!
//! Safety contract of every exported function: pointer arguments are NULL or valid for what
//! `cpg.h` says the function does with them; the library checks NULL, never validity.
#![allow(clippy::missing_safety_doc)]

mod abi {
    //! `corosync/cpg.h`'s types and constants, generated at build time.
    #![allow(
        non_camel_case_types,
        non_upper_case_globals,
        non_snake_case,
        dead_code
    )]
    #![allow(clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/cpg.rs"));
}

// The entry points of the functions libcpg.versions tags COROSYNC_CPG_1.0.
include!(concat!(env!("OUT_DIR"), "/versioned.rs"));

use std::ffi::{c_int, c_uint, c_void};
use std::sync::Mutex;

use abi::*;
use rotor_capi::abi::*;
use rotor_capi::handles::{lock, HandleTable};
use rotor_capi::library::Library;
use rotor_capi::{cs_error, guard, result, write_out, UserPointer};
use rotor_client::cpg::{Cpg, Event, Guarantee, Member, Reason, GROUP_NAME_MAX};

const _: () = assert!(CPG_MAX_NAME_LENGTH as usize == GROUP_NAME_MAX);
const _: () =
    assert!(CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF == rotor_client::cpg::JOIN_INITIAL_TOTEM_CONF);

/// The model v1 callbacks and flags of a handle.
#[derive(Clone, Copy, Default)]
struct Callbacks {
    deliver: cpg_deliver_fn_t,
    confchg: cpg_confchg_fn_t,
    totem_confchg: cpg_totem_confchg_fn_t,
    flags: c_uint,
}

/// What a handle keeps beside its session.
struct State {
    callbacks: Callbacks,
    context: UserPointer,
    /// Iteration handles opened on this handle (finalized with it).
    iterations: Vec<u64>,
    /// Zero-copy buffers handed out and not freed: (address, size).
    zcb: Vec<(usize, usize)>,
    /// A multicast's iovecs gathered into one message.
    gather: Vec<u8>,
}

/// How long a multicast refused room keeps trying (spinning, the handle locked) before it
/// answers `CS_ERR_TRY_AGAIN`, unless an event comes first: the callers poll the fd after a
/// `CS_ERR_TRY_AGAIN`, and room or a delivery that comes within microseconds is cheaper caught
/// by a spin than by a sleep the node must wake (the Rust client's blocking dispatch spins as
/// long before it sleeps). corosync's own multicast waits longer: a round trip to the daemon.
const MCAST_SPIN: std::time::Duration = rotor_capi::library::CPG_DISPATCH_SPIN;

/// Every live cpg handle.
static HANDLES: Library<Cpg, State> = Library::new();

/// One `cpg_iteration_initialize`: the rows it returns, taken at once.
struct Iteration {
    owner: u64,
    rows: Vec<cpg_iteration_description_t>,
    next: usize,
}

static ITERATIONS: HandleTable<Mutex<Iteration>> = HandleTable::new();

/// The group a `cpg_name` names: NULL is `CS_ERR_INVALID_PARAM`, longer than
/// `CPG_MAX_NAME_LENGTH` is `CS_ERR_NAME_TOO_LONG` (corosync's checks).
unsafe fn group_name<'a>(name: *const cpg_name) -> Result<&'a [u8], cs_error_t> {
    // SAFETY: NULL or a valid cpg_name, by the API's contract.
    let Some(name) = (unsafe { name.as_ref() }) else {
        return Err(CS_ERR_INVALID_PARAM);
    };
    let len = name.length as usize;
    if len > name.value.len() {
        return Err(CS_ERR_NAME_TOO_LONG);
    }
    // SAFETY: c_char and u8 have the same size and alignment; `len` is within `value`.
    Ok(unsafe { std::slice::from_raw_parts(name.value.as_ptr().cast::<u8>(), len) })
}

fn to_cpg_name(group: &[u8]) -> cpg_name {
    let mut name = cpg_name::default();
    write_cpg_name(&mut name, group);
    name
}

/// Makes `name` say `group` (at most `CPG_MAX_NAME_LENGTH` bytes), the rest of it zero.
fn write_cpg_name(name: &mut cpg_name, group: &[u8]) {
    let len = group.len().min(name.value.len());
    // SAFETY: c_char and u8 have the same size and alignment.
    let value = unsafe {
        std::slice::from_raw_parts_mut(name.value.as_mut_ptr().cast::<u8>(), name.value.len())
    };
    value[..len].copy_from_slice(&group[..len]);
    value[len..].fill(0);
    name.length = len as u32;
}

/// The group name one dispatch hands its deliver callbacks. A handle's deliveries nearly all
/// name its one group, so the name is written when it changes, not built per delivery: built
/// per delivery (zeroed, copied, then moved) it was half of the dispatch's own time in a
/// profile of a 64 B throughput run.
struct DeliverName(cpg_name);

impl DeliverName {
    fn new() -> DeliverName {
        DeliverName(cpg_name::default())
    }

    /// `group` as a `cpg_name`.
    fn of(&mut self, group: &[u8]) -> &cpg_name {
        let len = group.len().min(self.0.value.len());
        // SAFETY: c_char and u8 have the same size and alignment; `len` is within `value`.
        let held = unsafe { std::slice::from_raw_parts(self.0.value.as_ptr().cast::<u8>(), len) };
        if self.0.length as usize != len || held != &group[..len] {
            write_cpg_name(&mut self.0, group);
        }
        &self.0
    }
}

fn guarantee(g: cpg_guarantee_t) -> Result<Guarantee, cs_error_t> {
    match g {
        CPG_TYPE_UNORDERED | CPG_TYPE_FIFO | CPG_TYPE_AGREED => Ok(Guarantee::Agreed),
        CPG_TYPE_SAFE => Ok(Guarantee::Safe),
        _ => Err(CS_ERR_INVALID_PARAM),
    }
}

fn address(m: Member, reason: Option<Reason>) -> cpg_address {
    cpg_address {
        nodeid: m.node,
        pid: m.pid,
        reason: reason.map_or(CPG_REASON_UNDEFINED, |r| u32::from(r.code())),
    }
}

fn initialize(handle: *mut cpg_handle_t, callbacks: Callbacks, context: *mut c_void) -> cs_error_t {
    if handle.is_null() {
        return CS_ERR_INVALID_PARAM;
    }
    if callbacks.flags & !CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF != 0 {
        return CS_ERR_INVALID_PARAM;
    }
    let cpg = match Cpg::initialize() {
        Ok(c) => c,
        Err(e) => return cs_error(&e),
    };
    let h = HANDLES.initialize(
        cpg,
        State {
            callbacks,
            context: UserPointer(context),
            iterations: Vec::new(),
            zcb: Vec::new(),
            gather: Vec::new(),
        },
    );
    // SAFETY: checked not NULL; valid by the API's contract.
    unsafe { handle.write(h) };
    CS_OK
}

/// The functions libcpg.versions tags `COROSYNC_CPG_1.0` (entry points generated by the build).
mod versioned {
    use super::*;

    /// `cpg_initialize`: a handle with the deliver and confchg callbacks (`callbacks` may be
    /// NULL: no callbacks).
    pub unsafe extern "C" fn cpg_initialize(
        handle: *mut cpg_handle_t,
        callbacks: *mut cpg_callbacks_t,
    ) -> cs_error_t {
        guard(|| {
            // SAFETY: NULL or valid, by the API's contract.
            let cb = unsafe { callbacks.as_ref() }.map_or(Callbacks::default(), |c| Callbacks {
                deliver: c.cpg_deliver_fn,
                confchg: c.cpg_confchg_fn,
                ..Callbacks::default()
            });
            initialize(handle, cb, std::ptr::null_mut())
        })
    }

    /// `cpg_finalize`: closes the session (its group membership ends as "process down",
    /// as corosync reports a finalized handle) and frees the handle's iterations and buffers.
    pub unsafe extern "C" fn cpg_finalize(handle: cpg_handle_t) -> cs_error_t {
        HANDLES.finalize(handle, |state| {
            for it in state.iterations.drain(..) {
                ITERATIONS.remove(it);
            }
            for (addr, _) in state.zcb.drain(..) {
                // SAFETY: allocated by cpg_zcb_alloc with malloc and not freed since.
                unsafe { libc::free(addr as *mut c_void) };
            }
        })
    }

    /// `cpg_fd_get`: a descriptor that polls readable while events wait; dispatch after it.
    pub unsafe extern "C" fn cpg_fd_get(handle: cpg_handle_t, fd: *mut c_int) -> cs_error_t {
        // SAFETY: the API's contract.
        unsafe { HANDLES.fd_get(handle, fd) }
    }

    /// `cpg_dispatch`: runs the callbacks of waiting events. ONE waits for one event,
    /// ONE_NONBLOCKING takes one if there is one (else `CS_ERR_TRY_AGAIN`), ALL takes every
    /// event waiting now, BLOCKING keeps dispatching until the handle is finalized or fails.
    pub unsafe extern "C" fn cpg_dispatch(
        handle: cpg_handle_t,
        dispatch_types: cs_dispatch_flags_t,
    ) -> cs_error_t {
        let mut name = DeliverName::new();
        HANDLES.dispatch(
            handle,
            dispatch_types,
            |s, _| s.callbacks,
            |received, callbacks| run_callback(handle, received, &callbacks, &mut name),
        )
    }

    /// `cpg_join`: joins the group (one per handle); the join shows in a confchg.
    pub unsafe extern "C" fn cpg_join(handle: cpg_handle_t, group: *const cpg_name) -> cs_error_t {
        // SAFETY: the API's contract.
        let name = match unsafe { group_name(group) } {
            Ok(n) => n,
            Err(e) => return e,
        };
        HANDLES.with(handle, |cpg, s| {
            result(cpg.join_with(name, s.callbacks.flags))
        })
    }

    /// `cpg_leave`: leaves the joined group (another group: `CS_ERR_NOT_EXIST`).
    pub unsafe extern "C" fn cpg_leave(handle: cpg_handle_t, group: *const cpg_name) -> cs_error_t {
        // SAFETY: the API's contract.
        let name = match unsafe { group_name(group) } {
            Ok(n) => n,
            Err(e) => return e,
        };
        HANDLES.with(handle, |cpg, _| result(cpg.leave(name)))
    }

    /// `cpg_mcast_joined`: multicasts the iovecs, gathered, as one message to the joined
    /// group. `CS_ERR_TRY_AGAIN`: the ring to the node stayed full for [`MCAST_SPIN`] or a
    /// delivery came to dispatch first; nothing was sent.
    pub unsafe extern "C" fn cpg_mcast_joined(
        handle: cpg_handle_t,
        guarantee: cpg_guarantee_t,
        iovec: *const libc::iovec,
        iov_len: c_uint,
    ) -> cs_error_t {
        HANDLES.with(handle, |cpg, s| {
            let g = match super::guarantee(guarantee) {
                Ok(g) => g,
                Err(e) => return e,
            };
            if iovec.is_null() && iov_len > 0 {
                return CS_ERR_INVALID_PARAM;
            }
            let iovs = if iov_len == 0 {
                &[][..]
            } else {
                // SAFETY: `iov_len` iovecs at `iovec`, by the API's contract.
                unsafe { std::slice::from_raw_parts(iovec, iov_len as usize) }
            };
            let total: usize = iovs.iter().map(|v| v.iov_len).sum();
            if total > cpg.max_message_size() {
                return CS_ERR_TOO_BIG;
            }
            if let [one] = iovs {
                if one.iov_base.is_null() && one.iov_len > 0 {
                    return CS_ERR_INVALID_PARAM;
                }
                // SAFETY: one iovec of `iov_len` readable bytes.
                let data = unsafe { bytes(one.iov_base, one.iov_len) };
                return result(cpg.mcast_spin(g, data, MCAST_SPIN));
            }
            s.gather.clear();
            for v in iovs {
                if v.iov_base.is_null() && v.iov_len > 0 {
                    return CS_ERR_INVALID_PARAM;
                }
                // SAFETY: each iovec points at `iov_len` readable bytes.
                s.gather
                    .extend_from_slice(unsafe { bytes(v.iov_base, v.iov_len) });
            }
            result(cpg.mcast_spin(g, &s.gather, MCAST_SPIN))
        })
    }

    /// `cpg_membership_get`: the group's members as this node has delivered them, at most
    /// `CPG_MEMBERS_MAX` (the array size cpg.h documents).
    pub unsafe extern "C" fn cpg_membership_get(
        handle: cpg_handle_t,
        group: *mut cpg_name,
        member_list: *mut cpg_address,
        member_list_entries: *mut c_int,
    ) -> cs_error_t {
        // SAFETY: the API's contract.
        let name = match unsafe { group_name(group) } {
            Ok(n) => n,
            Err(e) => return e,
        };
        if member_list.is_null() || member_list_entries.is_null() {
            return CS_ERR_INVALID_PARAM;
        }
        HANDLES.with(handle, |cpg, _| {
            match cpg.membership(name) {
                Ok(members) => {
                    let n = members.len().min(CPG_MEMBERS_MAX as usize);
                    for (i, m) in members.iter().take(n).enumerate() {
                        // SAFETY: the caller's array holds CPG_MEMBERS_MAX entries.
                        unsafe { member_list.add(i).write(address(*m, None)) };
                    }
                    // SAFETY: checked not NULL.
                    unsafe { member_list_entries.write(n as c_int) };
                    CS_OK
                }
                Err(e) => cs_error(&e),
            }
        })
    }

    /// `cpg_context_get`: the pointer given to `cpg_context_set` or `cpg_model_initialize`.
    pub unsafe extern "C" fn cpg_context_get(
        handle: cpg_handle_t,
        context: *mut *mut c_void,
    ) -> cs_error_t {
        HANDLES.with(handle, |_, s| {
            // SAFETY: the API's contract.
            unsafe { write_out(context, s.context.0) }
                .err()
                .unwrap_or(CS_OK)
        })
    }

    /// `cpg_context_set`: keeps an application pointer with the handle.
    pub unsafe extern "C" fn cpg_context_set(
        handle: cpg_handle_t,
        context: *mut c_void,
    ) -> cs_error_t {
        HANDLES.with(handle, |_, s| {
            s.context = UserPointer(context);
            CS_OK
        })
    }

    /// `cpg_zcb_alloc`: a buffer of `size` bytes for `cpg_zcb_mcast_joined`.
    pub unsafe extern "C" fn cpg_zcb_alloc(
        handle: cpg_handle_t,
        size: usize,
        buffer: *mut *mut c_void,
    ) -> cs_error_t {
        if buffer.is_null() {
            return CS_ERR_INVALID_PARAM;
        }
        HANDLES.with(handle, |_, s| {
            // SAFETY: malloc of at least one byte; checked for NULL.
            let p = unsafe { libc::malloc(size.max(1)) };
            if p.is_null() {
                return CS_ERR_NO_MEMORY;
            }
            s.zcb.push((p as usize, size));
            // SAFETY: checked not NULL.
            unsafe { buffer.write(p) };
            CS_OK
        })
    }

    /// `cpg_zcb_free`: frees a buffer of `cpg_zcb_alloc` (any other pointer:
    /// `CS_ERR_INVALID_PARAM`, nothing freed).
    pub unsafe extern "C" fn cpg_zcb_free(handle: cpg_handle_t, buffer: *mut c_void) -> cs_error_t {
        HANDLES.with(handle, |_, s| {
            match s.zcb.iter().position(|(a, _)| *a == buffer as usize) {
                Some(i) => {
                    s.zcb.swap_remove(i);
                    // SAFETY: allocated by cpg_zcb_alloc with malloc and not freed since.
                    unsafe { libc::free(buffer) };
                    CS_OK
                }
                None => CS_ERR_INVALID_PARAM,
            }
        })
    }
}

/// # Safety
/// `len` bytes at `base` are readable (or `len` is 0).
unsafe fn bytes<'a>(base: *const c_void, len: usize) -> &'a [u8] {
    if len == 0 {
        return &[];
    }
    // SAFETY: the caller's promise.
    unsafe { std::slice::from_raw_parts(base.cast::<u8>(), len) }
}

/// Calls the application's callback for one event (none registered: the event is dropped,
/// as corosync does).
fn run_callback(
    handle: cpg_handle_t,
    received: &mut rotor_client::cpg::Received,
    cb: &Callbacks,
    name: &mut DeliverName,
) -> Result<(), cs_error_t> {
    let start = received.record_start() as usize;
    // Deliveries, nearly every event, are read as the few fields they have: moving the whole
    // decoded event about cost this dispatch more than the application's own callback
    // (a profile of a 64 B throughput run).
    if let Some(d) = received.delivery().map_err(|e| cs_error(&e))? {
        let Some(deliver) = cb.deliver else {
            return Ok(());
        };
        let name = name.of(d.group);
        let (offset, len) = (d.data.as_ptr() as usize - start, d.data.len());
        let (node, pid) = (d.sender.node, d.sender.pid);
        let msg = received.record_mut()[offset..offset + len].as_mut_ptr();
        // SAFETY: the application's callback, called with what cpg.h promises it: a valid
        // group name and `len` writable bytes that live until it returns.
        unsafe { deliver(handle, name, node, pid, msg.cast(), len) };
        return Ok(());
    }
    let event = received.event().map_err(|e| cs_error(&e))?;
    match event {
        // Read above.
        Event::Deliver { .. } => {}
        Event::ConfChg {
            group,
            members,
            joined,
            left,
        } => {
            let Some(confchg) = cb.confchg else {
                return Ok(());
            };
            let name = to_cpg_name(group);
            let members: Vec<cpg_address> = members.iter().map(|m| address(*m, None)).collect();
            let left: Vec<cpg_address> = left.iter().map(|(m, r)| address(*m, Some(*r))).collect();
            let joined: Vec<cpg_address> =
                joined.iter().map(|(m, r)| address(*m, Some(*r))).collect();
            // SAFETY: the application's callback; the lists live until it returns.
            unsafe {
                confchg(
                    handle,
                    &name,
                    members.as_ptr(),
                    members.len(),
                    left.as_ptr(),
                    left.len(),
                    joined.as_ptr(),
                    joined.len(),
                )
            };
        }
        Event::TotemConfChg {
            ring_rep,
            ring_seq,
            members,
        } => {
            let Some(totem) = cb.totem_confchg else {
                return Ok(());
            };
            let ring = cpg_ring_id {
                nodeid: ring_rep,
                seq: ring_seq,
            };
            // SAFETY: the application's callback; the list lives until it returns.
            unsafe { totem(handle, ring, members.len() as u32, members.as_ptr()) };
        }
        Event::Reply { .. } | Event::Welcome { .. } => {}
    }
    Ok(())
}

/// `cpg_model_initialize`: a handle with the model v1 callbacks (deliver, confchg,
/// totem_confchg) and flags, and a context pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cpg_model_initialize(
    handle: *mut cpg_handle_t,
    model: cpg_model_t,
    model_data: *mut cpg_model_data_t,
    context: *mut c_void,
) -> cs_error_t {
    guard(|| {
        if model != CPG_MODEL_V1 {
            return CS_ERR_INVALID_PARAM;
        }
        let cb = if model_data.is_null() {
            Callbacks::default()
        } else {
            // SAFETY: with model CPG_MODEL_V1, `model_data` is a cpg_model_v1_data_t.
            let v1 = unsafe { &*model_data.cast::<cpg_model_v1_data_t>() };
            Callbacks {
                deliver: v1.cpg_deliver_fn,
                confchg: v1.cpg_confchg_fn,
                totem_confchg: v1.cpg_totem_confchg_fn,
                flags: v1.flags,
            }
        };
        initialize(handle, cb, context)
    })
}

/// `cpg_max_atomic_msgsize_get`: the largest message one multicast takes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cpg_max_atomic_msgsize_get(
    handle: cpg_handle_t,
    size: *mut u32,
) -> cs_error_t {
    HANDLES.with(handle, |cpg, _| {
        let max = cpg.max_message_size() as u32;
        // SAFETY: the API's contract.
        unsafe { write_out(size, max) }.err().unwrap_or(CS_OK)
    })
}

/// `cpg_local_get`: this node's id.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cpg_local_get(
    handle: cpg_handle_t,
    local_nodeid: *mut c_uint,
) -> cs_error_t {
    HANDLES.with(handle, |cpg, _| {
        let id = cpg.local_node_id();
        // SAFETY: the API's contract.
        unsafe { write_out(local_nodeid, id) }
            .err()
            .unwrap_or(CS_OK)
    })
}

/// `cpg_flow_control_state_get`: enabled while multicasts are refused for want of room.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cpg_flow_control_state_get(
    handle: cpg_handle_t,
    state: *mut cpg_flow_control_state_t,
) -> cs_error_t {
    HANDLES.with(handle, |cpg, _| {
        let v = if cpg.flow_control_enabled() {
            CPG_FLOW_CONTROL_ENABLED
        } else {
            CPG_FLOW_CONTROL_DISABLED
        };
        // SAFETY: the API's contract.
        unsafe { write_out(state, v) }.err().unwrap_or(CS_OK)
    })
}

/// `cpg_zcb_mcast_joined`: multicasts `msg_len` bytes of a `cpg_zcb_alloc` buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cpg_zcb_mcast_joined(
    handle: cpg_handle_t,
    guarantee: cpg_guarantee_t,
    msg: *mut c_void,
    msg_len: usize,
) -> cs_error_t {
    HANDLES.with(handle, |cpg, s| {
        let g = match self::guarantee(guarantee) {
            Ok(g) => g,
            Err(e) => return e,
        };
        let Some(&(_, size)) = s.zcb.iter().find(|(a, _)| *a == msg as usize) else {
            return CS_ERR_INVALID_PARAM;
        };
        if msg_len > cpg.max_message_size() {
            return CS_ERR_TOO_BIG;
        }
        if msg_len > size {
            return CS_ERR_INVALID_PARAM;
        }
        // SAFETY: a live zcb buffer of `size` ≥ `msg_len` bytes.
        let data = unsafe { bytes(msg, msg_len) };
        result(cpg.mcast_spin(g, data, MCAST_SPIN))
    })
}

/// `cpg_iteration_initialize`: the cluster's groups (NAME_ONLY: one row per group), one
/// group's members (ONE_GROUP) or every group's members (ALL), read now.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cpg_iteration_initialize(
    handle: cpg_handle_t,
    iteration_type: cpg_iteration_type_t,
    group: *const cpg_name,
    iteration_handle: *mut cpg_iteration_handle_t,
) -> cs_error_t {
    let only = if group.is_null() {
        None
    } else {
        // SAFETY: the API's contract.
        match unsafe { group_name(group) } {
            Ok(n) => Some(n),
            Err(e) => return e,
        }
    };
    if iteration_handle.is_null()
        || (iteration_type == CPG_ITERATION_ONE_GROUP) != only.is_some()
        || !matches!(
            iteration_type,
            CPG_ITERATION_NAME_ONLY | CPG_ITERATION_ONE_GROUP | CPG_ITERATION_ALL
        )
    {
        return CS_ERR_INVALID_PARAM;
    }
    HANDLES.with(handle, |cpg, s| {
        let groups = match cpg.groups() {
            Ok(g) => g,
            Err(e) => return cs_error(&e),
        };
        let mut rows = Vec::new();
        for (g, members) in &groups {
            if only.is_some_and(|o| o != g.as_slice()) {
                continue;
            }
            let row = |m: Option<&Member>| cpg_iteration_description_t {
                group: to_cpg_name(g),
                nodeid: m.map_or(0, |m| m.node),
                pid: m.map_or(0, |m| m.pid),
            };
            if iteration_type == CPG_ITERATION_NAME_ONLY {
                rows.push(row(None));
            } else {
                rows.extend(members.iter().map(|m| row(Some(m))));
            }
        }
        let it = ITERATIONS.insert(Mutex::new(Iteration {
            owner: handle,
            rows,
            next: 0,
        }));
        s.iterations.push(it);
        // SAFETY: checked not NULL.
        unsafe { iteration_handle.write(it) };
        CS_OK
    })
}

/// `cpg_iteration_next`: the next row; `CS_ERR_NO_SECTIONS` after the last.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cpg_iteration_next(
    iteration_handle: cpg_iteration_handle_t,
    description: *mut cpg_iteration_description_t,
) -> cs_error_t {
    guard(|| {
        if description.is_null() {
            return CS_ERR_INVALID_PARAM;
        }
        let Some(it) = ITERATIONS.get(iteration_handle) else {
            return CS_ERR_BAD_HANDLE;
        };
        let mut it = lock(&it);
        if !HANDLES.contains(it.owner) {
            return CS_ERR_BAD_HANDLE;
        }
        let Some(row) = it.rows.get(it.next).copied() else {
            return CS_ERR_NO_SECTIONS;
        };
        it.next += 1;
        // SAFETY: checked not NULL; valid by the API's contract.
        unsafe { description.write(row) };
        CS_OK
    })
}

/// `cpg_iteration_finalize`: ends an iteration.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cpg_iteration_finalize(
    iteration_handle: cpg_iteration_handle_t,
) -> cs_error_t {
    guard(|| {
        let Some(it) = ITERATIONS.remove(iteration_handle) else {
            return CS_ERR_BAD_HANDLE;
        };
        let owner = lock(&it).owner;
        // The owner finalized meanwhile (BAD_HANDLE) has no list left to update.
        let _ = HANDLES.with(owner, |_, s| {
            s.iterations.retain(|i| *i != iteration_handle);
            CS_OK
        });
        CS_OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(name: &cpg_name) -> Vec<u8> {
        name.value.iter().map(|&c| c as u8).collect()
    }

    #[test]
    fn a_deliver_name_says_each_group_in_turn_with_nothing_left_of_the_last() {
        let mut name = DeliverName::new();
        let expect = |group: &[u8]| {
            let mut v = group.to_vec();
            v.resize(CPG_MAX_NAME_LENGTH as usize, 0);
            (group.len() as u32, v)
        };
        for group in [
            &b"long-group-name"[..],
            b"long",
            b"long",
            b"",
            b"other",
            b"long",
        ] {
            let n = name.of(group);
            assert_eq!((n.length, value(n)), expect(group), "{group:?}");
        }
        // Longer than a cpg_name holds: cut at its length, as every name libcpg hands out.
        let long = vec![b'x'; 200];
        let n = name.of(&long);
        assert_eq!((n.length, value(n)), expect(&long[..128]));
    }
}
