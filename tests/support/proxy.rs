//! A Kafka-protocol proxy in front of the test broker that can take the leaders of one topic
//! away, every other topic served as before: what a broker does while a topic's partitions
//! have no leader (their leader's broker down, an unclean election pending).
//!
//! The broker advertises the proxy's address ([`Broker::start_behind`]), so every client
//! connection goes through it, the service's producer and consumer and the coordinators'
//! included. The proxy forwards every byte as it is, but for Metadata responses while
//! [`LeaderProxy::set_leaderless`] is on: there each partition of the topic gets
//! `LEADER_NOT_AVAILABLE` and leader -1, patched in place (same length, nothing re-encoded).
//! A client then has nowhere to send that topic's records and keeps them queued, as with
//! Kafka; a request already sent still gets the broker's answer.
//!
//! [`Broker::start_behind`]: super::broker::Broker::start_behind

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Kafka's API key of Metadata.
const METADATA: i16 = 3;
/// `LEADER_NOT_AVAILABLE`.
const LEADER_NOT_AVAILABLE: i16 = 5;

/// The proxy: stopped when dropped.
pub struct LeaderProxy {
    port: u16,
    leaderless: Arc<AtomicBool>,
    patched: Arc<AtomicU64>,
    unparsed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

/// A loopback listener for the proxy: bound first, so that the broker can advertise its port.
pub fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("cannot bind a loopback port for the proxy")
}

impl LeaderProxy {
    /// Serves `listener`, forwarding to the broker on loopback port `upstream`; `topic` is the
    /// one whose leaders [`LeaderProxy::set_leaderless`] takes away.
    pub fn start(listener: TcpListener, upstream: u16, topic: &str) -> LeaderProxy {
        let port = listener.local_addr().expect("proxy address").port();
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let proxy = LeaderProxy {
            port,
            leaderless: Arc::new(AtomicBool::new(false)),
            patched: Arc::new(AtomicU64::new(0)),
            unparsed: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
            conns: Arc::new(Mutex::new(Vec::new())),
        };
        let (leaderless, patched, unparsed, stop, conns) = (
            proxy.leaderless.clone(),
            proxy.patched.clone(),
            proxy.unparsed.clone(),
            proxy.stop.clone(),
            proxy.conns.clone(),
        );
        let topic: Arc<str> = Arc::from(topic);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                            let _ = client.shutdown(Shutdown::Both);
                            continue;
                        };
                        if let (Ok(c), Ok(s), Ok(mut all)) =
                            (client.try_clone(), server.try_clone(), conns.lock())
                        {
                            all.push(c);
                            all.push(s);
                        }
                        serve(
                            client,
                            server,
                            topic.clone(),
                            leaderless.clone(),
                            [patched.clone(), unparsed.clone()],
                        );
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        proxy
    }

    /// `bootstrap.servers` for clients: `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Takes the topic's leaders away (`true`) or gives them back.
    pub fn set_leaderless(&self, on: bool) {
        self.leaderless.store(on, Ordering::SeqCst);
    }

    /// Metadata responses patched so far.
    pub fn patched(&self) -> u64 {
        self.patched.load(Ordering::Relaxed)
    }

    /// Metadata responses that did not parse (forwarded as they were).
    pub fn unparsed(&self) -> u64 {
        self.unparsed.load(Ordering::Relaxed)
    }
}

impl Drop for LeaderProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Ok(all) = self.conns.lock() {
            for c in all.iter() {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }
}

/// One client connection: requests forwarded as they are (the correlation ids of Metadata
/// requests noted with their versions), responses forwarded as they are but for those.
fn serve(
    mut client: TcpStream,
    mut server: TcpStream,
    topic: Arc<str>,
    leaderless: Arc<AtomicBool>,
    [patched, unparsed]: [Arc<AtomicU64>; 2],
) {
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let metadata: Arc<Mutex<HashMap<i32, i16>>> = Arc::default();
    let (Ok(mut client_w), Ok(mut server_r)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let asked = metadata.clone();
    std::thread::spawn(move || {
        while let Some(frame) = read_frame(&mut client) {
            if frame.len() >= 8 && i16::from_be_bytes([frame[0], frame[1]]) == METADATA {
                let version = i16::from_be_bytes([frame[2], frame[3]]);
                let id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
                if let Ok(mut m) = asked.lock() {
                    m.insert(id, version);
                }
            }
            if write_frame(&mut server, &frame).is_err() {
                break;
            }
        }
        let _ = (
            client.shutdown(Shutdown::Both),
            server.shutdown(Shutdown::Both),
        );
    });
    std::thread::spawn(move || {
        while let Some(mut frame) = read_frame(&mut server_r) {
            if frame.len() >= 4 {
                let id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
                let version = metadata.lock().ok().and_then(|mut m| m.remove(&id));
                if let Some(v) = version.filter(|_| leaderless.load(Ordering::SeqCst)) {
                    match leaderless_partitions(&mut frame, v, topic.as_bytes()) {
                        Some(true) => patched.fetch_add(1, Ordering::Relaxed),
                        Some(false) => 0,
                        None => unparsed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }
            if write_frame(&mut client_w, &frame).is_err() {
                break;
            }
        }
        let _ = (
            client_w.shutdown(Shutdown::Both),
            server_r.shutdown(Shutdown::Both),
        );
    });
}

/// A size-prefixed frame's body, or `None` at the end of the stream.
fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let len = usize::try_from(i32::from_be_bytes(len)).ok()?;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some(body)
}

fn write_frame(s: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
    let len = i32::try_from(body.len()).unwrap_or(i32::MAX).to_be_bytes();
    s.write_all(&len)?;
    s.write_all(body)
}

/// A cursor over a response, reading the fields of the Kafka protocol (flexible versions:
/// compact strings and arrays, tagged fields).
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
    flexible: bool,
}

impl Cursor<'_> {
    fn skip(&mut self, n: usize) -> Option<()> {
        self.at = self.at.checked_add(n).filter(|&e| e <= self.b.len())?;
        Some(())
    }

    fn int(&mut self, n: usize) -> Option<i64> {
        let bytes = self.b.get(self.at..self.at + n)?;
        self.at += n;
        match *bytes {
            [a, b] => Some(i64::from(i16::from_be_bytes([a, b]))),
            [a, b, c, d] => Some(i64::from(i32::from_be_bytes([a, b, c, d]))),
            _ => None,
        }
    }

    fn uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.at)?;
            self.at += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// A (nullable) string's bytes; `None` inside for null.
    fn string(&mut self) -> Option<Option<&[u8]>> {
        let len = if self.flexible {
            i64::try_from(self.uvarint()?).ok()? - 1
        } else {
            self.int(2)?
        };
        if len < 0 {
            return Some(None);
        }
        let start = self.at;
        self.skip(usize::try_from(len).ok()?)?;
        Some(Some(&self.b[start..self.at]))
    }

    fn array_len(&mut self) -> Option<usize> {
        let n = if self.flexible {
            i64::try_from(self.uvarint()?).ok()? - 1
        } else {
            self.int(4)?
        };
        Some(usize::try_from(n.max(0)).unwrap_or(0))
    }

    fn tagged_fields(&mut self) -> Option<()> {
        if self.flexible {
            for _ in 0..self.uvarint()? {
                self.uvarint()?;
                let size = usize::try_from(self.uvarint()?).ok()?;
                self.skip(size)?;
            }
        }
        Some(())
    }
}

/// Patches a Metadata response of version `v` (its response header included) so that every
/// partition of `topic` has no leader: whether it named the topic, `None` if it does not parse.
fn leaderless_partitions(frame: &mut [u8], v: i16, topic: &[u8]) -> Option<bool> {
    let mut patches: Vec<(usize, usize)> = Vec::new();
    {
        let mut c = Cursor {
            b: frame,
            at: 0,
            flexible: v >= 9,
        };
        c.skip(4)?; // correlation id
        c.tagged_fields()?; // response header v1 for flexible versions
        if v >= 3 {
            c.skip(4)?; // throttle_time_ms
        }
        for _ in 0..c.array_len()? {
            c.skip(4)?; // node_id
            c.string()?; // host
            c.skip(4)?; // port
            if v >= 1 {
                c.string()?; // rack
            }
            c.tagged_fields()?;
        }
        if v >= 2 {
            c.string()?; // cluster_id
        }
        if v >= 1 {
            c.skip(4)?; // controller_id
        }
        for _ in 0..c.array_len()? {
            c.skip(2)?; // error_code
            let name = c.string()?;
            let ours = name == Some(topic);
            if v >= 10 {
                c.skip(16)?; // topic_id
            }
            if v >= 1 {
                c.skip(1)?; // is_internal
            }
            for _ in 0..c.array_len()? {
                let error_at = c.at;
                c.skip(2 + 4)?; // error_code, partition_index
                let leader_at = c.at;
                c.skip(4)?; // leader_id
                if v >= 7 {
                    c.skip(4)?; // leader_epoch
                }
                let arrays = if v >= 5 { 3 } else { 2 }; // replicas, isr, offline
                for _ in 0..arrays {
                    let n = c.array_len()?;
                    c.skip(4 * n)?;
                }
                c.tagged_fields()?;
                if ours {
                    patches.push((error_at, leader_at));
                }
            }
            if v >= 8 {
                c.skip(4)?; // topic_authorized_operations
            }
            c.tagged_fields()?;
        }
    }
    for &(error_at, leader_at) in &patches {
        frame[error_at..error_at + 2].copy_from_slice(&LEADER_NOT_AVAILABLE.to_be_bytes());
        frame[leader_at..leader_at + 4].copy_from_slice(&(-1i32).to_be_bytes());
    }
    Some(!patches.is_empty())
}
