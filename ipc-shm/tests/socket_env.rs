//! The `ROTOR_IPC_SOCKET` override. Environment variables are process-global and tests of one
//! file run on parallel threads, so this file holds exactly one test, which sets the variable
//! and restores it before it returns (even on failure, through a drop guard).

use std::ffi::OsString;
use std::time::Duration;

use ipc_shm::{
    socket_name, AllowList, Client, Server, ServerConfig, WaitMode, SOCKET_ENV, SOCKET_NAME_DEFAULT,
};

/// Restores the variable as it was when dropped.
struct RestoreEnv(Option<OsString>);

impl Drop for RestoreEnv {
    fn drop(&mut self) {
        match self.0.take() {
            Some(value) => std::env::set_var(SOCKET_ENV, value),
            None => std::env::remove_var(SOCKET_ENV),
        }
    }
}

#[test]
fn socket_name_honours_the_override_and_the_default_connect_reaches_it() {
    let _restore = RestoreEnv(std::env::var_os(SOCKET_ENV));

    std::env::remove_var(SOCKET_ENV);
    assert_eq!(socket_name(), SOCKET_NAME_DEFAULT);
    std::env::set_var(SOCKET_ENV, "");
    assert_eq!(socket_name(), SOCKET_NAME_DEFAULT, "empty means unset");

    let name = format!("ipc-shm-test-{}-env-override", std::process::id());
    std::env::set_var(SOCKET_ENV, &name);
    assert_eq!(socket_name(), name);

    // A server bound to the overridden name; a client that only knows "the default" finds it.
    let config = ServerConfig {
        data_size: 64 << 10,
        record_size_max: 16 << 10,
        handshake_timeout: Duration::from_secs(2),
    };
    let server = Server::bind_with(&socket_name(), AllowList::root_only(), config).unwrap();
    assert_eq!(server.name(), name);
    let connecting = std::thread::spawn(Client::connect_default);
    let mut session = server.accept().unwrap();
    let mut client = connecting.join().unwrap().unwrap();
    let timeout = Some(Duration::from_secs(10));
    client
        .send_timeout(b"via the override", WaitMode::Blocking, timeout)
        .unwrap();
    let mut buf = vec![0u8; session.recv_size_max()];
    let n = session
        .recv_timeout(&mut buf, WaitMode::Blocking, timeout)
        .unwrap();
    assert_eq!(&buf[..n], b"via the override");
}
