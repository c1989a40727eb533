//! TCP_NODELAY on this process's connections to the Lambda Runtime API (streamed answers).
//!
//! `lambda_runtime` posts a streamed response as several small writes on one connection: the
//! HTTP head, the metadata prelude, its 8-byte delimiter, the body, the last chunk (its body
//! channel holds one chunk at a time, so hyper writes each on its own). Its connector keeps
//! Nagle's algorithm on and cannot be configured from outside. With Nagle, each small write
//! after the first waits until the Runtime API has acknowledged the previous one, and the
//! Runtime API, which has nothing to answer before the response is complete, delays that ACK
//! (about 40 ms on Linux). Every streamed answer paid it once: the media proxy's 42 ms per
//! invoke, even for a 403 (issue 17). Turning Nagle off on that connection sends each write at
//! once; buffered answers are one write and never waited.
//!
//! The connection is found by its peer address among the process's sockets
//! (`/proc/self/fd`), since the runtime does not expose it.

use std::net::{SocketAddr, ToSocketAddrs};

/// Sets TCP_NODELAY on every open TCP connection to the Runtime API
/// (`AWS_LAMBDA_RUNTIME_API`). Returns how many connections it set; 0 outside Lambda.
pub fn runtime_api_nodelay() -> usize {
    let Some(api) = std::env::var("AWS_LAMBDA_RUNTIME_API").ok() else {
        return 0;
    };
    let Ok(addrs) = api.to_socket_addrs() else {
        return 0;
    };
    let addrs: Vec<SocketAddr> = addrs.collect();
    nodelay_to(&addrs)
}

/// Sets TCP_NODELAY on every open TCP connection of this process whose peer is one of
/// `peers`. Returns how many it set.
#[cfg(target_os = "linux")]
pub fn nodelay_to(peers: &[SocketAddr]) -> usize {
    use std::os::fd::{BorrowedFd, RawFd};

    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut set = 0;
    for entry in entries.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: `fd` was listed as open just now and is only used for the two calls below,
        // neither of which closes it. If another thread closed it meanwhile, the calls fail
        // (EBADF); if its number was reused, the peer address check decides, and setting
        // TCP_NODELAY changes no data, only when segments leave.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&fd);
        let to_peer = socket
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .is_some_and(|a| peers.contains(&a));
        if to_peer
            && socket.tcp_nodelay().is_ok_and(|on| !on)
            && socket.set_tcp_nodelay(true).is_ok()
        {
            set += 1;
        }
    }
    set
}

/// Lambda runs on Linux; elsewhere (a developer's machine) there is nothing to do.
#[cfg(not(target_os = "linux"))]
pub fn nodelay_to(_peers: &[SocketAddr]) -> usize {
    0
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn sets_nodelay_on_the_connections_to_the_peer_only() {
        let api = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let to_api = TcpStream::connect(api.local_addr().unwrap()).unwrap();
        let to_other = TcpStream::connect(other.local_addr().unwrap()).unwrap();
        assert!(!to_api.nodelay().unwrap(), "Nagle is on by default");

        assert_eq!(nodelay_to(&[api.local_addr().unwrap()]), 1);
        assert!(to_api.nodelay().unwrap());
        assert!(
            !to_other.nodelay().unwrap(),
            "another peer's connection is left alone"
        );
        // Already set: nothing more to do.
        assert_eq!(nodelay_to(&[api.local_addr().unwrap()]), 0);
    }
}
