//! The metrics endpoint (`rotor { metrics_listen: ADDR }`, off by default): `GET /metrics`
//! answers in Prometheus' text exposition format (version 0.0.4) over HTTP/1.1, from rotord's
//! own poll loop — non-blocking sockets, a bounded number of connections, each with a bounded
//! request and a deadline — so serving a scrape never holds up the node. Requests are parsed
//! by httparse (the parser under hyper): a server crate would bring threads or an async runtime
//! into this single-threaded process for one GET.
//!
//! What is exported is rotord's view of the node: the ring, quorum (with votequorum), the peers
//! (ring membership, and the
//! endpoint's link probes: state and round trip), and the dataplane's
//! counters combined across dataplane restarts (`StatsBook`), named as Prometheus' conventions
//! ask (`rotor_` prefix, base units — seconds, bytes —, `_total` counters, cumulative
//! histogram buckets).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use rotor_proto::control::RingReport;
use rotor_proto::stats::{HistogramKeys, HOUSEKEEPING, TOKEN_ROTATIONS};
use rotor_proto::RingState;

use super::stats::StatsBook;
use crate::discovery::LocalNode;
use crate::error::DaemonError;
use crate::log_at;

/// Connections served at once; more wait in the listen backlog.
const CONNECTIONS_MAX: usize = 16;
/// The largest request read (a scrape's request is a few hundred bytes).
const REQUEST_BYTES_MAX: usize = 8192;
/// How long a connection may take to send its request and take the answer.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    started: Instant,
    request: Vec<u8>,
    /// The answer, once the request is complete, and how much of it is written.
    response: Option<(Vec<u8>, usize)>,
}

/// The listener and its connections.
pub struct MetricsServer {
    listener: TcpListener,
    addr: SocketAddr,
    conns: Vec<Conn>,
}

/// What a scrape shows, borrowed from the daemon.
pub struct Snapshot<'a> {
    pub node: &'a LocalNode,
    pub cluster_name: &'a str,
    pub ring: &'a RingReport,
    pub stats: &'a StatsBook,
    /// `None` without a quorum provider (or before votequorum's first state).
    pub quorum: Option<super::quorum::QuorumView>,
    pub dataplane_restarts: u64,
}

impl MetricsServer {
    /// Listens on `addr`.
    pub fn bind(addr: SocketAddr) -> Result<MetricsServer, DaemonError> {
        let listener = TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| DaemonError::Metrics {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        let addr = listener.local_addr().unwrap_or(addr);
        log_at!(Notice, "MAIN", "metrics served at http://{addr}/metrics");
        Ok(MetricsServer {
            listener,
            addr,
            conns: Vec::new(),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Descriptors to wait on for reading: the listener and every connection.
    pub fn wait_fds(&self, out: &mut Vec<RawFd>) {
        out.push(self.listener.as_raw_fd());
        out.extend(self.conns.iter().map(|c| c.stream.as_raw_fd()));
    }

    /// Accepts, reads, answers and closes what is ready; `render` builds the exposition when a
    /// complete `GET /metrics` has arrived.
    pub fn serve(&mut self, render: impl Fn() -> String) {
        while self.conns.len() < CONNECTIONS_MAX {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    if stream.set_nonblocking(true).is_ok() {
                        self.conns.push(Conn {
                            stream,
                            peer,
                            started: Instant::now(),
                            request: Vec::new(),
                            response: None,
                        });
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => {
                    log_at!(Debug, "MAIN", "metrics: accept: {e}");
                    break;
                }
            }
        }
        self.conns.retain_mut(|c| c.advance(&render));
    }
}

impl Conn {
    /// Moves the connection on; `false` when it is done (answered, closed, or too slow).
    fn advance(&mut self, render: &impl Fn() -> String) -> bool {
        if self.started.elapsed() > CONNECTION_DEADLINE {
            log_at!(Debug, "MAIN", "metrics: {} too slow, closed", self.peer);
            return false;
        }
        if self.response.is_none() {
            let mut buf = [0u8; 2048];
            loop {
                match self.stream.read(&mut buf) {
                    Ok(0) => return false,
                    Ok(n) => self.request.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => return false,
                }
                if self.request.len() > REQUEST_BYTES_MAX {
                    self.response = Some((answer(431, "request too large\n", false), 0));
                    break;
                }
            }
            if self.response.is_none() {
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut req = httparse::Request::new(&mut headers);
                let response = match req.parse(&self.request) {
                    Ok(httparse::Status::Partial) => return true,
                    Err(_) => answer(400, "bad request\n", false),
                    Ok(httparse::Status::Complete(_)) => {
                        let head = req.method == Some("HEAD");
                        match (req.method, req.path) {
                            (Some("GET" | "HEAD"), Some("/metrics")) => {
                                ok(render().into_bytes(), head)
                            }
                            (Some("GET" | "HEAD"), Some("/")) => answer(
                                200,
                                "rotor: metrics at /metrics (Prometheus text format)\n",
                                head,
                            ),
                            (Some("GET" | "HEAD"), _) => answer(404, "not found\n", head),
                            _ => answer(405, "only GET\n", false),
                        }
                    }
                };
                self.response = Some((response, 0));
            }
        }
        let Some((bytes, written)) = &mut self.response else {
            return true;
        };
        while *written < bytes.len() {
            match self.stream.write(&bytes[*written..]) {
                Ok(0) => return false,
                Ok(n) => *written += n,
                // The rest goes on the loop's next turn (at most 200 ms later).
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        false
    }
}

/// `200 OK` with an exposition.
fn ok(body: Vec<u8>, head: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head {
        out.extend_from_slice(&body);
    }
    out
}

/// Any other answer, as plain text.
fn answer(status: u16, text: &str, head: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Request Header Fields Too Large",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        text.len()
    );
    if !head {
        out.push_str(text);
    }
    out.into_bytes()
}

/// The exposition being written: `# HELP`, `# TYPE`, then the family's samples.
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        use std::fmt::Write;
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample<S: AsRef<str>>(
        &mut self,
        name: &str,
        labels: &[(&str, S)],
        value: impl std::fmt::Display,
    ) {
        use std::fmt::Write;
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v.as_ref()));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A family of one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample::<&str>(name, &[], value);
    }

    /// One counter family with a `label` per key under `prefix` (`crypto.drops.` →
    /// `reason="invalid_digest"`), written even when empty.
    fn labelled_counters(
        &mut self,
        stats: &StatsBook,
        name: &str,
        help: &str,
        prefix: &str,
        label: &str,
    ) {
        self.family(name, "counter", help);
        self.samples_under(stats, name, prefix, None, label);
    }

    /// One counter family of the per-link `xdp.*` counters under `prefix` (`xdp.prog.`),
    /// with a `link` label and a `label` per counter: link 0's keys are `prefix` itself, link
    /// N's `xdp.link<N>.`… (`rotor_proto::xdp::for_link`); written even when empty.
    fn link_counters(
        &mut self,
        stats: &StatsBook,
        name: &str,
        help: &str,
        prefix: &str,
        label: &str,
    ) {
        self.family(name, "counter", help);
        for link in 0..rotor_proto::link::LINK_COUNT_MAX as u8 {
            let of_link = rotor_proto::xdp::for_link(prefix, link);
            self.samples_under(stats, name, &of_link, Some(link), label);
        }
    }

    /// A sample of `name` per key under `prefix`, labelled with the rest of the key (and
    /// `link`, when given).
    fn samples_under(
        &mut self,
        stats: &StatsBook,
        name: &str,
        prefix: &str,
        link: Option<u8>,
        label: &str,
    ) {
        let link = link.map(|n| n.to_string());
        for (key, value) in stats.totals() {
            let Some(rest) = key.strip_prefix(prefix) else {
                continue;
            };
            match &link {
                Some(n) => self.sample(name, &[("link", n.as_str()), (label, rest)], value),
                None => self.sample(name, &[(label, rest)], value),
            }
        }
    }
}

/// A label value as the text format writes it: `\`, `"` and newlines escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Counters exported one to one: (stats key, metric name, help).
const COUNTERS: &[(&str, &str, &str)] = &[
    (
        "srp.delivered",
        "rotor_delivered_messages_total",
        "Messages delivered to this node's applications in agreed or safe order.",
    ),
    (
        "srp.tokens",
        "rotor_tokens_received_total",
        "Regular tokens this node received.",
    ),
    (
        "srp.token_lost",
        "rotor_token_lost_total",
        "Times the token was lost (the token timeout expired) at this node.",
    ),
    (
        "srp.token_retransmits",
        "rotor_token_retransmits_total",
        "Tokens this node sent again because the next node did not pass it on in time.",
    ),
    (
        "srp.retransmitted",
        "rotor_retransmitted_frames_total",
        "Frames this node sent again because another node asked for them.",
    ),
    (
        "srp.retransmit_requests",
        "rotor_retransmit_requests_total",
        "Frames this node asked the others to send again.",
    ),
    (
        "srp.rings_installed",
        "rotor_rings_installed_total",
        "Rings (memberships) this node installed.",
    ),
    (
        "srp.gathers",
        "rotor_membership_gathers_total",
        "Times this node started forming a new membership.",
    ),
    (
        "net.frames_in",
        "rotor_network_received_frames_total",
        "Cluster frames received from the transport.",
    ),
    (
        "net.frames_out",
        "rotor_network_sent_frames_total",
        "Cluster frames handed to the transport.",
    ),
    (
        "net.bytes_in",
        "rotor_network_received_bytes_total",
        "Bytes of cluster frames received.",
    ),
    (
        "net.bytes_out",
        "rotor_network_sent_bytes_total",
        "Bytes of cluster frames sent.",
    ),
    (
        "ipc.requests",
        "rotor_ipc_requests_total",
        "Requests of local clients handled by the dataplane.",
    ),
    (
        "ipc.requests_deferred",
        "rotor_ipc_requests_deferred_total",
        "Times a client request waited because the ring was full (back-pressure to clients).",
    ),
    (
        "ipc.records_backlogged",
        "rotor_ipc_records_backlogged_total",
        "Records that found a client's ring full and were queued for it.",
    ),
    (
        "ipc.intake_paused",
        "rotor_ipc_intake_paused_total",
        "Times a client's requests were left in its ring until it read what was queued for it.",
    ),
    (
        "ipc.requests_left_for_token",
        "rotor_ipc_requests_left_for_token_total",
        "Sleeps in which clients' new requests waited for the token's next visit instead of waking the dataplane.",
    ),
    (
        "ipc.clients_attached",
        "rotor_ipc_clients_attached_total",
        "Client sessions adopted.",
    ),
    (
        "log.dropped",
        "rotor_log_dropped_lines_total",
        "Log lines of the dataplane that could not reach rotord.",
    ),
];

/// A histogram family made from one of a dataplane's histograms (its count, `sum` and
/// `le_<bound>` buckets).
struct HistogramFamily {
    name: &'static str,
    help: &'static str,
    keys: HistogramKeys,
}

/// The histograms exported.
const HISTOGRAMS: [HistogramFamily; 2] = [
    HistogramFamily {
        name: "rotor_token_rotation_seconds",
        help: "Time between two visits of the token at this node within one ring.",
        keys: TOKEN_ROTATIONS,
    },
    HistogramFamily {
        name: "rotor_dataplane_housekeeping_seconds",
        help: "Time the dataplane's poll thread spent on housekeeping (statistics, neighbour \
               table, client checks), every 200 ms, between token hops.",
        keys: HOUSEKEEPING,
    },
];

/// The exposition of one scrape.
pub fn render(s: &Snapshot<'_>) -> String {
    let mut out = Exposition(String::with_capacity(16 * 1024));
    let node_id = s.node.node_id.to_string();
    let transport = if s.ring.transport.is_empty() {
        "none"
    } else {
        s.ring.transport.as_str()
    };
    out.family(
        "rotor_info",
        "gauge",
        "This node: its id, cluster, transport and rotor's version (always 1).",
    );
    out.sample(
        "rotor_info",
        &[
            ("node_id", node_id.as_str()),
            ("cluster", s.cluster_name),
            ("transport", transport),
            ("version", env!("CARGO_PKG_VERSION")),
        ],
        1,
    );
    out.family(
        "rotor_ring_state",
        "gauge",
        "The protocol state of this node (1 for the current state, 0 for the others).",
    );
    for state in [
        RingState::Down,
        RingState::Gather,
        RingState::Commit,
        RingState::Recovery,
        RingState::Operational,
    ] {
        out.sample(
            "rotor_ring_state",
            &[("state", state.name())],
            u8::from(s.ring.state == state),
        );
    }
    let operational = s.ring.state == RingState::Operational;
    out.single(
        "rotor_ring_members",
        "gauge",
        "Nodes in this node's operational ring (0 while it has none).",
        if operational { s.ring.members.len() } else { 0 },
    );
    out.single(
        "rotor_ring_sequence",
        "gauge",
        "The sequence number of the ring this node is in.",
        s.ring.ring_seq,
    );
    out.single(
        "rotor_ring_representative",
        "gauge",
        "The node id of the ring's representative.",
        s.ring.ring_rep,
    );
    out.family(
        "rotor_peer_up",
        "gauge",
        "1 when the configured peer is a member of this node's operational ring.",
    );
    for (id, addr) in &s.node.peers {
        let in_ring = operational && s.ring.members.contains(id);
        out.sample(
            "rotor_peer_up",
            &[
                ("peer_id", &id.to_string()),
                ("address", &addr.ip().to_string()),
            ],
            u8::from(in_ring),
        );
    }
    // Every peer's every link, from the dataplane's `knet.node<N>.link<L>.*`.
    let peer_links = || {
        s.node.links.iter().flat_map(|l| {
            l.peers
                .iter()
                .map(move |(id, addr)| (*id, l.settings.number, *addr))
        })
    };
    let knet =
        |id: u32, link: u8, name: &str| s.stats.total(&format!("knet.node{id}.link{link}.{name}"));
    for (name, kind, help, counter, scale) in [
        (
            "rotor_peer_link_up",
            "gauge",
            "1 when the link to the peer is up: it answered knet_pong_count pings in a row \
             and none was missed for knet_ping_timeout (longer right after a flap).",
            "connected",
            1.0,
        ),
        (
            "rotor_peer_link_rtt_seconds",
            "gauge",
            "Average round trip of the pings on the link (over knet_ping_precision samples).",
            "latency_ave",
            1e-6,
        ),
        (
            "rotor_peer_link_probes_total",
            "counter",
            "Pings this node sent the peer on the link.",
            "tx_ping_packets",
            1.0,
        ),
        (
            "rotor_peer_link_answers_total",
            "counter",
            "Pings the peer answered on the link.",
            "rx_pong_packets",
            1.0,
        ),
        (
            "rotor_peer_link_down_total",
            "counter",
            "Times the link to the peer went down.",
            "down_count",
            1.0,
        ),
        (
            "rotor_peer_link_tx_frames_total",
            "counter",
            "Frames sent to the peer on the link (what link_mode chose).",
            "tx_data_packets",
            1.0,
        ),
        (
            "rotor_peer_link_tx_errors_total",
            "counter",
            "Frames to the peer the kernel refused on the link (its interface down, no route); \
             each took the link down at once.",
            "tx_data_errors",
            1.0,
        ),
    ] {
        out.family(name, kind, help);
        for (id, link, addr) in peer_links() {
            out.sample(
                name,
                &peer_link_labels(id, link, &addr),
                knet(id, link, counter) as f64 * scale,
            );
        }
    }
    if let Some(q) = s.quorum {
        out.single(
            "rotor_quorum_quorate",
            "gauge",
            "1 when this node's partition is quorate (votequorum).",
            u8::from(q.quorate),
        );
        out.single(
            "rotor_quorum_votes_needed",
            "gauge",
            "Votes needed for quorum (corosync-quorumtool's Quorum).",
            q.quorum,
        );
        out.single(
            "rotor_quorum_total_votes",
            "gauge",
            "Votes of the members this node sees (and the quorum device's).",
            q.total_votes,
        );
        out.single(
            "rotor_quorum_expected_votes",
            "gauge",
            "Expected votes, as this node holds them.",
            q.expected_votes,
        );
        out.single(
            "rotor_quorum_node_votes",
            "gauge",
            "This node's votes.",
            q.node_votes,
        );
    }
    for keys in &HISTOGRAMS {
        histogram(&mut out, s.stats, keys);
    }
    for (key, name, help) in COUNTERS {
        out.single(name, "counter", help, s.stats.total(key));
    }
    out.labelled_counters(
        s.stats,
        "rotor_crypto_dropped_frames_total",
        "Frames refused by the crypto layer, by reason (invalid_digest: a wrong key; replay; \
         foreign_cluster; ...).",
        "crypto.drops.",
        "reason",
    );
    out.labelled_counters(
        s.stats,
        "rotor_protocol_dropped_frames_total",
        "Frames the Totem protocol dropped, by reason.",
        "srp.drop_",
        "reason",
    );
    out.labelled_counters(
        s.stats,
        "rotor_network_dropped_frames_total",
        "Frames the dataplane dropped before the protocol, by reason.",
        "net.drops.",
        "reason",
    );
    out.link_counters(
        s.stats,
        "rotor_xdp_dropped_frames_total",
        "AF_XDP frames dropped, by link and reason.",
        "xdp.drops.",
        "reason",
    );
    out.link_counters(
        s.stats,
        "rotor_xdp_program_frames_total",
        "Frames the XDP program of a link saw, by outcome (redirected to AF_XDP; passed: not \
         cluster traffic; unknown_source_passed/unknown_source_dropped: to the cluster port \
         from an address outside the nodelist; no_socket; not_parsed), since rotord loaded it.",
        "xdp.prog.",
        "outcome",
    );
    out.labelled_counters(
        s.stats,
        "rotor_ipc_disconnects_total",
        "Client sessions closed, by reason (slow: beyond the backlog limit; malformed; gone; \
         error).",
        "ipc.disconnects.",
        "reason",
    );
    out.single(
        "rotor_ipc_clients",
        "gauge",
        "Client sessions the dataplane serves now.",
        s.stats.total("ipc.clients"),
    );
    out.single(
        "rotor_ipc_backlog_bytes",
        "gauge",
        "Bytes queued for clients whose rings are full (back-pressure), all clients.",
        s.stats.total("ipc.backlog_bytes"),
    );
    out.single(
        "rotor_dataplane_restarts_total",
        "counter",
        "Dataplane processes rotord started after the first (each after one exited).",
        s.dataplane_restarts,
    );
    out.0
}

/// The labels of a peer's samples.
fn peer_link_labels(id: u32, link: u8, addr: &std::net::SocketAddr) -> [(&'static str, String); 3] {
    [
        ("peer_id", id.to_string()),
        ("link", link.to_string()),
        ("address", addr.ip().to_string()),
    ]
}

/// One of `HISTOGRAMS`: the dataplane's buckets (each counting the durations above the bound
/// before it) made cumulative, in seconds.
fn histogram(out: &mut Exposition, stats: &StatsBook, family: &HistogramFamily) {
    let (name, keys) = (family.name, family.keys);
    out.family(name, "histogram", family.help);
    let bucket_prefix = format!("{}.le_", keys.prefix);
    let mut buckets: Vec<(u64, u64)> = stats
        .totals()
        .filter_map(|(k, v)| {
            k.strip_prefix(&bucket_prefix)
                .and_then(|b| b.parse::<u64>().ok())
                .map(|bound_us| (bound_us, v))
        })
        .collect();
    buckets.sort_unstable();
    let count = stats.total(keys.count);
    let mut cumulative = 0u64;
    let bucket = format!("{name}_bucket");
    for (bound_us, n) in buckets {
        cumulative = cumulative.saturating_add(n);
        let le = (bound_us as f64 / 1e6).to_string();
        out.sample(&bucket, &[("le", &le)], cumulative);
    }
    out.sample(&bucket, &[("le", "+Inf")], count);
    let sum_s = stats.total(&format!("{}.sum", keys.prefix)) as f64 / 1e6;
    out.sample::<&str>(&format!("{name}_sum"), &[], sum_s);
    out.sample::<&str>(&format!("{name}_count"), &[], count);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample lines `write` puts out for a book of `counters`.
    fn samples(
        counters: &[(&str, u64)],
        write: impl FnOnce(&mut Exposition, &StatsBook),
    ) -> Vec<String> {
        let mut book = StatsBook::default();
        let counters: Vec<(String, u64)> = counters
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        book.update(&counters);
        let mut out = Exposition(String::new());
        write(&mut out, &book);
        out.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_the_count() {
        let counters = [
            ("srp.token_rotations", 6),
            ("srp.token_rotation_us.sum", 1_500),
            ("srp.token_rotation_us.le_100", 1),
            ("srp.token_rotation_us.le_20", 2),
            ("srp.token_rotation_us.le_1000", 3),
            ("srp.token_rotation_us.le_inf", 0),
        ];
        assert_eq!(
            samples(&counters, |o, b| histogram(o, b, &HISTOGRAMS[0])),
            [
                "rotor_token_rotation_seconds_bucket{le=\"0.00002\"} 2",
                "rotor_token_rotation_seconds_bucket{le=\"0.0001\"} 3",
                "rotor_token_rotation_seconds_bucket{le=\"0.001\"} 6",
                "rotor_token_rotation_seconds_bucket{le=\"+Inf\"} 6",
                "rotor_token_rotation_seconds_sum 0.0015",
                "rotor_token_rotation_seconds_count 6",
            ]
        );
    }

    #[test]
    fn every_links_xdp_counters_carry_their_link() {
        let counters = [
            ("xdp.prog.redirected", 5),
            ("xdp.link1.prog.redirected", 7),
            ("xdp.link1.prog.no_socket", 1),
            ("xdp.link3.drops.rx_ring_full", 2),
            ("xdp.drops.fill_ring_empty", 4),
        ];
        let lines = samples(&counters, |out, book| {
            out.link_counters(book, "p", "help", "xdp.prog.", "outcome");
            out.link_counters(book, "d", "help", "xdp.drops.", "reason");
        });
        assert_eq!(
            lines,
            [
                "p{link=\"0\",outcome=\"redirected\"} 5",
                "p{link=\"1\",outcome=\"no_socket\"} 1",
                "p{link=\"1\",outcome=\"redirected\"} 7",
                "d{link=\"0\",reason=\"fill_ring_empty\"} 4",
                "d{link=\"3\",reason=\"rx_ring_full\"} 2",
            ]
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
