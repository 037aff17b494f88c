//! `rotord`'s command line: corosync's flags (`-c`, `-f`, `-t`, `-v`) and rotor's own.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "rotord",
    about = "rotor cluster engine: the control process of a node",
    long_about = "rotord reads corosync.conf, checks the authkey, starts and supervises the \
                  dataplane (rotor-dataplane, beside rotord), serves cmap and cfg to local \
                  clients and brokers CPG attaches. It takes corosync's flags and exits with \
                  corosync's statuses: 0 stopped cleanly, 7 logging{} cannot be applied, 8 the \
                  configuration or the authkey cannot work, 15 fatal (the transport cannot be \
                  set up, the dataplane keeps failing), 17 the pid file cannot be created or \
                  locked, 18 another rotord already runs (same network namespace or pid file). \
                  SIGTERM or SIGINT leave the ring cleanly and stop; SIGHUP reopens the log \
                  files. Environment: COROSYNC_MAIN_CONFIG_FILE, COROSYNC_TOTEM_AUTHKEY_FILE, \
                  ROTOR_IPC_SOCKET (the clients' socket name), NOTIFY_SOCKET (systemd).",
    disable_version_flag = true,
    after_help = "See also: rotor(8), rotor.conf(5), corosync.conf(5)."
)]
pub struct Args {
    /// Config file (else $COROSYNC_MAIN_CONFIG_FILE, else /etc/corosync/corosync.conf).
    #[arg(short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Stay in the foreground (and log to stderr unless logging{} says otherwise).
    #[arg(short = 'f')]
    pub foreground: bool,
    /// Test the config and the authkey, and exit: 0 when valid, 8 when not.
    #[arg(short = 't')]
    pub test: bool,
    /// Print the version and exit.
    #[arg(short = 'v')]
    pub version: bool,
    /// Write rotord's pid to FILE and hold a lock on it while running, as corosync does with
    /// /run/corosync.pid: a second rotord on the same file exits 18. Removed on a clean stop.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// rotor extension: which nodelist entry is this node (else the entry whose ring0_addr is
    /// an address of this host). For several nodes on one host.
    #[arg(long, value_name = "ID")]
    pub node_id: Option<u32>,
    /// rotor extension: the dataplane binary (else `rotor-dataplane` beside rotord).
    #[arg(long, value_name = "PATH")]
    pub dataplane: Option<PathBuf>,
}
