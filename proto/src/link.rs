//! The links of a node (corosync's `interface{}` sections with knet, `ringN_addr` in the
//! nodelist): how each link is checked (knet's ping timers, with corosync 3's defaults derived
//! from the token) and which links carry frames (`totem.link_mode`). Defined once here: rotord
//! resolves them from the config, the dataplane opens one socket per link, and rotor-endpoint
//! runs the per-peer per-link state machine from exactly these values.

use std::net::SocketAddr;

use crate::codec::{DecodeError, Reader, Writer};
use crate::control::{get_addr, put_addr, DataplaneTransport};

/// Most links a node has: corosync's `INTERFACE_MAX` (knet's `KNET_MAX_LINK` is larger).
pub const LINK_COUNT_MAX: usize = 8;
/// `knet_link_priority` when unset (totemconfig.c).
pub const PRIORITY_DEFAULT: u8 = 1;
/// `knet_ping_precision` when unset: samples the latency average is taken over (knet's
/// `KNET_PING_PRECISION`, corosync's default).
pub const PING_PRECISION_DEFAULT: u32 = 2048;
/// `knet_pong_count` when unset: answered pings in a row before a link is up.
pub const PONG_COUNT_DEFAULT: u32 = 2;
/// The ping timeout's multiplier right after a link went down (knet's
/// `KNET_LINK_PONG_TIMEOUT_BACKOFF`: flap damping), falling by one each
/// [`TIMEOUT_BACKOFF_STEP_NS`] back to 1. Here because what runs the links (rotor-endpoint) and
/// what times them from outside (the failover benchmark) must agree on it.
pub const TIMEOUT_BACKOFF_MAX: u32 = 10;
/// How often the backoff falls by one (knet adjusts its pong timeouts once a second).
pub const TIMEOUT_BACKOFF_STEP_NS: u64 = 1_000_000_000;

/// `totem.link_mode`: which of a peer's up links carry its frames (knet's link policies).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LinkMode {
    /// The up link of the highest priority (lowest link number on a tie); the next one takes
    /// over when it goes down.
    #[default]
    Passive,
    /// Every up link: each frame goes once on each, the receiver keeps the first copy.
    Active,
    /// The up links in turn, one frame each.
    Rr,
}

spelled_codes!(LinkMode {
    Passive = 0, "passive";
    Active = 1, "active";
    Rr = 2, "rr";
});

/// How a link is checked and ranked: one `interface{}` section, resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkSettings {
    /// `linknumber` (the N of `ringN_addr`). Invariant: `< LINK_COUNT_MAX`.
    pub number: u8,
    /// `knet_link_priority`: in passive mode the up link of the highest priority carries.
    pub priority: u8,
    /// `knet_ping_interval`: a ping to each peer on this link this often.
    pub ping_interval_ms: u32,
    /// `knet_ping_timeout`: a link with no answer for this long is down.
    pub ping_timeout_ms: u32,
    /// `knet_ping_precision`: samples the latency average is taken over.
    pub ping_precision: u32,
    /// `knet_pong_count`: answers in a row before a down link is up again.
    pub pong_count: u32,
}

/// A link setting that cannot work, with the `interface{}` key it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkSettingError {
    /// The key under `totem.interface.<linknumber>.`.
    pub key: &'static str,
    pub reason: String,
}

impl LinkSettings {
    /// Link `number`'s settings from what its `interface{}` section sets (`None`, or 0 as in
    /// corosync, for unset), with corosync 3's defaults: `knet_ping_timeout` = token /
    /// pong_count and `knet_ping_interval` = token / (pong_count × 2)
    /// (totemconfig.c `totem_calc_knet_ping_timers`), `token_ms` being the token timeout in
    /// effect (the coefficient added).
    pub fn resolve(
        number: u8,
        token_ms: u32,
        priority: Option<u8>,
        ping_interval_ms: Option<u32>,
        ping_timeout_ms: Option<u32>,
        ping_precision: Option<u32>,
        pong_count: Option<u32>,
    ) -> Result<LinkSettings, LinkSettingError> {
        let set = |v: Option<u32>| v.filter(|v| *v != 0);
        let pong_count = set(pong_count).unwrap_or(PONG_COUNT_DEFAULT);
        let timeout = set(ping_timeout_ms).unwrap_or(token_ms / pong_count).max(1);
        let interval = set(ping_interval_ms)
            .unwrap_or(token_ms / (pong_count.saturating_mul(2)))
            .max(1);
        if interval > timeout {
            return Err(LinkSettingError {
                key: if ping_interval_ms.is_some() {
                    "knet_ping_interval"
                } else {
                    "knet_ping_timeout"
                },
                reason: format!(
                    "knet_ping_interval {interval} ms is longer than knet_ping_timeout \
                     {timeout} ms: the link would be declared down between two pings; make \
                     the interval at most the timeout (corosync's defaults: token / \
                     (2 × pong_count) and token / pong_count)"
                ),
            });
        }
        Ok(LinkSettings {
            number,
            priority: priority.filter(|p| *p != 0).unwrap_or(PRIORITY_DEFAULT),
            ping_interval_ms: interval,
            ping_timeout_ms: timeout,
            ping_precision: set(ping_precision).unwrap_or(PING_PRECISION_DEFAULT),
            pong_count,
        })
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.u8(self.number)
            .u8(self.priority)
            .u32(self.ping_interval_ms)
            .u32(self.ping_timeout_ms)
            .u32(self.ping_precision)
            .u32(self.pong_count);
    }

    fn read(r: &mut Reader<'_>) -> Result<LinkSettings, DecodeError> {
        let s = LinkSettings {
            number: r.u8("link number")?,
            priority: r.u8("link priority")?,
            ping_interval_ms: r.u32("ping interval")?,
            ping_timeout_ms: r.u32("ping timeout")?,
            ping_precision: r.u32("ping precision")?,
            pong_count: r.u32("pong count")?,
        };
        if usize::from(s.number) >= LINK_COUNT_MAX
            || s.ping_interval_ms == 0
            || s.ping_timeout_ms == 0
            || s.ping_precision == 0
            || s.pong_count == 0
        {
            return Err(DecodeError::BadValue("link settings"));
        }
        Ok(s)
    }
}

/// One link as the dataplane runs it: its settings, this node's address on it (and the
/// cluster port: `mcastport`), every other node's, and the transport rotord chose for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkStart {
    pub settings: LinkSettings,
    pub local: SocketAddr,
    /// Every other configured node on this link: id and address, sorted by id.
    pub peers: Vec<(u32, SocketAddr)>,
    /// Kernel UDP, or AF_XDP on the program rotord attached to `interface`. Each link that is
    /// not `Udp` comes with that program's `xsks` and `counters` map fds beside the message
    /// carrying it (in link order).
    pub transport: DataplaneTransport,
    /// The interface the link's XDP program is attached to (the transports other than `Udp`).
    pub interface: Option<String>,
}

impl LinkStart {
    pub(crate) fn write(&self, w: &mut Writer<'_>) {
        self.settings.write(w);
        put_addr(w, self.local);
        w.u32(self.peers.len() as u32);
        for (id, addr) in &self.peers {
            w.u32(*id);
            put_addr(w, *addr);
        }
        w.u8(self.transport.code())
            .str(self.interface.as_deref().unwrap_or(""));
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<LinkStart, DecodeError> {
        let settings = LinkSettings::read(r)?;
        let local = get_addr(r, "link address")?;
        // A peer is at least id (4), family (1), length (4), four address bytes and a port (2).
        let n = r.count(15, "link peers")?;
        let mut peers = Vec::with_capacity(n);
        for _ in 0..n {
            let id = r.u32("peer id")?;
            peers.push((id, get_addr(r, "peer address")?));
        }
        let transport = DataplaneTransport::from_code(r.u8("link transport")?)
            .ok_or(DecodeError::BadValue("link transport"))?;
        let interface = Some(r.str("link interface")?.to_owned()).filter(|i| !i.is_empty());
        Ok(LinkStart {
            settings,
            local,
            peers,
            transport,
            interface,
        })
    }
}

/// Every link of a node, link 0 first (`Start`, a change round's answer).
pub(crate) fn write_links(w: &mut Writer<'_>, links: &[LinkStart]) {
    w.u32(links.len() as u32);
    for link in links {
        link.write(w);
    }
}

/// Every link of a node, refused unless link 0 comes first, the numbers ascend, there are at
/// most [`LINK_COUNT_MAX`] and every link lists the same peers.
pub(crate) fn read_links(r: &mut Reader<'_>) -> Result<Vec<LinkStart>, DecodeError> {
    // A link is at least its settings (18), an IPv4 address (11), a peer count (4), its
    // transport (1) and an empty interface name (4).
    let n = r.count(38, "links")?;
    let mut links = Vec::with_capacity(n);
    for _ in 0..n {
        links.push(LinkStart::read(r)?);
    }
    let ids = |l: &LinkStart| l.peers.iter().map(|(id, _)| *id).collect::<Vec<u32>>();
    let well_formed = links.first().is_some_and(|l| l.settings.number == 0)
        && links.len() <= LINK_COUNT_MAX
        && links
            .windows(2)
            .all(|w| w[0].settings.number < w[1].settings.number && ids(&w[0]) == ids(&w[1]));
    if !well_formed {
        return Err(DecodeError::BadValue("links"));
    }
    Ok(links)
}

pub(crate) fn write_mode(w: &mut Writer<'_>, mode: LinkMode) {
    w.u8(mode.code());
}

pub(crate) fn read_mode(r: &mut Reader<'_>) -> Result<LinkMode, DecodeError> {
    LinkMode::from_code(r.u8("link mode")?).ok_or(DecodeError::BadValue("link mode"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_token_as_corosync_derives_them() {
        // corosync 3.1.7, token 3000 ms, 3 nodes: token timeout 3650 ms.
        let s = LinkSettings::resolve(1, 3650, None, None, None, None, None).unwrap();
        assert_eq!(
            (s.priority, s.ping_interval_ms, s.ping_timeout_ms),
            (1, 912, 1825)
        );
        assert_eq!((s.ping_precision, s.pong_count), (2048, 2));
        // 0 is unset, as in corosync.
        let z = LinkSettings::resolve(1, 3650, Some(0), Some(0), Some(0), Some(0), Some(0));
        assert_eq!(z.unwrap(), s);
        // pong_count scales both.
        let s = LinkSettings::resolve(0, 1000, Some(5), None, None, None, Some(5)).unwrap();
        assert_eq!(
            (s.priority, s.ping_interval_ms, s.ping_timeout_ms),
            (5, 100, 200)
        );
        // A tiny token still pings.
        let s = LinkSettings::resolve(0, 3, None, None, None, None, None).unwrap();
        assert_eq!((s.ping_interval_ms, s.ping_timeout_ms), (1, 1));
    }

    #[test]
    fn an_interval_longer_than_the_timeout_is_refused() {
        let e = LinkSettings::resolve(0, 1000, None, Some(600), None, None, None).unwrap_err();
        assert_eq!(e.key, "knet_ping_interval");
        let e = LinkSettings::resolve(0, 1000, None, None, Some(100), None, None).unwrap_err();
        assert_eq!(e.key, "knet_ping_timeout");
    }

    #[test]
    fn modes_by_name() {
        for m in LinkMode::ALL {
            assert_eq!(LinkMode::from_name(m.name()), Some(m));
            assert_eq!(LinkMode::from_code(m.code()), Some(m));
        }
        assert_eq!(LinkMode::from_name("bogus"), None);
        assert_eq!(LinkMode::default(), LinkMode::Passive);
    }
}
