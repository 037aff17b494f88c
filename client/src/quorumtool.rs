//! `rotor quorum`: corosync-quorumtool's options, output and exit statuses over the quorum,
//! votequorum and cmap clients. The layout is an interface (monitoring parses `-s` and `-p`),
//! so the text is built here by [`format_status`] and [`format_nodes`], pure functions of what
//! the services answered, and compared with the real tool's recorded output in the tests.
//!
//! Exit statuses as corosync-quorumtool: `-s` and `-p` 0 when quorate, 2 when not, 1 on an
//! error; everything else 0 or 1.

use std::ffi::CStr;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use crate::cmap::{Cmap, Value};
use crate::cpg::Dispatch;
use crate::quorum::{Quorum, QuorumHandler, RingId, QUORUM_FREE, TRACK_CHANGES, TRACK_CURRENT};
use crate::votequorum::{
    Info, Votequorum, VotequorumHandler, INFO_ALLOW_DOWNSCALE, INFO_AUTO_TIE_BREAKER,
    INFO_LAST_MAN_STANDING, INFO_QDEVICE_ALIVE, INFO_QDEVICE_CAST_VOTE, INFO_QDEVICE_MASTER_WINS,
    INFO_QDEVICE_REGISTERED, INFO_QUORATE, INFO_TWONODE, INFO_WAIT_FOR_ALL, QDEVICE_NODEID,
};
use crate::Error;

/// corosync-quorumtool's exit status when the cluster is not quorate.
pub const EXIT_NOT_QUORATE: u8 = 2;
/// How long a status waits for the notifications it asked for.
const NOTIFICATION_WAIT: Duration = Duration::from_secs(10);

/// What to do (the last of `-s -l -m -e -v -f` given wins, as with corosync-quorumtool).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    ShowStatus,
    ShowNodes,
    Monitor,
    SetExpected(u32),
    SetVotes(u32),
    UnregisterQdevice,
}

/// How node ids, names and the node list are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    /// `-H`: node ids as `0x%08x`.
    pub hex: bool,
    /// `-i`: addresses instead of names.
    pub ip: bool,
    /// `-a`: every address of a node.
    pub all_addrs: bool,
    /// `-p`: always the Qdevice column.
    pub machine_parsable: bool,
    pub sort: Sort,
}

/// `-o a|n|i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    /// As the members come (by address in corosync; rotor's ring is in node id order).
    Address,
    Name,
    NodeId,
}

/// The options, parsed as corosync-quorumtool's getopt loop does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub command: Command,
    pub format: Format,
    /// `-n`: the node `-v` sets the votes of (this node without it).
    pub node: Option<u32>,
}

/// Why the options were refused: corosync-quorumtool's message, exit status 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

/// corosync's `util_strtonum`: the whole text a decimal number within `min..=max`.
fn strtonum(text: &str, min: i64, max: i64) -> Option<i64> {
    let v: i64 = text.parse().ok()?;
    (min..=max).contains(&v).then_some(v)
}

impl Options {
    /// Parses corosync-quorumtool's options (`rotor quorum` passes its arguments here).
    pub fn parse(args: &[String]) -> Result<Options, UsageError> {
        let mut o = Options {
            command: Command::ShowStatus,
            format: Format {
                hex: false,
                ip: false,
                all_addrs: false,
                machine_parsable: false,
                sort: Sort::Address,
            },
            node: None,
        };
        let mut i = 0;
        // getopt: flags may be grouped (`-sp`), a value follows in the same word or the next.
        while i < args.len() {
            let arg = &args[i];
            i += 1;
            let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
                return Err(UsageError(format!("unexpected argument {arg}")));
            };
            for (at, c) in flags.char_indices() {
                let mut value = || -> Result<String, UsageError> {
                    let rest = &flags[at + c.len_utf8()..];
                    if !rest.is_empty() {
                        return Ok(rest.to_owned());
                    }
                    let v = args.get(i).cloned().ok_or_else(|| {
                        UsageError(format!("option requires an argument -- '{c}'"))
                    })?;
                    i += 1;
                    Ok(v)
                };
                match c {
                    'f' => o.command = Command::UnregisterQdevice,
                    's' => o.command = Command::ShowStatus,
                    'a' => o.format.all_addrs = true,
                    'm' => o.command = Command::Monitor,
                    'i' => o.format.ip = true,
                    'H' => o.format.hex = true,
                    'l' => o.command = Command::ShowNodes,
                    'p' => o.format.machine_parsable = true,
                    'e' => {
                        let v = value()?;
                        let n = strtonum(&v, 1, i64::from(i32::MAX)).ok_or_else(|| {
                            UsageError(
                                "New expected votes value was not valid, try a positive number"
                                    .into(),
                            )
                        })?;
                        o.command = Command::SetExpected(n as u32);
                        break;
                    }
                    'n' => {
                        let v = value()?;
                        let n = strtonum(&v, 1, i64::from(u32::MAX)).ok_or_else(|| {
                            UsageError("The nodeid was not valid, try a positive number".into())
                        })?;
                        o.node = Some(n as u32);
                        break;
                    }
                    'v' => {
                        let v = value()?;
                        let n = strtonum(&v, 0, i64::from(i32::MAX)).ok_or_else(|| {
                            UsageError(
                                "New votes value was not valid, try a positive number or zero"
                                    .into(),
                            )
                        })?;
                        o.command = Command::SetVotes(n as u32);
                        break;
                    }
                    'o' => {
                        o.format.sort = match value()?.as_str() {
                            "a" => Sort::Address,
                            "i" => Sort::NodeId,
                            "n" => Sort::Name,
                            _ => {
                                return Err(UsageError(
                                    "Invalid ordering option. valid orders are a(address), \
                                     i(node ID) or n(name)"
                                        .into(),
                                ))
                            }
                        };
                        break;
                    }
                    other => return Err(UsageError(format!("invalid option -- '{other}'"))),
                }
            }
        }
        Ok(o)
    }
}

/// corosync-quorumtool's usage text (rotor-cli holds the options, for the man page too).
pub fn usage(name: &str) -> String {
    rotor_cli::rotor::quorum_usage(name)
}

/// One member as `display_nodes_data` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRow {
    pub node_id: u32,
    /// getinfo's answer (with votequorum), `None` when it failed.
    pub info: Option<Info>,
    pub name: String,
}

/// Everything `-s` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusView {
    /// The `Date:` line's text, as `ctime(3)` writes it (newline included).
    pub date: String,
    /// `quorum.provider`, `None` without one ("Not configured").
    pub provider: Option<String>,
    pub node_id: u32,
    pub ring_seq: u64,
    /// The ring's representative, from votequorum (`None` without it: only the sequence).
    pub ring_rep: Option<u32>,
    pub quorate: bool,
    /// This node's getinfo (with votequorum).
    pub info: Option<Info>,
    pub members: Vec<NodeRow>,
}

/// `print_string_padded`: right-aligned in 10 columns, then a space.
fn padded(out: &mut String, text: &str) {
    let _ = write!(out, "{text:>10} ");
}

/// The membership block (`display_nodes_data`): a blank line, its title, the header, one row
/// per member, and the quorum device's row when one is registered.
pub fn format_nodes(
    members: &[NodeRow],
    our_node: u32,
    votequorum: bool,
    format: &Format,
) -> String {
    let mut out = String::new();
    let display_qdevice = members.iter().any(|m| {
        m.info
            .as_ref()
            .is_some_and(|i| i.flags & INFO_QDEVICE_REGISTERED != 0)
    });
    for m in members.iter().filter(|m| votequorum && m.info.is_none()) {
        let _ = writeln!(out, "Unable to get node {} info", m.node_id);
    }
    out.push_str("\nMembership information\n----------------------\n");
    padded(&mut out, "Nodeid");
    if votequorum {
        padded(&mut out, "Votes");
        if display_qdevice || format.machine_parsable {
            padded(&mut out, "Qdevice");
        }
    }
    out.push_str("Name\n");
    let mut rows: Vec<&NodeRow> = members.iter().collect();
    match format.sort {
        Sort::Address => {}
        Sort::NodeId => rows.sort_by_key(|r| r.node_id),
        Sort::Name => rows.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes())),
    }
    let mut our_flags = 0;
    for r in &rows {
        if format.hex {
            let _ = write!(out, "0x{:08x} ", r.node_id);
        } else {
            padded(&mut out, &r.node_id.to_string());
        }
        if votequorum {
            let info = r.info.clone().unwrap_or_default();
            padded(&mut out, &info.node_votes.to_string());
            if display_qdevice || format.machine_parsable {
                if info.flags & INFO_QDEVICE_REGISTERED != 0 {
                    let flag = |bit, on, off| if info.flags & bit != 0 { on } else { off };
                    let text = format!(
                        "{},{},{}",
                        flag(INFO_QDEVICE_ALIVE, "A", "NA"),
                        flag(INFO_QDEVICE_CAST_VOTE, "V", "NV"),
                        flag(INFO_QDEVICE_MASTER_WINS, "MW", "NMW")
                    );
                    padded(&mut out, &text);
                } else {
                    padded(&mut out, "NR");
                }
            }
        }
        out.push_str(&r.name);
        if r.node_id == our_node {
            out.push_str(" (local)");
            if let Some(i) = &r.info {
                our_flags = i.flags;
            }
        }
        out.push('\n');
    }
    if display_qdevice {
        let first = members
            .first()
            .and_then(|m| m.info.clone())
            .unwrap_or_default();
        if format.hex {
            let _ = write!(out, "0x{QDEVICE_NODEID:08x} ");
        } else {
            padded(&mut out, &QDEVICE_NODEID.to_string());
        }
        // A device that does not vote on this node shows 0 votes, so the table adds up.
        let casting = our_flags & INFO_QDEVICE_CAST_VOTE != 0;
        padded(
            &mut out,
            &if casting { first.qdevice_votes } else { 0 }.to_string(),
        );
        let _ = write!(out, "           {}", first.qdevice_name);
        if casting {
            out.push('\n');
        } else {
            let _ = writeln!(out, " (votes {})", first.qdevice_votes);
        }
    }
    out
}

/// `-s` / `-p` (`display_quorum_data`): quorum, then votequorum's numbers and the membership.
pub fn format_status(v: &StatusView, format: &Format) -> String {
    let mut out = String::new();
    out.push_str("Quorum information\n------------------\n");
    let _ = write!(out, "Date:             {}", v.date);
    let _ = writeln!(
        out,
        "Quorum provider:  {}",
        v.provider.as_deref().unwrap_or("Not configured")
    );
    let _ = writeln!(out, "Nodes:            {}", v.members.len());
    if format.hex {
        let _ = writeln!(out, "Node ID:          0x{:08x}", v.node_id);
    } else {
        let _ = writeln!(out, "Node ID:          {}", v.node_id);
    }
    match v.ring_rep {
        Some(rep) => {
            let _ = writeln!(out, "Ring ID:          {rep:x}.{:x}", v.ring_seq);
        }
        None => {
            let _ = writeln!(out, "Ring ID:          {:x}", v.ring_seq);
        }
    }
    let _ = writeln!(
        out,
        "Quorate:          {}",
        if v.quorate { "Yes" } else { "No" }
    );
    let Some(info) = &v.info else {
        return out;
    };
    out.push_str("\nVotequorum information\n----------------------\n");
    let _ = writeln!(out, "Expected votes:   {}", info.node_expected_votes);
    let _ = writeln!(out, "Highest expected: {}", info.highest_expected);
    let _ = writeln!(out, "Total votes:      {}", info.total_votes);
    let blocked = if info.flags & INFO_QUORATE != 0 {
        " "
    } else {
        "Activity blocked"
    };
    let _ = writeln!(out, "Quorum:           {} {blocked}", info.quorum);
    out.push_str("Flags:            ");
    for (bit, word) in [
        (INFO_TWONODE, "2Node"),
        (INFO_QUORATE, "Quorate"),
        (INFO_WAIT_FOR_ALL, "WaitForAll"),
        (INFO_LAST_MAN_STANDING, "LastManStanding"),
        (INFO_AUTO_TIE_BREAKER, "AutoTieBreaker"),
        (INFO_ALLOW_DOWNSCALE, "AllowDownscale"),
        (INFO_QDEVICE_REGISTERED, "Qdevice"),
    ] {
        if info.flags & bit != 0 {
            let _ = write!(out, "{word} ");
        }
    }
    out.push('\n');
    out.push_str(&format_nodes(&v.members, v.node_id, true, format));
    out
}

/// `ctime(3)` of now, as corosync-quorumtool prints it (`Sun Dec  6 15:25:09 2026\n`).
pub fn ctime_now() -> String {
    // SAFETY: time(NULL) has no preconditions; ctime_r writes at most 26 bytes into a buffer
    // of 32 and terminates it.
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut buf = [0 as libc::c_char; 32];
        if libc::ctime_r(&t, buf.as_mut_ptr()).is_null() {
            return "\n".into();
        }
        CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
    }
}

/// `getnameinfo(3)` of an address: its name (or, `numeric`, its text), `None` when it fails,
/// as corosync-quorumtool resolves a node's address.
pub fn name_info(addr: IpAddr, numeric: bool) -> Option<String> {
    let flags = if numeric { libc::NI_NUMERICHOST } else { 0 };
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: each sockaddr is fully initialised and its length passed; host is a buffer of
    // host.len() bytes that getnameinfo terminates.
    let rc = unsafe {
        match addr {
            IpAddr::V4(v4) => {
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
                libc::getnameinfo(
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    host.as_mut_ptr(),
                    host.len() as libc::socklen_t,
                    std::ptr::null_mut(),
                    0,
                    flags,
                )
            }
            IpAddr::V6(v6) => {
                let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_addr.s6_addr = v6.octets();
                libc::getnameinfo(
                    (&sa as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    host.as_mut_ptr(),
                    host.len() as libc::socklen_t,
                    std::ptr::null_mut(),
                    0,
                    flags,
                )
            }
        }
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: getnameinfo succeeded and terminated the buffer.
    Some(
        unsafe { CStr::from_ptr(host.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// The services the tool talks to (`init_all`).
struct Handles {
    cmap: Cmap,
    quorum: Quorum,
    /// With votequorum as the provider.
    votequorum: Option<Votequorum>,
    our_node: u32,
    provider: Option<String>,
}

/// A line on stderr and exit status 1.
fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("{message}");
    ExitCode::FAILURE
}

/// corosync's text for a failed call: `cs_strerror`'s name and, when rotor says more, why.
fn why(e: &Error) -> String {
    match e {
        Error::Status(s) => s.name().to_owned(),
        Error::Refused { status, message } => format!("{} ({message})", status.name()),
        other => other.to_string(),
    }
}

fn init() -> Result<Handles, ExitCode> {
    let mut cmap = Cmap::initialize().map_err(|e| {
        fail(format!(
            "Cannot initialize CMAP service ({e}; is rotord running?)"
        ))
    })?;
    let quorum = Quorum::initialize()
        .map_err(|e| fail(format!("Cannot initialize QUORUM service ({e})")))?;
    let provider = if quorum.quorum_type() == QUORUM_FREE {
        None
    } else {
        match cmap.get("quorum.provider") {
            Ok(Value::String(p)) => Some(p),
            _ => None,
        }
    };
    let mut votequorum = None;
    let mut our_node = 0;
    if provider.as_deref() == Some("corosync_votequorum") {
        votequorum = Some(
            Votequorum::initialize()
                .map_err(|e| fail(format!("Cannot initialise VOTEQUORUM service ({e})")))?,
        );
        our_node = match cmap.get("runtime.votequorum.this_node_id") {
            Ok(Value::U32(id)) => id,
            _ => return Err(fail("Unable to retrieve this_node_id")),
        };
    }
    Ok(Handles {
        cmap,
        quorum,
        votequorum,
        our_node,
        provider,
    })
}

/// Collects the quorum notification a `trackstart` sends.
#[derive(Default)]
struct QuorumSeen {
    got: Option<(bool, RingId, Vec<u32>)>,
}

impl QuorumHandler for QuorumSeen {
    fn quorum(&mut self, quorate: bool, ring: RingId, members: &[u32]) {
        self.got = Some((quorate, ring, members.to_vec()));
    }
}

/// Collects votequorum's nodelist notification (the ring's representative).
#[derive(Default)]
struct NodelistSeen {
    ring: Option<crate::votequorum::RingId>,
}

impl VotequorumHandler for NodelistSeen {
    fn nodelist(&mut self, _context: u64, ring: crate::votequorum::RingId, _nodes: &[u32]) {
        self.ring = Some(ring);
    }
}

/// Waits for the quorum notification (`quorum_dispatch` until the callback ran).
fn next_quorum(q: &mut Quorum) -> Result<(bool, RingId, Vec<u32>), Error> {
    let mut seen = QuorumSeen::default();
    while seen.got.is_none() {
        if q.dispatch(Dispatch::Blocking(NOTIFICATION_WAIT), &mut seen)? == 0 {
            return Err(Error::Timeout);
        }
    }
    Ok(seen.got.expect("seen"))
}

fn next_nodelist(v: &mut Votequorum) -> Result<crate::votequorum::RingId, Error> {
    let mut seen = NodelistSeen::default();
    while seen.ring.is_none() {
        if v.dispatch(Dispatch::Blocking(NOTIFICATION_WAIT), &mut seen)? == 0 {
            return Err(Error::Timeout);
        }
    }
    Ok(seen.ring.expect("seen"))
}

/// A node's name as corosync-quorumtool finds it: the nodelist's `name` (without `-i`), then
/// its address, resolved to a name unless `-i`.
fn node_name(cmap: &mut Cmap, node: u32, format: &Format) -> String {
    let mut out = String::new();
    let mut first_addr = 0;
    if !format.ip {
        if let Ok(entries) = cmap.iter("nodelist.node.") {
            let position = entries.iter().find_map(|(k, v)| {
                let rest = k.strip_prefix("nodelist.node.")?;
                let (pos, key) = rest.split_once('.')?;
                (key == "nodeid" && *v == Value::U32(node)).then(|| pos.to_owned())
            });
            if let Some(pos) = position {
                let key = format!("nodelist.node.{pos}.name");
                if let Some((_, Value::String(name))) = entries.iter().find(|(k, _)| *k == key) {
                    if !name.is_empty() {
                        out.push_str(name);
                        first_addr = 1;
                    }
                }
            }
        }
    }
    let addrs = node_addrs(cmap, node);
    let count = if format.all_addrs { addrs.len() } else { 1 };
    for (i, addr) in addrs.iter().enumerate().take(count).skip(first_addr) {
        if i > 0 {
            out.push_str(", ");
        }
        if let Some(name) = name_info(*addr, format.ip) {
            out.push_str(&name);
        }
    }
    out
}

/// A node's addresses (rotor has one link): the ring's record of it, else the nodelist's.
fn node_addrs(cmap: &mut Cmap, node: u32) -> Vec<IpAddr> {
    let key = format!("runtime.totem.pg.mrp.srp.members.{node}.ip");
    if let Ok(Value::String(ip)) = cmap.get(&key) {
        if let Ok(addr) = ip.parse() {
            return vec![addr];
        }
    }
    let Ok(entries) = cmap.iter("nodelist.node.") else {
        return Vec::new();
    };
    let Some(pos) = entries.iter().find_map(|(k, v)| {
        let rest = k.strip_prefix("nodelist.node.")?;
        let (pos, key) = rest.split_once('.')?;
        (key == "nodeid" && *v == Value::U32(node)).then(|| pos.to_owned())
    }) else {
        return Vec::new();
    };
    let key = format!("nodelist.node.{pos}.ring0_addr");
    entries
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| match v {
            Value::String(a) => a.parse().ok(),
            _ => None,
        })
        .into_iter()
        .collect()
}

fn rows(h: &mut Handles, members: &[u32], format: &Format) -> Vec<NodeRow> {
    members
        .iter()
        .map(|&node_id| NodeRow {
            node_id,
            info: h.votequorum.as_mut().and_then(|v| v.getinfo(node_id).ok()),
            name: node_name(&mut h.cmap, node_id, format),
        })
        .collect()
}

/// `-s` and `-p` (and one round of `-m`): the status text and whether the node is quorate.
fn status_text(h: &mut Handles, quorate: bool, format: &Format) -> Result<String, ExitCode> {
    h.quorum.trackstart(TRACK_CURRENT).map_err(|e| {
        fail(format!(
            "Unable to start quorum status tracking: {}",
            why(&e)
        ))
    })?;
    let (_, ring, members) = next_quorum(&mut h.quorum)
        .map_err(|e| fail(format!("Unable to dispatch quorum status: {}", why(&e))))?;
    let _ = h.quorum.trackstop();
    let mut ring_rep = None;
    if let Some(v) = h.votequorum.as_mut() {
        v.trackstart(0, TRACK_CURRENT).map_err(|e| {
            fail(format!(
                "Unable to start votequorum status tracking: {}",
                why(&e)
            ))
        })?;
        let r = next_nodelist(v)
            .map_err(|e| fail(format!("Unable to dispatch votequorum status: {}", why(&e))))?;
        let _ = v.trackstop();
        ring_rep = Some(r.nodeid);
    }
    let info = match h.votequorum.as_mut() {
        None => None,
        Some(v) => match v.getinfo(h.our_node) {
            Ok(i) => Some(i),
            Err(e) => return Err(fail(format!("Unable to get node info: {}", why(&e)))),
        },
    };
    let view = StatusView {
        date: ctime_now(),
        provider: h.provider.clone(),
        node_id: h.our_node,
        ring_seq: ring.seq,
        ring_rep,
        quorate,
        info,
        members: rows(h, &members, format),
    };
    Ok(format_status(&view, format))
}

fn show_status(h: &mut Handles, format: &Format) -> ExitCode {
    let quorate = match h.quorum.getquorate() {
        Ok(q) => q,
        Err(e) => return fail(format!("Unable to get cluster quorate status: {}", why(&e))),
    };
    match status_text(h, quorate, format) {
        Ok(text) => {
            print!("{text}");
            if quorate {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_NOT_QUORATE)
            }
        }
        Err(code) => code,
    }
}

fn show_nodes(h: &mut Handles, format: &Format) -> ExitCode {
    if let Err(e) = h.quorum.trackstart(TRACK_CURRENT) {
        return fail(format!(
            "Unable to start quorum status tracking: {}",
            why(&e)
        ));
    }
    let members = match next_quorum(&mut h.quorum) {
        Ok((_, _, m)) => m,
        Err(e) => return fail(format!("Unable to dispatch quorum status: {}", why(&e))),
    };
    let rows = rows(h, &members, format);
    print!(
        "{}",
        format_nodes(&rows, h.our_node, h.votequorum.is_some(), format)
    );
    ExitCode::SUCCESS
}

fn monitor(h: &mut Handles, format: &Format) -> ExitCode {
    if h.provider.is_none() {
        println!("\nQuorum is not configured - cannot monitor");
        return show_status(h, format);
    }
    if let Err(e) = h.quorum.trackstart(TRACK_CHANGES) {
        return fail(format!(
            "Unable to start quorum status tracking: {}",
            why(&e)
        ));
    }
    if let Some(v) = h.votequorum.as_mut() {
        if let Err(e) = v.trackstart(0, TRACK_CHANGES) {
            return fail(format!(
                "Unable to start votequorum status tracking: {}",
                why(&e)
            ));
        }
    }
    loop {
        let mut seen = QuorumSeen::default();
        while seen.got.is_none() {
            if let Err(e) = h
                .quorum
                .dispatch(Dispatch::Blocking(NOTIFICATION_WAIT), &mut seen)
            {
                return fail(format!("Unable to dispatch quorum status: {}", why(&e)));
            }
        }
        let (quorate, ring, members) = seen.got.expect("seen");
        let mut ring_rep = None;
        if let Some(v) = h.votequorum.as_mut() {
            let mut nl = NodelistSeen::default();
            while nl.ring.is_none() {
                if let Err(e) = v.dispatch(Dispatch::Blocking(NOTIFICATION_WAIT), &mut nl) {
                    return fail(format!("Unable to dispatch votequorum status: {}", why(&e)));
                }
            }
            ring_rep = nl.ring.map(|r| r.nodeid);
        }
        let info = h
            .votequorum
            .as_mut()
            .and_then(|v| v.getinfo(h.our_node).ok());
        let view = StatusView {
            date: ctime_now(),
            provider: h.provider.clone(),
            node_id: h.our_node,
            ring_seq: ring.seq,
            ring_rep,
            quorate,
            info,
            members: rows(h, &members, format),
        };
        println!("{}", format_status(&view, format));
    }
}

fn unregister_qdevice(h: &mut Handles) -> ExitCode {
    let v = h.votequorum.as_mut().expect("checked by the caller");
    let info = match v.getinfo(h.our_node) {
        Ok(i) => i,
        Err(e) => return fail(format!("Unable to get quorum device info: {}", why(&e))),
    };
    if info.flags & INFO_QDEVICE_REGISTERED == 0 {
        return ExitCode::SUCCESS;
    }
    match v.qdevice_unregister(&info.qdevice_name) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(format!("Unable to unregister quorum device: {}", why(&e))),
    }
}

/// Runs `rotor quorum` with corosync-quorumtool's arguments.
pub fn run(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "-h") {
        print!("{}", usage("rotor quorum"));
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "-V") {
        println!(
            "rotor quorum (corosync-quorumtool compatible) version: {}",
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    let o = match Options::parse(args) {
        Ok(o) => o,
        Err(UsageError(message)) => {
            eprintln!("{message}");
            if message.starts_with("invalid option") || message.starts_with("option requires") {
                print!("{}", usage("rotor quorum"));
            }
            return ExitCode::FAILURE;
        }
    };
    let mut h = match init() {
        Ok(h) => h,
        Err(code) => return code,
    };
    let votequorum = h.votequorum.is_some();
    match o.command {
        Command::ShowStatus => show_status(&mut h, &o.format),
        Command::ShowNodes => show_nodes(&mut h, &o.format),
        Command::Monitor => monitor(&mut h, &o.format),
        Command::SetVotes(votes) if votequorum => {
            let node = o.node.unwrap_or(h.our_node);
            let v = h.votequorum.as_mut().expect("votequorum");
            match v.setvotes(node, votes) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(format!(
                    "Unable to set votes {votes} for nodeid: {node}: {}",
                    why(&e)
                )),
            }
        }
        Command::SetVotes(_) => {
            fail("You cannot change node votes, corosync is not using votequorum")
        }
        Command::SetExpected(expected) if votequorum => {
            let v = h.votequorum.as_mut().expect("votequorum");
            match v.setexpected(expected) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(format!("Unable to set expected votes: {}", why(&e))),
            }
        }
        Command::SetExpected(_) => {
            fail("You cannot change expected votes, corosync is not using votequorum")
        }
        Command::UnregisterQdevice if votequorum => unregister_qdevice(&mut h),
        Command::UnregisterQdevice => {
            fail("You cannot unregister quorum device, corosync is not using votequorum")
        }
    }
}
