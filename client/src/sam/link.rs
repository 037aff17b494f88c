//! The messages between an instance and its supervisor, over the stream socket pair that
//! register creates before each fork. Both ends are the same program, so the format is
//! private, but it is still decoded bounds-first: a frame is a kind byte, a little-endian
//! u32 payload length, the payload; a reply is a status code (u32), a length and a message.

use std::io::{self, Read as _};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

use rotor_proto::Status;

use super::{SamError, DATA_SIZE_MAX};

const KIND_START: u8 = 1;
const KIND_STOP: u8 = 2;
const KIND_HEALTH_CHECK: u8 = 3;
const KIND_DATA_STORE: u8 = 4;
const KIND_WARN_SIGNAL: u8 = 5;
const KIND_MARK_FAILED: u8 = 6;

const HEADER_LEN: usize = 5;
/// The longest reply message the instance reads; longer is a broken supervisor.
const REPLY_MESSAGE_LEN_MAX: usize = 4096;

/// What an instance tells its supervisor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Message {
    Start,
    Stop,
    HealthCheck,
    DataStore(Vec<u8>),
    WarnSignal(i32),
    MarkFailed,
}

impl Message {
    /// Whether the instance waits for a reply to it.
    pub(crate) fn has_reply(&self) -> bool {
        !matches!(self, Message::HealthCheck | Message::MarkFailed)
    }

    fn header(kind: u8, len: usize) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0] = kind;
        h[1..].copy_from_slice(&(len as u32).to_le_bytes());
        h
    }

    /// The frame, but for a data store's payload (sent after it, not copied).
    fn head(&self) -> Vec<u8> {
        match self {
            Message::Start => Message::header(KIND_START, 0).to_vec(),
            Message::Stop => Message::header(KIND_STOP, 0).to_vec(),
            Message::HealthCheck => Message::header(KIND_HEALTH_CHECK, 0).to_vec(),
            Message::MarkFailed => Message::header(KIND_MARK_FAILED, 0).to_vec(),
            Message::DataStore(d) => Message::header(KIND_DATA_STORE, d.len()).to_vec(),
            Message::WarnSignal(s) => {
                let mut v = Message::header(KIND_WARN_SIGNAL, 4).to_vec();
                v.extend_from_slice(&s.to_le_bytes());
                v
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = self.head();
        if let Message::DataStore(d) = self {
            v.extend_from_slice(d);
        }
        v
    }
}

/// Writes all of `bytes` to a socket: retried on EINTR, no SIGPIPE when the peer is gone
/// (an application's SIGPIPE disposition is its own), waiting for room when it is
/// non-blocking and full.
pub(crate) fn send_all(fd: RawFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: sends from a live slice on a socket we own.
        let n = unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL) };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    let mut p = libc::pollfd {
                        fd,
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd.
                    unsafe { libc::poll(&mut p, 1, 1000) };
                    continue;
                }
                _ => return Err(e),
            }
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

/// An instance's end: its socket, its own pid (calls from processes it forks are refused)
/// and its supervisor's pid.
pub(crate) struct Link {
    stream: UnixStream,
    pid: u32,
    supervisor: u32,
}

impl Link {
    pub(crate) fn new(stream: UnixStream, supervisor: u32) -> Link {
        Link {
            stream,
            pid: std::process::id(),
            supervisor,
        }
    }

    pub(crate) fn supervisor(&self) -> u32 {
        self.supervisor
    }

    fn check_pid(&self, call: &'static str) -> Result<(), SamError> {
        let pid = std::process::id();
        if pid != self.pid {
            return Err(SamError::NotTheInstance {
                call,
                pid,
                instance: self.pid,
            });
        }
        Ok(())
    }

    fn gone(&self, call: &'static str, source: io::Error) -> SamError {
        SamError::SupervisorGone {
            call,
            supervisor: self.supervisor,
            source,
        }
    }

    /// Sends `m` (no reply awaited).
    pub(crate) fn send(&self, call: &'static str, m: &Message) -> Result<(), SamError> {
        self.check_pid(call)?;
        send_all(self.stream.as_raw_fd(), &m.head()).map_err(|e| self.gone(call, e))
    }

    /// Sends `m` and waits for the supervisor's reply.
    pub(crate) fn call(&self, call: &'static str, m: &Message) -> Result<(), SamError> {
        debug_assert!(m.has_reply());
        self.send(call, m)?;
        self.reply(call)
    }

    /// Sends a data store without copying the data into the frame, and waits for the reply.
    pub(crate) fn store(&self, call: &'static str, data: &[u8]) -> Result<(), SamError> {
        self.check_pid(call)?;
        let fd = self.stream.as_raw_fd();
        send_all(fd, &Message::header(KIND_DATA_STORE, data.len()))
            .and_then(|()| send_all(fd, data))
            .map_err(|e| self.gone(call, e))?;
        self.reply(call)
    }

    fn reply(&self, call: &'static str) -> Result<(), SamError> {
        let mut head = [0u8; 8];
        (&self.stream)
            .read_exact(&mut head)
            .map_err(|e| self.gone(call, e))?;
        let code = u32::from_le_bytes(head[..4].try_into().unwrap());
        let len = u32::from_le_bytes(head[4..].try_into().unwrap()) as usize;
        let broken = |what: &str| {
            self.gone(
                call,
                io::Error::new(io::ErrorKind::InvalidData, what.to_string()),
            )
        };
        if len > REPLY_MESSAGE_LEN_MAX {
            return Err(broken("a reply longer than any the supervisor sends"));
        }
        let mut text = vec![0u8; len];
        (&self.stream)
            .read_exact(&mut text)
            .map_err(|e| self.gone(call, e))?;
        match Status::from_code(code) {
            Some(Status::Ok) => Ok(()),
            Some(status) => Err(SamError::Refused {
                call,
                status,
                message: String::from_utf8_lossy(&text).into_owned(),
            }),
            None => Err(broken("a reply with an unknown status")),
        }
    }
}

/// A reply frame: `Ok`, or a status and why.
pub(crate) fn encode_reply(r: &Result<(), (Status, String)>) -> Vec<u8> {
    let (status, text) = match r {
        Ok(()) => (Status::Ok, ""),
        Err((s, t)) => (*s, t.as_str()),
    };
    let text = &text.as_bytes()[..text.len().min(REPLY_MESSAGE_LEN_MAX)];
    let mut v = Vec::with_capacity(8 + text.len());
    v.extend_from_slice(&status.code().to_le_bytes());
    v.extend_from_slice(&(text.len() as u32).to_le_bytes());
    v.extend_from_slice(text);
    v
}

/// The supervisor's side: bytes in, whole messages out.
#[derive(Default)]
pub(crate) struct Decoder {
    buf: Vec<u8>,
}

/// Bytes on the socket that no instance of this library writes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) String);

impl Decoder {
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, `None` while one is incomplete.
    pub(crate) fn next(&mut self) -> Option<Result<Message, Malformed>> {
        if self.buf.len() < HEADER_LEN {
            return None;
        }
        let kind = self.buf[0];
        let len = u32::from_le_bytes(self.buf[1..HEADER_LEN].try_into().unwrap()) as usize;
        let len_max = match kind {
            KIND_START | KIND_STOP | KIND_HEALTH_CHECK | KIND_MARK_FAILED => 0,
            KIND_WARN_SIGNAL => 4,
            KIND_DATA_STORE => DATA_SIZE_MAX,
            _ => return Some(Err(Malformed(format!("unknown message kind {kind}")))),
        };
        if len > len_max || (kind == KIND_WARN_SIGNAL && len != 4) {
            return Some(Err(Malformed(format!(
                "a message of kind {kind} with {len} bytes (at most {len_max})"
            ))));
        }
        if self.buf.len() < HEADER_LEN + len {
            return None;
        }
        let payload = &self.buf[HEADER_LEN..HEADER_LEN + len];
        let m = match kind {
            KIND_START => Message::Start,
            KIND_STOP => Message::Stop,
            KIND_HEALTH_CHECK => Message::HealthCheck,
            KIND_MARK_FAILED => Message::MarkFailed,
            KIND_WARN_SIGNAL => {
                Message::WarnSignal(i32::from_le_bytes(payload.try_into().unwrap()))
            }
            _ => Message::DataStore(payload.to_vec()),
        };
        self.buf.drain(..HEADER_LEN + len);
        Some(Ok(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_survive_any_cut_of_the_stream() {
        let all = [
            Message::Start,
            Message::HealthCheck,
            Message::DataStore(b"instance 1 was here".to_vec()),
            Message::DataStore(Vec::new()),
            Message::WarnSignal(libc::SIGUSR1),
            Message::Stop,
            Message::MarkFailed,
        ];
        let stream: Vec<u8> = all.iter().flat_map(Message::encode).collect();
        for cut in 1..stream.len() {
            let mut d = Decoder::default();
            let mut got = Vec::new();
            for chunk in stream.chunks(cut) {
                d.push(chunk);
                while let Some(m) = d.next() {
                    got.push(m.unwrap());
                }
            }
            assert_eq!(got, all, "cut {cut}");
            assert!(d.buf.is_empty());
        }
    }

    #[test]
    fn garbage_is_refused_before_it_is_buffered() {
        let mut d = Decoder::default();
        d.push(&[9, 0, 0, 0, 0]);
        assert!(matches!(d.next(), Some(Err(_))));
        let mut d = Decoder::default();
        d.push(&Message::header(KIND_DATA_STORE, DATA_SIZE_MAX + 1));
        assert_eq!(
            d.next(),
            Some(Err(Malformed(format!(
                "a message of kind 4 with {} bytes (at most {DATA_SIZE_MAX})",
                DATA_SIZE_MAX + 1
            ))))
        );
        let mut d = Decoder::default();
        d.push(&Message::header(KIND_HEALTH_CHECK, 3));
        assert!(matches!(d.next(), Some(Err(_))));
    }

    #[test]
    fn replies_carry_the_status_and_why() {
        let (a, b) = UnixStream::pair().unwrap();
        let link = Link::new(a, 1);
        send_all(b.as_raw_fd(), &encode_reply(&Ok(()))).unwrap();
        link.reply("start").unwrap();
        send_all(
            b.as_raw_fd(),
            &encode_reply(&Err((Status::TooBig, "too much".into()))),
        )
        .unwrap();
        let e = link.reply("data_store").unwrap_err();
        assert_eq!(
            e.to_string(),
            "sam data_store: the supervisor refused (CS_ERR_TOO_BIG): too much"
        );
        drop(b);
        let e = link.reply("stop").unwrap_err();
        assert!(
            matches!(e, SamError::SupervisorGone { supervisor: 1, .. }),
            "{e}"
        );
    }
}
