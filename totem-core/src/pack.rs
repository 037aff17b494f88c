//! Message packing and fragmentation (the role of corosync's totempg): many small messages
//! share one frame; a message larger than a frame is cut into fragments that carry its total
//! length and their offset, and is reassembled per sender in total order.
//!
//! Item layout inside a frame body (big-endian):
//! - whole message: `kind|flags` u8, 0 u8, length u16, bytes;
//! - fragment: `kind|flags` u8, 0 u8, length u16, total u32, offset u32, bytes.
//!
//! A message's place in the total order is that of its last fragment. Fragments of one sender
//! are contiguous in its stream; on a configuration change every partial message is discarded
//! by receivers and restarted from its first byte by its sender, so members moving together
//! deliver the same complete messages.
//!
//! Receiving copies nothing: a whole message is a slice of the frame body, and a fragmented one
//! is reassembled as a list of ranges of the bodies that carried its fragments (each range
//! holding its body, so the store may free and reuse the slot meanwhile; see `body.rs`).

use std::collections::VecDeque;

use crate::body::{Body, Part, Payload};
use crate::limits::{MESSAGE_SIZE_MAX, SUBMIT_QUEUE_BYTES_MAX};
use crate::types::{Guarantee, NodeId};

const KIND_WHOLE: u8 = 0;
const KIND_FIRST: u8 = 1;
const KIND_MIDDLE: u8 = 2;
const KIND_LAST: u8 = 3;
const FLAG_SAFE: u8 = 0x10;
const WHOLE_HEADER: usize = 4;
const FRAGMENT_HEADER: usize = 12;
/// A fragment is only started when at least this many payload bytes fit in the frame.
const FRAGMENT_MIN: usize = 64;
/// Largest message the packer carries: an application message plus the group-service header.
pub const PACKED_MESSAGE_MAX: usize = MESSAGE_SIZE_MAX + 512;
/// Most fragments one message may arrive in. Honest senders cut every fragment but the last at
/// `FRAGMENT_MIN` bytes or more; a sender cutting finer is dropped as malformed, which bounds
/// the frame bodies one partial message keeps alive.
pub const MESSAGE_FRAGMENTS_MAX: usize = PACKED_MESSAGE_MAX / FRAGMENT_MIN + 1;

struct Queued {
    guarantee: Guarantee,
    bytes: Vec<u8>,
}

/// Why a submitted message was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("the send queue is full; try again")]
    TryAgain,
    #[error("message of {0} bytes is larger than the maximum of {max}", max = PACKED_MESSAGE_MAX)]
    TooLarge(usize),
}

/// A message of one sender being reassembled from its fragments.
struct Assembly {
    sender: NodeId,
    /// The message's length, or 0 when none is in progress.
    total: usize,
    guarantee: Guarantee,
    /// Bytes received so far. Invariant: the sum of the parts' lengths.
    received: usize,
    /// The fragments, borrowed from their frame bodies. Invariant: at most
    /// `MESSAGE_FRAGMENTS_MAX`.
    parts: Vec<Part>,
}

impl Assembly {
    fn reset(&mut self) {
        self.total = 0;
        self.received = 0;
        self.parts.clear();
    }
}

/// Sending and receiving halves of the packer.
pub struct Packer {
    /// Group-service control messages (sent before application messages).
    control: VecDeque<Queued>,
    app: VecDeque<Queued>,
    /// Bytes of the front message already sent in fragments (of `control` if non-empty, else
    /// of `app`).
    offset: usize,
    /// Whether application messages may be sent (closed while the group service re-syncs).
    app_open: bool,
    queued_bytes: usize,
    frame_body_max: usize,
    assemblies: Vec<Assembly>,
    spare: Vec<Vec<u8>>,
    pub fragments_dropped: u64,
    pub malformed_items: u64,
}

/// A complete message out of the packer, borrowed from the frame bodies that carried it.
pub struct Unpacked<'a> {
    pub sender: NodeId,
    pub guarantee: Guarantee,
    pub message: Payload<'a>,
}

impl Packer {
    pub fn new(frame_body_max: usize) -> Self {
        Packer {
            control: VecDeque::new(),
            app: VecDeque::new(),
            offset: 0,
            app_open: false,
            queued_bytes: 0,
            frame_body_max,
            assemblies: Vec::new(),
            spare: Vec::new(),
            fragments_dropped: 0,
            malformed_items: 0,
        }
    }

    fn take_buffer(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(bytes);
        buf
    }

    /// Queues an application message. The queue is bounded: a full queue says try again.
    pub fn push_app(&mut self, guarantee: Guarantee, parts: &[&[u8]]) -> Result<(), QueueError> {
        let size: usize = parts.iter().map(|p| p.len()).sum();
        if size > PACKED_MESSAGE_MAX {
            return Err(QueueError::TooLarge(size));
        }
        if self.queued_bytes + size > SUBMIT_QUEUE_BYTES_MAX {
            return Err(QueueError::TryAgain);
        }
        let mut bytes = self.take_buffer(&[]);
        for part in parts {
            bytes.extend_from_slice(part);
        }
        self.queued_bytes += size;
        self.app.push_back(Queued { guarantee, bytes });
        Ok(())
    }

    /// Queues a group-service control message; it goes out before any application message.
    pub fn push_control(&mut self, bytes: Vec<u8>) {
        assert!(
            bytes.len() <= PACKED_MESSAGE_MAX,
            "control message too large"
        );
        assert!(self.offset == 0 || !self.control.is_empty() || !self.app_open);
        self.queued_bytes += bytes.len();
        self.control.push_back(Queued {
            guarantee: Guarantee::Agreed,
            bytes,
        });
    }

    /// Drops queued control messages: a joinlist not sent in the ring it was made for is stale.
    pub fn clear_control(&mut self) {
        if !self.control.is_empty() {
            self.offset = 0;
        }
        while let Some(done) = self.control.pop_front() {
            self.queued_bytes -= done.bytes.len();
        }
    }

    pub fn set_app_open(&mut self, open: bool) {
        self.app_open = open;
    }

    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    pub fn has_pending(&self) -> bool {
        !self.control.is_empty() || (self.app_open && !self.app.is_empty())
    }

    /// Frames' worth of queued messages.
    pub fn backlog_frames(&self) -> u32 {
        if !self.has_pending() {
            return 0;
        }
        (self.queued_bytes / self.frame_body_max + 1).min(u32::MAX as usize) as u32
    }

    /// A new configuration: partially sent messages start again from their first byte.
    pub fn restart_partial(&mut self) {
        self.offset = 0;
    }

    /// Fills one frame body; returns its length and whether it carries a safe message.
    pub fn fill(&mut self, buf: &mut [u8]) -> (usize, bool) {
        let mut at = 0;
        let mut safe = false;
        loop {
            let from_control = !self.control.is_empty();
            if !from_control && (!self.app_open || self.app.is_empty()) {
                break;
            }
            let queue = if from_control {
                &mut self.control
            } else {
                &mut self.app
            };
            let front = queue.front().expect("non-empty queue");
            let total = front.bytes.len();
            let space = buf.len() - at;
            let flags = if front.guarantee == Guarantee::Safe {
                FLAG_SAFE
            } else {
                0
            };
            if self.offset == 0 && WHOLE_HEADER + total <= space && total <= u16::MAX as usize {
                buf[at] = KIND_WHOLE | flags;
                buf[at + 1] = 0;
                buf[at + 2..at + 4].copy_from_slice(&(total as u16).to_be_bytes());
                buf[at + 4..at + 4 + total].copy_from_slice(&front.bytes);
                at += WHOLE_HEADER + total;
                safe |= flags != 0;
                self.finish_front(from_control);
                continue;
            }
            if space < FRAGMENT_HEADER + FRAGMENT_MIN {
                break;
            }
            let chunk = (total - self.offset)
                .min(space - FRAGMENT_HEADER)
                .min(u16::MAX as usize);
            let last = self.offset + chunk == total;
            let kind = if self.offset == 0 {
                KIND_FIRST
            } else if last {
                KIND_LAST
            } else {
                KIND_MIDDLE
            };
            let item_flags = if last { flags } else { 0 };
            buf[at] = kind | item_flags;
            buf[at + 1] = 0;
            buf[at + 2..at + 4].copy_from_slice(&(chunk as u16).to_be_bytes());
            buf[at + 4..at + 8].copy_from_slice(&(total as u32).to_be_bytes());
            buf[at + 8..at + 12].copy_from_slice(&(self.offset as u32).to_be_bytes());
            buf[at + 12..at + 12 + chunk]
                .copy_from_slice(&front.bytes[self.offset..self.offset + chunk]);
            at += FRAGMENT_HEADER + chunk;
            if last {
                safe |= item_flags != 0;
                self.offset = 0;
                self.finish_front(from_control);
            } else {
                self.offset += chunk;
                break; // The frame is full.
            }
        }
        (at, safe)
    }

    fn finish_front(&mut self, from_control: bool) {
        let queue = if from_control {
            &mut self.control
        } else {
            &mut self.app
        };
        let done = queue.pop_front().expect("non-empty queue");
        self.queued_bytes -= done.bytes.len();
        if self.spare.len() < 1024 && done.bytes.capacity() <= 64 * 1024 {
            self.spare.push(done.bytes);
        }
    }

    /// Drops every partial reassembly (on a configuration change).
    pub fn drop_partial(&mut self) {
        self.fragments_dropped += self.assemblies.iter().filter(|a| a.total > 0).count() as u64;
        for a in &mut self.assemblies {
            a.reset();
        }
    }

    /// Splits a delivered frame body into complete messages, in order. A message larger than a
    /// frame comes out when its last fragment does, as the ranges of every body that carried it.
    pub fn unpack(&mut self, sender: NodeId, body: &Body, mut deliver: impl FnMut(Unpacked<'_>)) {
        let mut at = 0;
        while at < body.len() {
            let Some(&[kind_flags, _, l0, l1]) = body
                .get(at..at + 4)
                .map(|s| <&[u8; 4]>::try_from(s).expect("4 bytes"))
            else {
                self.malformed_items += 1;
                return;
            };
            let kind = kind_flags & 0x0f;
            let guarantee = if kind_flags & FLAG_SAFE != 0 {
                Guarantee::Safe
            } else {
                Guarantee::Agreed
            };
            let len = u16::from_be_bytes([l0, l1]) as usize;
            if kind == KIND_WHOLE {
                let Some(bytes) = body.get(at + WHOLE_HEADER..at + WHOLE_HEADER + len) else {
                    self.malformed_items += 1;
                    return;
                };
                deliver(Unpacked {
                    sender,
                    guarantee,
                    message: Payload::from_slice(bytes),
                });
                at += WHOLE_HEADER + len;
                continue;
            }
            let Some(head) = body.get(at + 4..at + FRAGMENT_HEADER) else {
                self.malformed_items += 1;
                return;
            };
            let total = u32::from_be_bytes(head[0..4].try_into().expect("4 bytes")) as usize;
            let offset = u32::from_be_bytes(head[4..8].try_into().expect("4 bytes")) as usize;
            let range = at + FRAGMENT_HEADER..at + FRAGMENT_HEADER + len;
            if range.end > body.len() {
                self.malformed_items += 1;
                return;
            }
            at += FRAGMENT_HEADER + len;
            if kind > KIND_LAST
                || total > PACKED_MESSAGE_MAX
                || offset.checked_add(len).is_none_or(|end| end > total)
            {
                self.malformed_items += 1;
                continue;
            }
            let index = match self.assemblies.iter().position(|a| a.sender == sender) {
                Some(index) => index,
                None => {
                    self.assemblies.push(Assembly {
                        sender,
                        total: 0,
                        guarantee,
                        received: 0,
                        parts: Vec::new(),
                    });
                    self.assemblies.len() - 1
                }
            };
            let a = &mut self.assemblies[index];
            if kind == KIND_FIRST {
                if a.total > 0 {
                    self.fragments_dropped += 1;
                }
                a.reset();
                a.total = total;
            } else if a.total != total || a.received != offset {
                // A fragment missing before this one (lost with a departed node): drop it all.
                if a.total > 0 {
                    self.fragments_dropped += 1;
                }
                a.reset();
                continue;
            }
            if a.parts.len() == MESSAGE_FRAGMENTS_MAX {
                // Cut finer than any honest sender cuts: refuse to keep more bodies alive.
                self.malformed_items += 1;
                a.reset();
                continue;
            }
            if len > 0 {
                a.parts.push(Part::new(body, range));
            }
            a.received += len;
            if kind == KIND_LAST {
                if a.received == a.total {
                    a.guarantee = guarantee;
                    deliver(Unpacked {
                        sender,
                        guarantee,
                        message: Payload::from_parts(&a.parts, 0),
                    });
                } else {
                    self.malformed_items += 1;
                }
                a.reset();
            }
        }
    }
}
