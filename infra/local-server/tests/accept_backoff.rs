//! The listener out of file descriptors (issue 17): `accept` fails with "Too many open files"
//! while the connection waits in the backlog, so an accept loop without a pause retries at
//! once, forever (1.56 million failures and log lines in 10 s, measured before the backoff).
//! This runs the real accept loop on a real listener, takes the process's descriptors away for
//! real, and counts the attempts. Its own test binary, so the lowered limit touches no other
//! test.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use local_server::listener::{serve, Accept, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A listener that counts the accepts tried.
struct Counting {
    inner: TcpListener,
    tries: Arc<AtomicUsize>,
}

impl Accept for Counting {
    fn accept(&self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send {
        self.tries.fetch_add(1, Ordering::SeqCst);
        self.inner.accept()
    }
}

fn nofile() -> libc::rlimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    limit
}

fn set_nofile(limit: libc::rlimit) {
    // SAFETY: setrlimit reads the struct it is given.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
}

/// The lowest descriptor number not in use (while the listing is open).
fn lowest_free_descriptor() -> u64 {
    let open: std::collections::HashSet<u64> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    (0..).find(|n| !open.contains(n)).expect("a free number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_accept_loop_backs_off_and_recovers() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tries = Arc::new(AtomicUsize::new(0));
    let limits = Limits {
        max_connections: 64,
        header_read_timeout: Duration::from_secs(10),
        body_read_timeout: Duration::from_secs(10),
        write_timeout: Duration::from_secs(10),
        max_body_bytes: 1024,
    };
    let handle =
        |_req, _peer| async { hyper::Response::new(Full::new(Bytes::from_static(b"served"))) };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(serve(
        Counting {
            inner: listener,
            tries: tries.clone(),
        },
        limits,
        handle,
        stopped,
    ));

    // The client's socket exists before the limit falls; connecting needs no new descriptor,
    // accepting it does.
    let client = tokio::net::TcpSocket::new_v4().unwrap();
    let normal = nofile();
    set_nofile(libc::rlimit {
        rlim_cur: lowest_free_descriptor(),
        rlim_max: normal.rlim_max,
    });
    // Numbers below the limit that are still free (the listing's own, say) are taken too.
    let mut taken = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        taken.push(f);
        assert!(taken.len() < 100, "the limit does not hold");
    }
    let before = tries.load(Ordering::SeqCst);
    // Complete once the kernel has it in the backlog, accepted or not.
    let mut client = client.connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let failing = tries.load(Ordering::SeqCst) - before;
    set_nofile(normal);
    drop(taken);
    eprintln!("{failing} accepts tried in 2 s out of descriptors");

    // Backing off (5 ms doubling to a second) is about 9 tries in 2 s; a loop without a pause
    // makes hundreds of thousands.
    assert!(
        (1..=20).contains(&failing),
        "{failing} accepts tried in 2 s out of descriptors"
    );

    // Descriptors back: the waiting client is accepted (within the backoff's second) and served.
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), client.read_to_string(&mut answer))
        .await
        .expect("served once descriptors are back")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("served"), "{answer}");
    stop.send(true).unwrap();
    server.await.unwrap();
}
