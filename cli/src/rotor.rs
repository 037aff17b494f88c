//! The `rotor` tool's command line. Each subcommand takes the flags of the corosync tool it
//! stands for, so fingers that know corosync-keygen, corosync-cfgtool, corosync-cmapctl and
//! corosync-cpgtool type the same thing.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "rotor",
    version,
    about = "rotor cluster engine: the command-line tool",
    long_about = "rotor talks to the local rotord (through the abstract socket @rotor-ipc, or \
                  $ROTOR_IPC_SOCKET) and answers as corosync's tools do: `rotor keygen` as \
                  corosync-keygen, `rotor status` as corosync-cfgtool -s, `rotor quorum` \
                  as corosync-quorumtool, `rotor cmap` as corosync-cmapctl, `rotor cpg` as \
                  corosync-cpgtool.",
    after_help = "See also: rotord(8), rotor.conf(5)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate the cluster authentication key, as corosync-keygen (mode 0400).
    #[command(
        long_about = "Writes SIZE random bytes from the kernel's generator to the key file with \
                      mode 0400, as corosync-keygen does; copy the file to every node. An existing \
                      key is replaced only with --force (corosync-keygen overwrites it): a node \
                      whose key differs from the others' never joins them."
    )]
    Keygen(KeygenArgs),
    /// Ring and link status (like corosync-cfgtool -s), then the XDP program rotord attached
    /// and its counters.
    Status,
    /// Configure the running cluster, like corosync-cfgtool: status, reload, kill, shutdown.
    Cfg(CfgArgs),
    /// Quorum status and votequorum settings, with corosync-quorumtool's options and output
    /// (-h lists them). Exit status 0 when quorate, 2 when not.
    #[command(disable_help_flag = true)]
    Quorum {
        /// corosync-quorumtool's options (see -h; the man page lists them from
        /// `QUORUM_OPTIONS`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Ask the local rotord to leave the ring and stop, and wait until it has (like
    /// corosync-cfgtool -H; the systemd unit's ExecStop).
    Shutdown {
        /// Seconds to wait for rotord to exit.
        #[arg(short = 't', long = "timeout", default_value_t = 20)]
        timeout_s: u64,
    },
    /// Read, change and track cmap, as corosync-cmapctl (`key (type) = value`).
    #[command(
        long_about = "Without an action, prints every key (or every key under each PREFIX given) \
                      as `key (type) = value`, exactly as corosync-cmapctl does, and exits 1 when \
                      no prefix matched anything. Types: i8 u8 i16 u16 i32 u32 i64 u64 flt dbl str \
                      bin. The words get KEY, set KEY TYPE VALUE, delete KEY, list [PREFIX] and \
                      track PREFIX are accepted for -g, -s, -d, a listing and -T.",
        after_help = "Examples:\n  rotor cmap totem.                 keys under totem.\n  rotor cmap -g totem.token         one key\n  rotor cmap -s my.key u32 7        set a key\n  rotor cmap -m stats stats.srp.    the stats map\n  rotor cmap -C all                 clear the statistics"
    )]
    Cmap(CmapArgs),
    /// CPG groups with their processes and nodes (like corosync-cpgtool).
    Cpg {
        /// Delimiter between fields (one line per member, no addresses).
        #[arg(short = 'd')]
        delimiter: Option<char>,
        /// Don't escape unprintable characters in group names.
        #[arg(short = 'e')]
        no_escape: bool,
        /// Display only the group names.
        #[arg(short = 'n')]
        names_only: bool,
    },
    /// Remove a stale rotor XDP program (left attached by a rotord killed with SIGKILL).
    #[command(
        name = "xdp-remove",
        long_about = "A rotord that stops cleanly detaches its XDP program; one killed with \
                      SIGKILL (or by the OOM killer) leaves it attached, steering the cluster \
                      port's frames from the nodelist's addresses to no socket until a rotord \
                      starts there again. This command detaches rotor's program (named \
                      rotor_steer) from IF, or from every interface of this network \
                      namespace that has one. It refuses a program of another name, and one \
                      that a process still holds (a running rotord or dataplane: stop it with \
                      rotor shutdown instead). Needs root (CAP_NET_ADMIN and CAP_BPF). Exit \
                      status 0 when every rotor program found was removed or none was found, \
                      1 otherwise."
    )]
    XdpRemove {
        /// The interface to remove the program from (default: every interface that runs
        /// rotor's program).
        #[arg(short = 'i', long = "interface", value_name = "IF")]
        interface: Option<String>,
    },
    /// SAM, the simple availability manager.
    Sam {
        #[command(subcommand)]
        op: SamOp,
    },
    /// CPG load generator: lat (one message in flight) or tput (as fast as the ring takes).
    Bench {
        /// lat | tput
        kind: String,
        /// Message size in bytes.
        #[arg(short = 's', default_value_t = 64)]
        size: usize,
        /// Messages to send at most.
        #[arg(short = 'n', default_value_t = 10_000)]
        count: u64,
        /// Seconds to run at most.
        #[arg(short = 't', default_value_t = 10.0)]
        seconds: f64,
        /// The CPG group.
        #[arg(short = 'g', default_value = "rotor-bench")]
        group: String,
        /// Wait for this many group members before starting.
        #[arg(short = 'm', default_value_t = 1)]
        members: usize,
    },
}

/// One of corosync-quorumtool's options, as its usage text lists it: the letter, the value's
/// name (`<votes>`) if it takes one, and what it does. `rotor quorum -h` prints them in
/// corosync-quorumtool's layout and rotor-quorum(8) lists them, so the two cannot drift.
pub struct QuorumOption {
    pub short: char,
    pub value: Option<&'static str>,
    pub help: &'static str,
}

const fn quorum_option(
    short: char,
    value: Option<&'static str>,
    help: &'static str,
) -> QuorumOption {
    QuorumOption { short, value, help }
}

/// corosync-quorumtool's options in its usage text's order (`rotor quorum` parses them as its
/// getopt loop does: grouped flags, a value in the same word or the next).
pub const QUORUM_OPTIONS: &[QuorumOption] = &[
    quorum_option('s', None, "show quorum status"),
    quorum_option('m', None, "constantly monitor quorum status"),
    quorum_option('l', None, "list nodes"),
    quorum_option('a', None, "show all names or addresses for each node"),
    quorum_option(
        'p',
        None,
        "when used with -s or -l, generates machine parsable output",
    ),
    quorum_option(
        'v',
        Some("votes"),
        "change the number of votes for a node (*)",
    ),
    quorum_option('n', Some("nodeid"), "optional nodeid of node for -v"),
    quorum_option(
        'e',
        Some("expected"),
        "change expected votes for the cluster (*)",
    ),
    quorum_option('H', None, "show nodeids in hexadecimal rather than decimal"),
    quorum_option(
        'i',
        None,
        "show node IP addresses instead of the resolved name",
    ),
    quorum_option(
        'o',
        Some("a|n|i"),
        "order by [a] IP address (default), [n] name, [i] nodeid",
    ),
    quorum_option(
        'f',
        None,
        "forcefully unregister a quorum device *DANGEROUS* (*)",
    ),
    quorum_option('h', None, "show this help text"),
    quorum_option('V', None, "show version and exit"),
];

/// The footnote of corosync-quorumtool's usage text, for the starred options.
pub const QUORUM_STARRED: &str =
    "(*) Starred items only work if votequorum is the quorum provider for corosync";

/// corosync-quorumtool's usage text for the program `name`, byte for byte.
pub fn quorum_usage(name: &str) -> String {
    let mut out = format!("usage: \n{name} <options>\n\n  options:\n\n");
    for o in QUORUM_OPTIONS {
        let flag = match o.value {
            Some(v) => format!("-{} <{v}>", o.short),
            None => format!("-{}", o.short),
        };
        out.push_str(&format!("  {flag:<15}{}\n", o.help));
    }
    out.push_str(&format!("\n  {QUORUM_STARRED}\n\n"));
    out
}

/// corosync-keygen's flags.
/// `rotor cfg`: corosync-cfgtool's options.
#[derive(Args, Debug)]
pub struct CfgArgs {
    /// Display the status of the current links on this node.
    #[arg(short = 's', long = "status")]
    pub status: bool,
    /// Display the status of the connected nodes and their links.
    #[arg(short = 'n', long = "nodes")]
    pub nodes: bool,
    /// Brief link status (with -s).
    #[arg(short = 'b', long = "brief")]
    pub brief: bool,
    /// Only the link with this address or link id (with -s).
    #[arg(short = 'i', long = "if")]
    pub interface: Option<String>,
    /// Tell every node of the cluster to reload corosync.conf.
    #[arg(short = 'R', long = "reload")]
    pub reload: bool,
    /// Reopen the log files.
    #[arg(short = 'L', long = "reopen")]
    pub reopen: bool,
    /// Kill a node identified by node id.
    #[arg(short = 'k', long = "kill", value_name = "NODEID")]
    pub kill: Option<String>,
    /// Display the IP address(es) of a node.
    #[arg(short = 'a', long = "address", value_name = "NODEID")]
    pub address: Option<String>,
    /// Shut this node down cleanly (the applications that track may veto).
    #[arg(short = 'H', long = "shutdown")]
    pub shutdown: bool,
    /// With -H: shut down regardless of the applications' vetoes.
    #[arg(long)]
    pub force: bool,
    /// Tell every node of the cluster to install the key in FILE (a path on each node).
    #[arg(long = "rotate-key", value_name = "FILE")]
    pub rotate_key: Option<String>,
    /// Display the local node id.
    #[arg(long = "local-id")]
    pub local_id: bool,
}

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the key.
    #[arg(short = 'k', long = "key-file", value_name = "FILE", default_value = crate::AUTHKEY_PATH_DEFAULT)]
    pub key_file: PathBuf,
    /// Length of the key in bytes (128 to 4096).
    #[arg(short = 's', long = "size", value_name = "SIZE", default_value_t = 256)]
    pub size: usize,
    /// Read the random bytes from FILE instead of the kernel's generator (getrandom).
    #[arg(short = 'r', long = "random-file", value_name = "FILE")]
    pub random_file: Option<PathBuf>,
    /// Accepted for compatibility with corosync-keygen, which no longer uses it either.
    #[arg(short = 'l', long = "less-secure")]
    pub less_secure: bool,
    /// Replace an existing key file.
    #[arg(long)]
    pub force: bool,
}

/// corosync-cmapctl's flags: an action flag (`-g`, `-s`, `-d`, `-D`, `-t`, `-T`, `-p`,
/// `-C`; none prints keys by prefix) and the keys as parameters. The last action flag given
/// wins, as with corosync-cmapctl.
#[derive(Args, Debug, Default)]
pub struct CmapArgs {
    /// Show binary values (bin keys print only their type without it).
    #[arg(short = 'b', action = ArgAction::Count)]
    pub show_binary: u8,
    /// Quiet: print only the value of each key.
    #[arg(short = 'q')]
    pub quiet: bool,
    /// Get: print each KEY given.
    #[arg(short = 'g', overrides_with_all = ["set", "delete", "delete_prefix", "track", "track_prefix"])]
    pub get: bool,
    /// Set: the parameters are KEY TYPE VALUE (for bin, VALUE is a file name, - for stdin).
    #[arg(short = 's', overrides_with_all = ["get", "delete", "delete_prefix", "track", "track_prefix"])]
    pub set: bool,
    /// Delete each KEY given.
    #[arg(short = 'd', overrides_with_all = ["get", "set", "delete_prefix", "track", "track_prefix"])]
    pub delete: bool,
    /// Delete every key under each PREFIX given.
    #[arg(short = 'D', overrides_with_all = ["get", "set", "delete", "track", "track_prefix"])]
    pub delete_prefix: bool,
    /// Track changes of each KEY given until "q" or the end of standard input.
    #[arg(short = 't', overrides_with_all = ["get", "set", "delete", "delete_prefix", "track_prefix"])]
    pub track: bool,
    /// Track changes of every key under each PREFIX given (`create>`, `modify>`, `delete>`).
    #[arg(short = 'T', overrides_with_all = ["get", "set", "delete", "delete_prefix", "track"])]
    pub track_prefix: bool,
    /// Load settings from FILE: lines `KEY TYPE VALUE` set, `^KEY` deletes, `^^PREFIX` deletes
    /// by prefix, `#` starts a comment.
    #[arg(short = 'p', value_name = "FILE")]
    pub load: Option<PathBuf>,
    /// The map: default (or icmap), or stats (only the keys under stats.).
    #[arg(short = 'm', value_name = "MAP")]
    pub map: Option<String>,
    /// Clear statistics: knet (the network and crypto counters), totem, ipc, schedmiss or all.
    #[arg(short = 'C', value_name = "WHAT")]
    pub clear: Option<String>,
    /// Keys or prefixes, or KEY TYPE VALUE for -s. A negative VALUE may be written as is
    /// (corosync-cmapctl needs `--` before it).
    #[arg(value_name = "PARAMS", allow_negative_numbers = true)]
    pub params: Vec<String>,
}

/// `rotor sam`'s subcommands.
#[derive(Subcommand, Debug)]
pub enum SamOp {
    /// Run a demo application under SAM: each instance health checks, stores data and
    /// then fails (by default it stops sending health checks); the supervisor warns it,
    /// kills it and starts the next one, which finds the data. Instances print on stdout,
    /// the supervisor on stderr.
    Demo(SamDemoOptions),
}

/// SAM's recovery policy, as `rotor sam demo --policy` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SamPolicy {
    Quit,
    Restart,
    QuorumQuit,
    QuorumRestart,
}

/// What a `rotor sam demo` instance does with SAM's warn signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SamOnWarn {
    /// The signal's default action (SIGTERM ends the instance).
    Default,
    /// Ignore it: SAM sends SIGKILL one interval later.
    Ignore,
    /// Print that it came, and carry on: SAM sends SIGKILL one interval later.
    Report,
}

/// `rotor sam demo`'s options.
#[derive(Args, Debug)]
pub struct SamDemoOptions {
    /// Health-check interval in milliseconds (0: no time limit, only crashes are noticed).
    #[arg(long, default_value_t = 1000)]
    pub interval: u32,
    /// The recovery policy (the quorum ones need rotord).
    #[arg(long, value_enum, default_value = "restart")]
    pub policy: SamPolicy,
    /// Publish the process in cmap (resources.process.<pid>.*; needs rotord).
    #[arg(long)]
    pub cmap: bool,
    /// The instance with this number ends cleanly (stops health checking, exits 0), which
    /// ends the supervisor; 0: none does.
    #[arg(long, default_value_t = 3)]
    pub instances: u32,
    /// Health checks each instance sends (one every half interval) before it fails.
    #[arg(long, default_value_t = 3)]
    pub checks: u32,
    /// How an instance fails: hang (no more health checks), crash (abort), exit:CODE,
    /// mark-failed (needs --cmap), none (health checks forever).
    #[arg(long, default_value = "hang")]
    pub fail: String,
    /// Event-driven health checks: SAM's thread sends them and calls a callback, which
    /// reports a failure after --checks calls (unless --fail none); --fail is not used
    /// otherwise.
    #[arg(long)]
    pub callback: bool,
    /// The signal SAM sends before SIGKILL (a number; default SIGTERM).
    #[arg(long)]
    pub warn_signal: Option<i32>,
    /// What each instance does with the warn signal.
    #[arg(long, value_enum, default_value = "default")]
    pub on_warn: SamOnWarn,
    /// Each instance forks this many children of its own once started; they try a SAM call
    /// (refused: only the instance talks to its supervisor), then live for --child-ms.
    #[arg(long, default_value_t = 0)]
    pub children: u32,
    /// How long each child of an instance lives, in milliseconds (default: four intervals).
    #[arg(long)]
    pub child_ms: Option<u64>,
    /// Stop health checking for two intervals and start again, before failing.
    #[arg(long)]
    pub stop_start: bool,
    /// Ignore SIGCHLD before initializing SAM, as some daemons do (each instance reports
    /// that it still ignores it; the supervisor still learns how instances end).
    #[arg(long)]
    pub ignore_sigchld: bool,
    /// Store this many bytes instead of the instance list (shows the data limit).
    #[arg(long)]
    pub data_bytes: Option<usize>,
}
