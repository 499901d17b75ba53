//! A TCP proxy on a loopback port whose connections can go silent, as a
//! peer does when it vanishes without closing them (its machine gone in a
//! failover, a NAT or firewall that forgot the connection): nothing is
//! answered on them any more, while new connections work. Its target's
//! answers can also be held back and sent late, as on a congested network.
//! It can also start busy: new connections wait for their TCP handshake,
//! as with a server whose queue of connections to accept is full.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream},
};

/// The proxy; it stops when dropped.
pub struct SilencingProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Connections accepted before this generation are silent.
    generation: Arc<AtomicU64>,
    /// The target's answers are held back while set.
    holding: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl SilencingProxy {
    /// Forwards each connection made to [`addr`](Self::addr) to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, target, None)
    }

    /// As [`start`](Self::start), but busy for the first `busy_for`: its
    /// listening socket has a backlog of 0, taken by a connection of its
    /// own, so the kernel drops the handshake of every new connection (the
    /// client sends it again 1 s later, then 2 s, …), as a busy server's
    /// full queue of connections to accept does. After it, the connections
    /// waiting are accepted at their next try.
    pub async fn start_busy(target: SocketAddr, busy_for: Duration) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
        let listener = socket.listen(0).unwrap();
        let filler = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        Self::serve(listener, target, Some((filler, busy_for)))
    }

    fn serve(
        listener: TcpListener,
        target: SocketAddr,
        busy: Option<(TcpStream, Duration)>,
    ) -> Self {
        let addr = listener.local_addr().unwrap();
        let generation = Arc::new(AtomicU64::new(0));
        let holding = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let generation = generation.clone();
            let holding = holding.clone();
            async move {
                if let Some((filler, busy_for)) = busy {
                    tokio::time::sleep(busy_for).await;
                    // The first in the queue: the filler's other end.
                    let _ = listener.accept().await;
                    drop(filler);
                }
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = TcpStream::connect(target).await else {
                        continue;
                    };
                    let born = generation.load(Ordering::SeqCst);
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::spawn(forward(
                        client_read,
                        server_write,
                        born,
                        generation.clone(),
                        None,
                    ));
                    tokio::spawn(forward(
                        server_read,
                        client_write,
                        born,
                        generation.clone(),
                        Some(holding.clone()),
                    ));
                }
            }
        });
        Self {
            addr,
            generation,
            holding,
            task,
        }
    }

    /// The connections made so far go silent: what is sent on them is read
    /// and dropped, and nothing comes back; their sockets stay open.
    pub fn silence_existing(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// While `hold` is set, what the target sends is kept back, not
    /// dropped: its requests reach it, and it does the work, but its
    /// answers come only once `hold_answers(false)` released them.
    pub fn hold_answers(&self, hold: bool) {
        self.holding.store(hold, Ordering::SeqCst);
    }
}

impl Drop for SilencingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    born: u64,
    generation: Arc<AtomicU64>,
    holding: Option<Arc<AtomicBool>>,
) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if generation.load(Ordering::SeqCst) > born {
            // Silent: read and dropped, the other side kept open.
            let _keep_open = &to;
            continue;
        }
        while holding
            .as_ref()
            .is_some_and(|holding| holding.load(Ordering::SeqCst))
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
