//! Frames spread over several UMEM frames (AF_XDP multi-buffer, `XDP_USE_SG`): the kernel
//! hands a received frame as a chain of descriptors, each but the last flagged
//! `XDP_PKT_CONTD`, and takes a frame to send the same way. [`Gather`] joins a received chain
//! into one frame; [`parts`] says how a frame to send is cut. Neither touches a ring: the
//! caller moves descriptors, so this logic is tested without a kernel.

/// The drop reason (`xdp.drops.chain_malformed`) of a received chain that was refused: more
/// descriptors or bytes than the socket was set up for (the kernel never sends one; a driver
/// bug or a socket bound for shorter chains could).
pub(super) const CHAIN_MALFORMED: &str = "chain_malformed";

/// What one received descriptor came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// A whole frame in one descriptor, outside any chain: read it in place.
    Whole,
    /// Part of a chain, copied; more descriptors follow.
    Pending,
    /// The last descriptor of a chain: the whole frame is in [`Gather::frame_mut`].
    Gathered,
    /// The last descriptor of a refused chain: nothing to hand on; count it as
    /// [`CHAIN_MALFORMED`].
    Dropped,
}

/// Joins the descriptors of one received chain, in ring order, into one frame.
/// Invariant: `frame` never grows past the capacity it was made with (`parts_max ×
/// part_bytes_max`), so nothing allocates on the packet path.
pub(super) struct Gather {
    frame: Vec<u8>,
    parts: usize,
    parts_max: usize,
    /// The chain under way was refused: its descriptors are skipped up to its last.
    refused: bool,
    /// The previous descriptor ended a chain: the next one starts afresh.
    ended: bool,
}

impl Gather {
    /// A gatherer of chains of at most `parts_max` descriptors of at most `part_bytes_max`
    /// bytes each.
    pub(super) fn new(parts_max: usize, part_bytes_max: usize) -> Gather {
        assert!(parts_max >= 1, "a chain has at least one descriptor");
        Gather {
            frame: Vec::with_capacity(parts_max * part_bytes_max),
            parts: 0,
            parts_max,
            refused: false,
            ended: true,
        }
    }

    /// Feeds the next received descriptor's bytes and its "more follow" flag.
    pub(super) fn push(&mut self, bytes: &[u8], more: bool) -> Step {
        if self.ended {
            self.frame.clear();
            self.parts = 0;
            self.refused = false;
            self.ended = false;
            if !more {
                self.ended = true;
                return Step::Whole;
            }
        }
        self.parts += 1;
        let room = self.frame.capacity() - self.frame.len();
        if self.parts > self.parts_max || bytes.len() > room {
            self.refused = true;
        }
        if !self.refused {
            self.frame.extend_from_slice(bytes);
        }
        if more {
            return Step::Pending;
        }
        self.ended = true;
        if self.refused {
            Step::Dropped
        } else {
            Step::Gathered
        }
    }

    /// The frame of the chain [`Gather::push`] last answered [`Step::Gathered`] for.
    pub(super) fn frame_mut(&mut self) -> &mut [u8] {
        &mut self.frame
    }

    /// Most descriptors of a chain it takes.
    pub(super) fn parts_max(&self) -> usize {
        self.parts_max
    }
}

/// How many descriptors of `part_bytes_max` bytes each a frame of `frame_bytes` takes.
pub(super) fn parts(frame_bytes: usize, part_bytes_max: usize) -> usize {
    frame_bytes.div_ceil(part_bytes_max).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `descs` (bytes, more) and collects what came out: whole frames in place,
    /// gathered frames, and drops.
    fn run(g: &mut Gather, descs: &[(&[u8], bool)]) -> Vec<Result<Vec<u8>, ()>> {
        let mut out = Vec::new();
        for (bytes, more) in descs {
            match g.push(bytes, *more) {
                Step::Whole => out.push(Ok(bytes.to_vec())),
                Step::Pending => {}
                Step::Gathered => out.push(Ok(g.frame_mut().to_vec())),
                Step::Dropped => out.push(Err(())),
            }
        }
        out
    }

    #[test]
    fn single_descriptors_are_whole_and_chains_are_joined_in_order() {
        let mut g = Gather::new(3, 4);
        let out = run(
            &mut g,
            &[
                (b"ab", false),
                (b"1234", true),
                (b"5678", true),
                (b"9", false),
                (b"cd", false),
            ],
        );
        assert_eq!(
            out,
            vec![
                Ok(b"ab".to_vec()),
                Ok(b"123456789".to_vec()),
                Ok(b"cd".to_vec())
            ]
        );
        assert!(g.ended);
    }

    #[test]
    fn a_chain_split_across_batches_is_still_joined() {
        let mut g = Gather::new(3, 4);
        assert_eq!(run(&mut g, &[(b"1234", true)]), vec![]);
        assert!(!g.ended);
        assert_eq!(run(&mut g, &[(b"56", false)]), vec![Ok(b"123456".to_vec())]);
    }

    #[test]
    fn a_chain_longer_than_the_socket_takes_is_dropped_once_and_the_next_frame_is_clean() {
        let mut g = Gather::new(2, 4);
        let out = run(
            &mut g,
            &[
                (b"1234", true),
                (b"5678", true),
                (b"9abc", true),
                (b"d", false),
                (b"ok", false),
                (b"xy", true),
                (b"z", false),
            ],
        );
        assert_eq!(out, vec![Err(()), Ok(b"ok".to_vec()), Ok(b"xyz".to_vec())]);
    }

    #[test]
    fn a_descriptor_longer_than_a_part_never_grows_the_buffer() {
        let mut g = Gather::new(2, 4);
        let capacity = g.frame.capacity();
        let out = run(&mut g, &[(b"123456789", true), (b"0", false)]);
        assert_eq!(out, vec![Err(())]);
        assert_eq!(g.frame.capacity(), capacity);
    }

    #[test]
    fn a_single_buffer_socket_refuses_every_chain() {
        let mut g = Gather::new(1, 4);
        let out = run(&mut g, &[(b"12", true), (b"34", false), (b"56", false)]);
        assert_eq!(out, vec![Err(()), Ok(b"56".to_vec())]);
    }

    #[test]
    fn parts_rounds_up_and_an_empty_frame_takes_one() {
        assert_eq!(parts(0, 3840), 1);
        assert_eq!(parts(3840, 3840), 1);
        assert_eq!(parts(3841, 3840), 2);
        assert_eq!(parts(9014, 3840), 3);
    }
}
