//! A round-robin TCP forwarder on loopback: a load balancer's routing mesh in miniature,
//! so a CA's validation requests land on different berth replicas in turn.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Forwards each connection on `listen` to the next backend; stops on drop.
#[derive(Debug)]
pub struct RoundRobin {
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
    /// Connections forwarded so far, per backend.
    counts: Arc<Vec<AtomicUsize>>,
}

impl RoundRobin {
    /// Listens on `listen` (a loopback address) and forwards to `backends` in turn.
    pub fn start(listen: SocketAddr, backends: Vec<SocketAddr>) -> Self {
        let next = AtomicUsize::new(0);
        Self::choosing(listen, backends, move |n| {
            next.fetch_add(1, Ordering::Relaxed) % n
        })
    }

    /// Like [`start`](Self::start), but `choose(backends.len())` picks the backend of
    /// each connection (to steer requests away from one replica, say).
    pub fn choosing(
        listen: SocketAddr,
        backends: Vec<SocketAddr>,
        choose: impl Fn(usize) -> usize + Send + 'static,
    ) -> Self {
        let listener = TcpListener::bind(listen).expect("the forwarder binds");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let counts: Arc<Vec<AtomicUsize>> =
            Arc::new(backends.iter().map(|_| AtomicUsize::new(0)).collect());
        let (thread_stop, thread_counts) = (Arc::clone(&stop), Arc::clone(&counts));
        std::thread::spawn(move || {
            while !thread_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let i = choose(backends.len()) % backends.len();
                        thread_counts[i].fetch_add(1, Ordering::Relaxed);
                        let backend = backends[i];
                        std::thread::spawn(move || {
                            let _ = forward(client, backend);
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            stop,
            addr: listen,
            counts,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections forwarded to each backend so far.
    pub fn counts(&self) -> Vec<usize> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn forward(client: TcpStream, backend: SocketAddr) -> io::Result<()> {
    client.set_nonblocking(false)?;
    let server = TcpStream::connect_timeout(&backend, Duration::from_secs(5))?;
    for stream in [&client, &server] {
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    }
    let (mut client_read, mut server_write) = (client.try_clone()?, server.try_clone()?);
    let upstream = std::thread::spawn(move || {
        let _ = io::copy(&mut client_read, &mut server_write);
        let _ = server_write.shutdown(Shutdown::Write);
    });
    let (mut server_read, mut client_write) = (server, client);
    let _ = io::copy(&mut server_read, &mut client_write);
    let _ = client_write.shutdown(Shutdown::Write);
    let _ = upstream.join();
    Ok(())
}
