//! The buffer under a stream request's `rfile`: std's `BufReader` behaviour, over a buffer
//! that can be handed back while its connection waits between turns and taken again at the
//! next turn.
//!
//! std's `BufReader` zero-fills a fresh buffer before its first read (it reads through
//! `Read::read`, which needs initialised bytes): with a 64 KiB `rbufsize`, a connection that
//! waits after every message paid a 64 KiB `memset` and a `malloc`/`free` per turn. Here a
//! buffer given back goes to a cache of this thread (at most [`SPARES`]), already initialised,
//! and the next turn on this thread takes it from there: a waiting connection still holds no
//! buffer, and a thread holds at most [`SPARES`] spare ones.

use std::{
    cell::RefCell,
    io::{self, BufRead, Read},
};

/// The spare buffers a thread keeps.
const SPARES: usize = 2;

thread_local! {
    static SPARE: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `capacity` bytes: a spare one of this thread if it has one that size.
fn take(capacity: usize) -> Box<[u8]> {
    if capacity == 0 {
        return Box::default();
    }
    let spare = SPARE
        .try_with(|spare| {
            let mut spare = spare.try_borrow_mut().ok()?;
            let at = spare.iter().position(|b| b.len() == capacity)?;
            Some(spare.swap_remove(at))
        })
        .ok()
        .flatten();
    spare.unwrap_or_else(|| vec![0; capacity].into_boxed_slice())
}

/// Keeps `buffer` as a spare of this thread, if it has room for one (else frees it).
fn give(buffer: Box<[u8]>) {
    if buffer.is_empty() {
        return;
    }
    // A thread that is ending (its cache already gone) frees it.
    let _ = SPARE.try_with(|spare| {
        if let Ok(mut spare) = spare.try_borrow_mut() {
            if spare.len() < SPARES {
                spare.push(buffer);
            }
        }
    });
}

/// A buffered reader (as `BufReader`) whose buffer can be swapped while it holds nothing.
pub(crate) struct Buffered<R> {
    inner: R,
    buf: Box<[u8]>,
    /// `buf[pos..filled]` is what is buffered and not read yet.
    pos: usize,
    filled: usize,
}

impl<R: Read> Buffered<R> {
    pub(crate) fn with_capacity(capacity: usize, inner: R) -> Self {
        Buffered {
            inner,
            buf: take(capacity),
            pos: 0,
            filled: 0,
        }
    }

    pub(crate) fn get_ref(&self) -> &R {
        &self.inner
    }

    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn buffer(&self) -> &[u8] {
        &self.buf[self.pos..self.filled]
    }

    /// Swaps the buffer for one of `capacity` bytes (0: none), if nothing is buffered
    /// (buffered bytes are never dropped); the old one becomes a spare of this thread.
    pub(crate) fn resize(&mut self, capacity: usize) {
        if self.pos < self.filled || self.buf.len() == capacity {
            return;
        }
        give(std::mem::take(&mut self.buf));
        self.buf = take(capacity);
        self.pos = 0;
        self.filled = 0;
    }
}

impl<R> Drop for Buffered<R> {
    fn drop(&mut self) {
        give(std::mem::take(&mut self.buf));
    }
}

impl<R: Read> Read for Buffered<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        // As `BufReader`: a read as large as the buffer, with nothing buffered, bypasses it.
        if self.pos == self.filled && out.len() >= self.buf.len() {
            return self.inner.read(out);
        }
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Buffered<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.filled {
            let n = self.inner.read(&mut self.buf)?;
            self.pos = 0;
            self.filled = n;
        }
        Ok(&self.buf[self.pos..self.filled])
    }

    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.filled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_as_a_bufreader_and_keeps_buffered_bytes_across_a_resize() {
        let data: Vec<u8> = (0..=255).cycle().take(1000).collect();
        let mut reader = Buffered::with_capacity(64, &data[..]);
        let mut first = [0; 10];
        assert_eq!(reader.read(&mut first).unwrap(), 10);
        assert_eq!(reader.buffer().len(), 54);
        reader.resize(0); // refused: bytes are buffered
        assert_eq!(reader.capacity(), 64);
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert_eq!([&first[..], &rest[..]].concat(), data);
        reader.resize(0);
        assert_eq!(reader.capacity(), 0);
        reader.resize(64);
        assert_eq!(reader.capacity(), 64);
        assert!(reader.fill_buf().unwrap().is_empty());
    }

    #[test]
    fn a_buffer_given_back_is_reused_on_this_thread_and_the_spares_are_bounded() {
        let mut reader = Buffered::with_capacity(4096, &b""[..]);
        let address = reader.buf.as_ptr();
        reader.resize(0);
        reader.resize(4096);
        assert_eq!(
            reader.buf.as_ptr(),
            address,
            "the spare buffer was not reused"
        );
        let readers: Vec<_> = (0..5)
            .map(|_| Buffered::with_capacity(8, &b""[..]))
            .collect();
        drop(readers);
        SPARE.with(|spare| assert!(spare.borrow().len() <= SPARES));
    }
}
