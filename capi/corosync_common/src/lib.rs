//! libcorosync_common.so.4: the three functions corosync's tools and applications take from
//! it — `cs_strerror`, `qb_to_cs_error`, `hdb_error_to_cs` — with corosync's texts and
//! mappings (`common_lib/error_conversion.c`). Unversioned, as corosync builds it.

use std::ffi::{c_char, c_int, CStr};

use rotor_capi::abi::*;

/// The name corosync prints for an error code ("success" for `CS_OK`).
fn strerror(err: cs_error_t) -> &'static CStr {
    match err {
        CS_OK => c"success",
        CS_ERR_LIBRARY => c"CS_ERR_LIBRARY",
        CS_ERR_VERSION => c"CS_ERR_VERSION",
        CS_ERR_INIT => c"CS_ERR_INIT",
        CS_ERR_NO_MEMORY => c"CS_ERR_NO_MEMORY",
        CS_ERR_NAME_TOO_LONG => c"CS_ERR_NAME_TOO_LONG",
        CS_ERR_TIMEOUT => c"CS_ERR_TIMEOUT",
        CS_ERR_TRY_AGAIN => c"CS_ERR_TRY_AGAIN",
        CS_ERR_INVALID_PARAM => c"CS_ERR_INVALID_PARAM",
        CS_ERR_BAD_HANDLE => c"CS_ERR_BAD_HANDLE",
        CS_ERR_BUSY => c"CS_ERR_BUSY",
        CS_ERR_ACCESS => c"CS_ERR_ACCESS",
        CS_ERR_NOT_EXIST => c"CS_ERR_NOT_EXIST",
        CS_ERR_EXIST => c"CS_ERR_EXIST",
        CS_ERR_NO_SPACE => c"CS_ERR_NO_SPACE",
        CS_ERR_INTERRUPT => c"CS_ERR_INTERRUPT",
        CS_ERR_NAME_NOT_FOUND => c"CS_ERR_NAME_NOT_FOUND",
        CS_ERR_NO_RESOURCES => c"CS_ERR_NO_RESOURCES",
        CS_ERR_NOT_SUPPORTED => c"CS_ERR_NOT_SUPPORTED",
        CS_ERR_BAD_OPERATION => c"CS_ERR_BAD_OPERATION",
        CS_ERR_FAILED_OPERATION => c"CS_ERR_FAILED_OPERATION",
        CS_ERR_MESSAGE_ERROR => c"CS_ERR_MESSAGE_ERROR",
        CS_ERR_QUEUE_FULL => c"CS_ERR_QUEUE_FULL",
        CS_ERR_QUEUE_NOT_AVAILABLE => c"CS_ERR_QUEUE_NOT_AVAILABLE",
        CS_ERR_BAD_FLAGS => c"CS_ERR_BAD_FLAGS",
        CS_ERR_TOO_BIG => c"CS_ERR_TOO_BIG",
        CS_ERR_NO_SECTIONS => c"CS_ERR_NO_SECTIONS",
        CS_ERR_CONTEXT_NOT_FOUND => c"CS_ERR_CONTEXT_NOT_FOUND",
        CS_ERR_TOO_MANY_GROUPS => c"CS_ERR_TOO_MANY_GROUPS",
        CS_ERR_SECURITY => c"CS_ERR_SECURITY",
        _ => c"unknown error",
    }
}

/// `const char *cs_strerror(cs_error_t err)`: a static string, never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn cs_strerror(err: cs_error_t) -> *const c_char {
    strerror(err).as_ptr()
}

/// `cs_error_t qb_to_cs_error(int result)`: a libqb result (0 or more: success, else a
/// negated errno) as corosync's error.
#[unsafe(no_mangle)]
pub extern "C" fn qb_to_cs_error(result: c_int) -> cs_error_t {
    if result >= 0 {
        return CS_OK;
    }
    match result.checked_neg().unwrap_or(0) {
        libc::EBADF => CS_ERR_BAD_HANDLE,
        libc::ENOMEM => CS_ERR_NO_MEMORY,
        libc::ENOMSG | libc::ENOBUFS | libc::ETIMEDOUT | libc::EAGAIN => CS_ERR_TRY_AGAIN,
        libc::EBADE => CS_ERR_FAILED_OPERATION,
        libc::ETIME => CS_ERR_TIMEOUT,
        libc::EINVAL => CS_ERR_INVALID_PARAM,
        libc::EBUSY => CS_ERR_BUSY,
        libc::EACCES => CS_ERR_ACCESS,
        libc::EOVERFLOW => CS_ERR_NAME_TOO_LONG,
        libc::EEXIST => CS_ERR_EXIST,
        libc::ENOSPC => CS_ERR_NO_SPACE,
        libc::EINTR => CS_ERR_INTERRUPT,
        libc::ENOENT | libc::ENODEV => CS_ERR_NOT_EXIST,
        libc::ENOSYS | libc::ENOTSUP => CS_ERR_NOT_SUPPORTED,
        libc::EBADMSG => CS_ERR_MESSAGE_ERROR,
        libc::EMSGSIZE | libc::E2BIG => CS_ERR_TOO_BIG,
        _ => CS_ERR_LIBRARY,
    }
}

/// `cs_error_t hdb_error_to_cs(int res)`: a handle-database result as corosync's error.
#[unsafe(no_mangle)]
pub extern "C" fn hdb_error_to_cs(res: c_int) -> cs_error_t {
    match res {
        0 => CS_OK,
        r if r == -libc::EBADF => CS_ERR_BAD_HANDLE,
        r if r == -libc::ENOMEM => CS_ERR_NO_MEMORY,
        r if r == -libc::EMFILE => CS_ERR_NO_RESOURCES,
        r if r == -libc::EACCES => CS_ERR_ACCESS,
        _ => CS_ERR_LIBRARY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_and_mappings_are_corosyncs() {
        // SAFETY: cs_strerror returns a static NUL-terminated string.
        let text = |e| unsafe { CStr::from_ptr(cs_strerror(e)) }.to_str().unwrap();
        assert_eq!(text(CS_OK), "success");
        assert_eq!(text(CS_ERR_TRY_AGAIN), "CS_ERR_TRY_AGAIN");
        assert_eq!(text(29), "unknown error");
        assert_eq!(qb_to_cs_error(5), CS_OK);
        assert_eq!(qb_to_cs_error(-libc::EAGAIN), CS_ERR_TRY_AGAIN);
        assert_eq!(qb_to_cs_error(-libc::ECONNREFUSED), CS_ERR_LIBRARY);
        assert_eq!(qb_to_cs_error(i32::MIN), CS_ERR_LIBRARY);
        assert_eq!(hdb_error_to_cs(-libc::EBADF), CS_ERR_BAD_HANDLE);
        assert_eq!(hdb_error_to_cs(-1), CS_ERR_LIBRARY);
    }
}
