//! The local server keeps slow and greedy clients from taking it down (issue 17, item 7): a
//! client that trickles its headers or its body is cut off, and past the connection limit new
//! connections wait unaccepted instead of each taking a file descriptor, and are served as
//! soon as a place frees up. A client that stops reading its answers is cut off too, and its
//! place freed.

use std::time::Duration;

use e2e_tests::harness::Harness;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Long enough for any machine to answer; the limits under test are 1 s.
const PATIENCE: Duration = Duration::from_secs(10);

async fn connect(h: &Harness) -> TcpStream {
    TcpStream::connect(h.server.addr()).await.unwrap()
}

/// Everything the server sends until it closes the connection (or `within` runs out: None).
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut out)).await {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_disconnected() {
    let h = Harness::start(|c| c.header_timeout_secs = 1).await;
    let mut s = connect(&h).await;
    s.write_all(b"POST /webhooks/meta HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    // No more bytes: the server must not keep the connection (and its descriptor) forever.
    let answer = read_to_close(&mut s, PATIENCE).await;
    assert!(
        answer.is_some(),
        "the connection was still open after {PATIENCE:?}"
    );
    // A silent connection that never sends a byte is closed too.
    let mut idle = connect(&h).await;
    assert!(read_to_close(&mut idle, PATIENCE).await.is_some());
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_client_trickling_its_body_gets_a_408_and_the_connection_closes() {
    let h = Harness::start(|c| c.body_timeout_secs = 1).await;
    let mut s = connect(&h).await;
    s.write_all(
        b"POST /webhooks/meta HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"object\":",
    )
    .await
    .unwrap();
    let answer = read_to_close(&mut s, PATIENCE)
        .await
        .expect("answered and closed");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    // Nothing was taken from the half-sent delivery.
    assert_eq!(h.depth(wappline::queue::platform::INBOUND).await, 0);
    h.server.shutdown().await;
}

#[tokio::test]
async fn past_the_connection_limit_clients_wait_and_are_served_when_a_place_frees() {
    let h = Harness::start(|c| {
        c.max_connections = 2;
        c.header_timeout_secs = 60;
    })
    .await;
    let mut held = vec![connect(&h).await, connect(&h).await];
    // Both places are taken once the server has accepted the two: a request on one of them
    // is answered, which shows it was accepted.
    for s in &mut held {
        s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
    }
    let mut third = connect(&h).await; // completed by the kernel, not accepted by the server
    third
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut first)).await;
    assert!(early.is_err(), "served past the limit");

    drop(held.pop()); // a place frees up
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, third.read_to_end(&mut rest))
        .await
        .expect("served once a place was free")
        .unwrap();
    let answer = String::from_utf8_lossy(&rest);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_its_place_freed() {
    let h = Harness::start(|c| {
        c.max_connections = 1;
        c.header_timeout_secs = 60;
        c.write_timeout_secs = 1;
    })
    .await;
    // A small receive window, and requests pipelined without end, never reading an answer:
    // the answers fill the window and the server's send buffer (4 MiB at most on Linux),
    // and the server's next write waits for a reader that never comes.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stalled = socket.connect(h.server.addr()).await.unwrap();
    let (_unread, mut requests) = stalled.into_split();
    let writer = tokio::spawn(async move {
        let chunk = b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(1000);
        // Ends once the server closes the connection (or blocks while it is stuck writing).
        while requests.write_all(&chunk).await.is_ok() {}
    });
    // The one place is taken: a second client is served only once the first is cut off.
    let started = std::time::Instant::now();
    let mut next = connect(&h).await;
    next.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut next, PATIENCE * 3)
        .await
        .expect("served once the client that stopped reading was cut off");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "served after {:?}: the first client still had its place then",
        started.elapsed()
    );
    writer.abort();
    h.server.shutdown().await;
}
