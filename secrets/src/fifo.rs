//! Reading a FIFO given as a secret file, without waiting forever.
//!
//! Process substitution (`--eab-hmac-file <(pass show acme/eab)`) hands berth a pipe, and
//! a named pipe may never get a writer at all. The descriptor is opened non-blocking; this
//! module polls it until the writer has written and closed it, up to a deadline.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use zeroize::Zeroizing;

use crate::error::Error;

/// Why a FIFO could not be read; placed at a path by [`Failure::at`].
pub(crate) enum Failure {
    /// The writer did not finish before the deadline.
    Timeout,
    /// More than the cap arrived.
    TooLarge,
    /// The read or poll failed.
    Io(io::Error),
}

impl Failure {
    /// The loader's error for this failure at `path`.
    pub(crate) fn at(self, path: &Path, cap: u64, waited: Duration) -> Error {
        let path = path.to_path_buf();
        match self {
            Failure::Timeout => Error::FifoTimeout { path, waited },
            Failure::TooLarge => Error::TooLarge { path, cap },
            Failure::Io(e) => Error::from_io(&path, e),
        }
    }
}

/// Reads `file` (a FIFO opened with `O_NONBLOCK`) until its writer closes it, at most
/// `cap` bytes, within `wait`.
pub(crate) fn read(file: &File, cap: u64, wait: Duration) -> Result<Zeroizing<Vec<u8>>, Failure> {
    let deadline = Instant::now() + wait;
    let mut buffer = Zeroizing::new(Vec::new());
    let mut chunk = Zeroizing::new([0u8; 4096]);
    let mut reader = file;
    loop {
        let hung_up = poll_readable(file, deadline)?;
        match reader.read(&mut chunk[..]) {
            Ok(0) if hung_up || !buffer.is_empty() => return Ok(buffer),
            // No writer has opened the pipe yet: keep waiting for one.
            Ok(0) => wait_a_little(deadline)?,
            Ok(n) => {
                buffer.extend_from_slice(&chunk[..n]);
                if buffer.len() as u64 > cap {
                    return Err(Failure::TooLarge);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Failure::Io(e)),
        }
    }
}

/// Waits until `file` has data or its writer hung up; `Ok(true)` when it hung up.
fn poll_readable(file: &File, deadline: Instant) -> Result<bool, Failure> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Failure::Timeout);
    }
    let timeout = Timespec::try_from(left).map_err(|_| Failure::Timeout)?;
    let mut fds = [PollFd::new(file, PollFlags::IN)];
    match poll(&mut fds, Some(&timeout)) {
        Ok(0) => Err(Failure::Timeout),
        Ok(_) => Ok(fds[0].revents().contains(PollFlags::HUP)),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(Failure::Io(e.into())),
    }
}

/// A pipe without a writer reads as empty at once and polls as readable on some
/// kernels; sleep briefly instead of spinning until the deadline.
fn wait_a_little(deadline: Instant) -> Result<(), Failure> {
    if Instant::now() >= deadline {
        return Err(Failure::Timeout);
    }
    std::thread::sleep(Duration::from_millis(20));
    Ok(())
}
