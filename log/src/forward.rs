//! The dataplane's destination under rotord: each line goes up the control socket as a typed
//! `FromDataplane::Log` record, which rotord writes into its own log. Never blocks: a line that
//! finds the socket's send buffer half full is dropped and counted (the other half stays free
//! for the ring and stats reports that share the socket), and the next line that gets through
//! is preceded by one saying how many were lost.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rotor_proto::control::FromDataplane;
use rotor_proto::log::{Level, LogRecord};

use crate::Record;

/// Longest message sent up, in bytes; a longer one is cut at a character boundary.
pub(crate) const MESSAGE_BYTES_MAX: usize = 4000;

/// Lines dropped because the control socket was full, since the process started.
pub(crate) static DROPPED: AtomicU64 = AtomicU64::new(0);

pub(crate) struct Forwarder {
    sock: OwnedFd,
    /// Bytes queued on the socket beyond which a line is dropped (half the send buffer).
    queued_bytes_max: usize,
    /// Dropped since the last line that went up.
    unreported: u64,
    /// rotord hung up: nothing more is sent.
    closed: bool,
    buf: Vec<u8>,
}

impl Forwarder {
    pub(crate) fn new(sock: OwnedFd) -> Forwarder {
        let mut sndbuf: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `sndbuf`.
        let rc = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&mut sndbuf as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        let sndbuf = if rc == 0 && sndbuf > 0 {
            sndbuf as usize
        } else {
            // Linux's default for a Unix socket.
            212_992
        };
        Forwarder {
            sock,
            queued_bytes_max: sndbuf / 2,
            unreported: 0,
            closed: false,
            buf: Vec::new(),
        }
    }

    /// Sends `rec` up, or counts it dropped.
    pub(crate) fn send(&mut self, rec: &Record<'_>) {
        if self.unreported > 0 {
            let note = format!(
                "{} log line(s) dropped: the control socket to rotord was full",
                self.unreported
            );
            let lost = Record {
                level: Level::Warning,
                tag: "MAIN",
                file: file!(),
                line: line!(),
                message: &note,
                time: rec.time,
            };
            if !self.try_send(&lost) {
                self.drop_one();
                return;
            }
            self.unreported = 0;
        }
        if !self.try_send(rec) {
            self.drop_one();
        }
    }

    fn drop_one(&mut self) {
        self.unreported += 1;
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }

    fn try_send(&mut self, rec: &Record<'_>) -> bool {
        if self.closed || queued_bytes(&self.sock) > self.queued_bytes_max {
            return false;
        }
        let message = cut(rec.message, MESSAGE_BYTES_MAX);
        FromDataplane::Log(LogRecord {
            level: rec.level,
            subsys: rec.tag.to_owned(),
            file: rec.file.to_owned(),
            line: rec.line,
            message: message.to_owned(),
            unix_time_ns: rec
                .time
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        })
        .encode(&mut self.buf);
        // SAFETY: send(2) reads buf.len() bytes from a live buffer.
        let sent = unsafe {
            libc::send(
                self.sock.as_raw_fd(),
                self.buf.as_ptr().cast(),
                self.buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if sent < 0 {
            let e = std::io::Error::last_os_error();
            if matches!(
                e.raw_os_error(),
                Some(libc::EPIPE | libc::ECONNRESET | libc::ENOTCONN | libc::EBADF)
            ) {
                self.closed = true;
            }
            return false;
        }
        true
    }
}

/// Bytes sent on `sock` and not yet read by the peer (SIOCOUTQ); 0 when unknown.
fn queued_bytes(sock: &OwnedFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one int.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    if rc == 0 {
        n.max(0) as usize
    } else {
        0
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The wall-clock time of a record that came up from the dataplane.
pub(crate) fn time_of(rec: &LogRecord) -> SystemTime {
    UNIX_EPOCH + std::time::Duration::from_nanos(rec.unix_time_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_whole_characters() {
        assert_eq!(cut("abc", 5), "abc");
        assert_eq!(cut("abcdef", 3), "abc");
        assert_eq!(cut("aé", 2), "a");
        assert_eq!(cut("µs", 1), "");
    }
}
