//! What rotor's C libraries (`capi/*`) share: corosync's common C types (`abi`, generated
//! from `corosync/corotypes.h`), hdb-style handle tables, a handle library's shared calls
//! (`library`: lookup, fd, dispatch, finalize), `cs_error_t` results from the Rust client's
//! errors, and the guard every exported function runs in so that no Rust panic unwinds into C.

pub mod abi;
pub mod handles;
pub mod library;

use std::panic::{catch_unwind, AssertUnwindSafe};

pub use abi::cs_error_t;
use rotor_client::Error;
use rotor_proto::Status;

/// corosync's result of a failed client call.
pub fn cs_error(e: &Error) -> cs_error_t {
    match e {
        Error::Attach(ipc_shm::AttachError::PermissionDenied { .. }) => abi::CS_ERR_ACCESS,
        Error::Attach(_) | Error::Session(_) => abi::CS_ERR_LIBRARY,
        Error::TryAgain => abi::CS_ERR_TRY_AGAIN,
        Error::Timeout => abi::CS_ERR_TIMEOUT,
        Error::Status(s) | Error::Refused { status: s, .. } => status(*s),
        Error::Protocol(_) | Error::Decode(_) => abi::CS_ERR_LIBRARY,
    }
}

/// A rotor status as `cs_error_t`: the numbers are corosync's (rotor-proto keeps them so).
pub fn status(s: Status) -> cs_error_t {
    s.code() as cs_error_t
}

/// `CS_OK`, or the error of a failed call.
pub fn result(r: Result<(), Error>) -> cs_error_t {
    match r {
        Ok(()) => abi::CS_OK,
        Err(e) => cs_error(&e),
    }
}

/// Runs the body of an exported function: a panic (a bug of ours) becomes `CS_ERR_LIBRARY`
/// instead of unwinding into C, which would abort the application.
pub fn guard(body: impl FnOnce() -> cs_error_t) -> cs_error_t {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(abi::CS_ERR_LIBRARY)
}

/// An application's opaque pointer, kept for it (context, callback data): never dereferenced
/// here, only handed back.
#[derive(Clone, Copy, Debug)]
pub struct UserPointer(pub *mut std::ffi::c_void);

impl Default for UserPointer {
    fn default() -> Self {
        UserPointer(std::ptr::null_mut())
    }
}

// SAFETY: the pointer is only stored and returned to the application, never dereferenced
// by the library; what it points to is the application's to synchronise.
unsafe impl Send for UserPointer {}

/// Writes `value` through an output pointer of the application, or says it was NULL.
///
/// # Safety
/// `out` is NULL or valid for a write of `T` (the C API's contract).
pub unsafe fn write_out<T>(out: *mut T, value: T) -> Result<(), cs_error_t> {
    if out.is_null() {
        return Err(abi::CS_ERR_INVALID_PARAM);
    }
    // SAFETY: not NULL, and valid for writes by the caller's contract.
    unsafe { out.write(value) };
    Ok(())
}

/// Waits until `fds[0]` is readable or `fds[1]` (the session's control socket) hangs up,
/// up to `timeout_ms` (-1: without limit); EINTR is a wake-up like any other.
pub fn wait_readable(fds: [i32; 2], timeout_ms: i32) {
    let mut p = [
        libc::pollfd {
            fd: fds[0],
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: fds[1],
            events: libc::POLLIN | libc::POLLRDHUP,
            revents: 0,
        },
    ];
    // SAFETY: two valid pollfd entries on the stack.
    unsafe { libc::poll(p.as_mut_ptr(), 2, timeout_ms) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_to_try_again_is_cs_err_try_again_as_corosync_callers_retry_on() {
        let refused = Error::Refused {
            status: Status::TryAgain,
            message: "the node refused the session".into(),
        };
        assert_eq!(cs_error(&refused), abi::CS_ERR_TRY_AGAIN);
        assert_eq!(cs_error(&Error::TryAgain), abi::CS_ERR_TRY_AGAIN);
    }
}
