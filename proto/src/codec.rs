//! The envelope and the field readers/writers every record uses. Written by hand: the records
//! are small and fixed, and a serde format would hide the layout that is our ABI.

use thiserror::Error;

/// Bytes of the envelope: `op u16, flags u16, request id u32`.
pub const ENVELOPE_LEN: usize = 8;

/// Why a record could not be decoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record truncated in {0}")]
    Truncated(&'static str),
    #[error("unknown op {0:#06x}")]
    UnknownOp(u16),
    #[error("bad value in {0}")]
    BadValue(&'static str),
    #[error("{0} trailing bytes after the record")]
    Trailing(usize),
    #[error("version {0} of the record is not this program's")]
    Version(u16),
}

/// Appends fields to a record buffer.
pub struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    /// Clears `out` and writes the envelope.
    pub fn new(out: &'a mut Vec<u8>, op: u16, req_id: u32) -> Writer<'a> {
        out.clear();
        let mut w = Writer { out };
        w.u16(op).u16(0).u32(req_id);
        w
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.out.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A `u32` length, then the bytes.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.bytes_len(v.len());
        self.out.extend_from_slice(v);
        self
    }
    /// The `u32` length of [`Writer::bytes`] alone: the bytes follow from elsewhere (a gathered
    /// write), and must be the record's last field.
    pub fn bytes_len(&mut self, len: usize) -> &mut Self {
        self.u32(len as u32)
    }
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
}

/// Reads fields of one record, bounds first.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// The envelope of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub op: u16,
    pub req_id: u32,
}

// The envelope and field readers are `#[inline]`: clients read every delivery through them
// from other crates, where a call returns each `Result` through memory, and a profile of
// libcpg's dispatch found those round trips among its costliest lines.
impl<'a> Reader<'a> {
    /// Reads the envelope; the reader is then at the first field.
    #[inline]
    pub fn new(buf: &'a [u8]) -> Result<(Envelope, Reader<'a>), DecodeError> {
        let mut r = Reader { buf, pos: 0 };
        let op = r.u16("envelope")?;
        let _flags = r.u16("envelope")?;
        let req_id = r.u32("envelope")?;
        Ok((Envelope { op, req_id }, r))
    }

    #[inline]
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(DecodeError::Truncated(what))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    #[inline]
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }
    #[inline]
    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    #[inline]
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    #[inline]
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    #[inline]
    pub fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }
    pub fn str(&mut self, what: &'static str) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes(what)?).map_err(|_| DecodeError::BadValue(what))
    }
    /// A count of items that each take at least `item_min` bytes: refused when the rest of the
    /// record cannot hold that many, so a forged count never drives a large allocation.
    pub fn count(&mut self, item_min: usize, what: &'static str) -> Result<usize, DecodeError> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(item_min.max(1)) > self.buf.len() - self.pos {
            return Err(DecodeError::Truncated(what));
        }
        Ok(n)
    }
    /// Fails when bytes are left over.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_truncation_is_an_error() {
        let mut buf = Vec::new();
        Writer::new(&mut buf, 7, 42)
            .u8(1)
            .u64(u64::MAX)
            .str("grp")
            .bytes(b"");
        let (env, mut r) = Reader::new(&buf).unwrap();
        assert_eq!(env, Envelope { op: 7, req_id: 42 });
        assert_eq!(r.u8("a").unwrap(), 1);
        assert_eq!(r.u64("b").unwrap(), u64::MAX);
        assert_eq!(r.str("c").unwrap(), "grp");
        assert_eq!(r.bytes("d").unwrap(), b"");
        r.finish().unwrap();
        for cut in 0..buf.len() {
            let res = Reader::new(&buf[..cut]).and_then(|(_, mut r)| {
                r.u8("a")?;
                r.u64("b")?;
                r.str("c")?;
                r.bytes("d")?;
                Ok(())
            });
            assert!(res.is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn forged_count_is_refused() {
        let mut buf = Vec::new();
        Writer::new(&mut buf, 1, 0).u32(u32::MAX);
        let (_, mut r) = Reader::new(&buf).unwrap();
        assert!(r.count(8, "n").is_err());
    }
}
