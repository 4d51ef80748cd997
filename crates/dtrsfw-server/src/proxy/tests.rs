//! The proxy's own tests, against an echo server (byte-exact faults) and a real server.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// An echo server on a free port; each read's size is sent on the returned channel.
async fn echo() -> (u16, mpsc::UnboundedReceiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 65536];
                while let Ok(n @ 1..) = socket.read(&mut buf).await {
                    let _ = tx.send(n);
                    if socket.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, rx)
}

async fn connect(proxy: &Proxy) -> TcpStream {
    TcpStream::connect(("127.0.0.1", proxy.port())).await.unwrap()
}

/// Reads until `n` bytes or the connection ends; returns the bytes and the error, if any.
async fn read_up_to(stream: &mut TcpStream, n: usize) -> (Vec<u8>, Option<std::io::ErrorKind>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < n {
        match stream.read(&mut buf).await {
            Ok(0) => return (got, None),
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) => return (got, Some(e.kind())),
        }
    }
    (got, None)
}

#[tokio::test]
async fn forwards_bytes_both_ways_and_a_real_server_answers_through_it() {
    let (port, _) = echo().await;
    let proxy = Proxy::start(port);
    let mut stream = connect(&proxy).await;
    stream.write_all(b"hello").await.unwrap();
    assert_eq!(read_up_to(&mut stream, 5).await, (b"hello".to_vec(), None));

    let server = crate::Server::start();
    let redis_proxy = Proxy::start(server.port());
    let reply = tokio::task::spawn_blocking(move || {
        let mut conn = redis::Client::open(redis_proxy.url())
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("PING").query::<String>(&mut conn).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(reply, "PONG");
}

#[tokio::test]
async fn latency_delays_each_direction() {
    let (port, _) = echo().await;
    let proxy = Proxy::start(port);
    // Long enough that the check once it is lifted leaves a busy host 300 ms of slack.
    let latency = Duration::from_millis(300);
    proxy.set_latency(latency, Duration::from_millis(20));
    let mut stream = connect(&proxy).await;
    let start = Instant::now();
    stream.write_all(b"x").await.unwrap();
    assert_eq!(read_up_to(&mut stream, 1).await.0, b"x");
    let took = start.elapsed();
    assert!(took >= 2 * latency, "two delayed hops took {took:?}");
    proxy.set_latency(Duration::ZERO, Duration::ZERO);
    let start = Instant::now();
    stream.write_all(b"y").await.unwrap();
    assert_eq!(read_up_to(&mut stream, 1).await.0, b"y");
    // Half of the 2 × 300 ms it cost with the latency on.
    assert!(start.elapsed() < latency, "latency lifted: {:?}", start.elapsed());
}

#[tokio::test]
async fn fragments_go_out_as_one_write_per_byte_with_the_same_bytes() {
    let (port, mut reads) = echo().await;
    let proxy = Proxy::start(port);
    proxy.set_fragmented(true);
    let mut stream = connect(&proxy).await;
    let data: Vec<u8> = (0..200u8).collect();
    stream.write_all(&data).await.unwrap();
    assert_eq!(read_up_to(&mut stream, data.len()).await, (data.clone(), None));
    // 200 bytes each way, one write per byte (how the receiver's reads coalesce them
    // is up to its timing).
    tokio::time::sleep(Duration::from_millis(50)).await; // the counter follows the write
    assert_eq!(proxy.writes(), 400);
    let mut seen = 0;
    while let Ok(n) = reads.try_recv() {
        seen += n;
    }
    assert_eq!(seen, data.len());
}

#[tokio::test]
async fn reset_after_n_bytes_delivers_exactly_n_then_an_rst() {
    let (port, _) = echo().await;
    let proxy = Proxy::start(port);
    let mut stream = connect(&proxy).await;
    proxy.reset_after(Direction::Downstream, 7);
    stream.write_all(b"0123456789").await.unwrap();
    let (got, err) = read_up_to(&mut stream, 10).await;
    assert_eq!(got, b"0123456");
    assert_eq!(err, Some(std::io::ErrorKind::ConnectionReset));
    assert_eq!(proxy.connections_reset(), 1);
    // Disarmed: the next connection is untouched.
    let mut stream = connect(&proxy).await;
    stream.write_all(b"0123456789").await.unwrap();
    assert_eq!(read_up_to(&mut stream, 10).await, (b"0123456789".to_vec(), None));
}

#[tokio::test]
async fn reset_after_n_upstream_bytes_cuts_the_request() {
    let (port, mut reads) = echo().await;
    let proxy = Proxy::start(port);
    let mut stream = connect(&proxy).await;
    proxy.reset_after(Direction::Upstream, 4);
    stream.write_all(b"0123456789").await.unwrap();
    let (_, err) = read_up_to(&mut stream, 10).await;
    assert_eq!(err, Some(std::io::ErrorKind::ConnectionReset));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut seen = 0;
    while let Ok(n) = reads.try_recv() {
        seen += n;
    }
    assert_eq!(seen, 4, "the server got exactly the first 4 bytes");
}

#[tokio::test]
async fn reset_all_resets_every_open_connection() {
    let (port, _) = echo().await;
    let proxy = Proxy::start(port);
    let mut a = connect(&proxy).await;
    let mut b = connect(&proxy).await;
    a.write_all(b"a").await.unwrap();
    b.write_all(b"b").await.unwrap();
    read_up_to(&mut a, 1).await;
    read_up_to(&mut b, 1).await;
    proxy.reset_all();
    for stream in [&mut a, &mut b] {
        let (got, err) = read_up_to(stream, 1).await;
        assert!(got.is_empty());
        assert_eq!(err, Some(std::io::ErrorKind::ConnectionReset));
    }
    assert_eq!(proxy.connections_reset(), 2);
}

#[tokio::test]
async fn a_black_hole_holds_new_and_established_connections_until_it_closes() {
    let (port, _) = echo().await;
    let proxy = Proxy::start(port);
    let mut established = connect(&proxy).await;
    established.write_all(b"1").await.unwrap();
    read_up_to(&mut established, 1).await;
    proxy.set_black_hole(true);
    let mut held = connect(&proxy).await;
    held.write_all(b"2").await.unwrap();
    established.write_all(b"3").await.unwrap();
    for stream in [&mut held, &mut established] {
        let silent = tokio::time::timeout(Duration::from_millis(300), read_up_to(stream, 1)).await;
        assert!(silent.is_err(), "nothing comes out of the hole");
    }
    proxy.set_black_hole(false);
    assert_eq!(read_up_to(&mut held, 1).await.0, b"2");
    assert_eq!(read_up_to(&mut established, 1).await.0, b"3");
}

#[tokio::test]
async fn bandwidth_paces_the_bytes() {
    let (port, _) = echo().await;
    let proxy = Proxy::start(port);
    proxy.set_bandwidth(Some(100_000));
    let mut stream = connect(&proxy).await;
    let data = vec![7u8; 20_000];
    let start = Instant::now();
    stream.write_all(&data).await.unwrap();
    assert_eq!(read_up_to(&mut stream, data.len()).await.0.len(), data.len());
    // 20 KB at 100 KB/s is 200 ms each way: at least one way is paced.
    assert!(start.elapsed() >= Duration::from_millis(180), "{:?}", start.elapsed());
}

#[tokio::test]
async fn dropping_the_proxy_closes_its_port_and_its_connections() {
    let (port, _) = echo().await;
    let proxy = Proxy::start(port);
    let proxy_port = proxy.port();
    let mut stream = connect(&proxy).await;
    stream.write_all(b"x").await.unwrap();
    read_up_to(&mut stream, 1).await;
    drop(proxy);
    let (got, _) = read_up_to(&mut stream, 1).await;
    assert!(got.is_empty(), "the connection was closed");
    // The runtime's thread stops in the background: give it a moment on a busy machine.
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", proxy_port)).await.is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "nothing listens after the drop"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_scheduler_injects_faults_at_its_period_and_lifts_them_when_stopped() {
    let (port, _) = echo().await;
    let proxy = Proxy::start(port);
    proxy.start_chaos(42, Duration::from_millis(5));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let running = proxy.faults_injected();
    let counts = proxy.stop_chaos();
    assert!(counts.total() >= running.total());
    assert!(counts.total() >= 40, "about one fault per 5 ms: {counts}");
    // Everything lifted: a round trip is clean and unfragmented (one write each way),
    // and no fault is left set.
    let mut stream = connect(&proxy).await;
    let writes = proxy.writes();
    stream.write_all(b"ok").await.unwrap();
    assert_eq!(read_up_to(&mut stream, 2).await, (b"ok".to_vec(), None));
    // (The counter follows the write: let the last one land.)
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(proxy.writes() - writes, 2);
    assert_eq!(*proxy.faults.latency.lock().unwrap(), (Duration::ZERO, Duration::ZERO));
    assert_eq!(proxy.faults.bandwidth.load(Ordering::SeqCst), 0);
    assert!(!*proxy.faults.black_hole.borrow());
}
