//! A worker-wide pool of segment buffers, so that a stream's next segment is muxed into memory
//! a finished segment already used.
//!
//! Why: every stream fills a ~1.5 MB buffer per segment, hands it to its uploader and starts the
//! next one. Freed, such a buffer goes back to the allocator, which returns idle pages to the
//! OS within seconds; the next segment's buffer then faults in fresh, zeroed pages one by one.
//! On the micro-VMs we run on (free-page reporting returns those pages to the host) that
//! faulting was the largest single cost after AES: at 400 streams ~6,500 page faults a second,
//! and the pool took the worker from 98 % to 56 % of a core (docs/BENCHMARKS.md). A buffer
//! handed back here after its upload keeps its pages, and the next segment reuses them.
//!
//! An idle buffer holds a stored segment's ciphertext (segments are encrypted in place), and
//! [`SegmentBuffers::take`] hands it out empty: every byte of the next segment is written before
//! it is part of the vector, so nothing of one stream reaches another's segment.
//!
//! The pool is bounded ([`MAX_POOLED_BYTES`]); past it a returned buffer is freed as before. A
//! buffer whose bytes are still shared (a clone of the segment alive somewhere) cannot be taken
//! back and is simply dropped, so handing back is always safe.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

/// At most this many bytes of idle buffers are kept: enough for the buffers in transit between
/// an upload finishing and the next segment starting on a worker with a thousand streams, and
/// what a worker keeps at most once its streams have ended.
pub const MAX_POOLED_BYTES: usize = 128 << 20;

/// Idle segment buffers shared by every stream of a worker. Cloning shares the pool.
#[derive(Clone, Debug, Default)]
pub struct SegmentBuffers {
    idle: Arc<Mutex<IdleBuffers>>,
}

#[derive(Debug, Default)]
struct IdleBuffers {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

impl SegmentBuffers {
    /// An empty buffer with room for at least `capacity` bytes: the smallest idle buffer that
    /// is large enough, or a new allocation if none is.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        let mut idle = self.lock();
        let best_fit = idle
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, buffer)| buffer.capacity() >= capacity)
            .min_by_key(|(_, buffer)| buffer.capacity())
            .map(|(index, _)| index);
        if let Some(index) = best_fit {
            let buffer = idle.buffers.swap_remove(index);
            idle.bytes -= buffer.capacity();
            return buffer;
        }
        drop(idle); // allocate without holding up other streams
        Vec::with_capacity(capacity)
    }

    /// Takes back a finished segment's bytes once nothing else holds them.
    pub fn give_back(&self, bytes: Bytes) {
        let Ok(bytes) = bytes.try_into_mut() else {
            return; // still shared: it is freed when the last holder drops it
        };
        let mut buffer = Vec::from(bytes);
        buffer.clear();
        let mut idle = self.lock();
        if idle.bytes.saturating_add(buffer.capacity()) <= MAX_POOLED_BYTES {
            idle.bytes += buffer.capacity();
            idle.buffers.push(buffer);
        }
    }

    /// Bytes of idle buffers held now.
    #[cfg(test)]
    fn idle_bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> MutexGuard<'_, IdleBuffers> {
        // The state is a list and a sum updated together under the lock; a panic elsewhere
        // cannot leave it half-updated, so a poisoned lock is still consistent.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_buffer_is_reused_with_its_memory() {
        let buffers = SegmentBuffers::default();
        let mut first = buffers.take(1000);
        first.extend_from_slice(&[7; 900]);
        let address = first.as_ptr();
        let segment = Bytes::from(first);
        let upload = segment.clone();
        drop(upload);
        buffers.give_back(segment);
        assert!(buffers.idle_bytes() >= 1000);

        let second = buffers.take(800);
        assert_eq!(second.as_ptr(), address, "the same allocation comes back");
        assert!(second.is_empty() && second.capacity() >= 1000);
        assert_eq!(buffers.idle_bytes(), 0);
    }

    #[test]
    fn shared_bytes_are_not_taken_back() {
        let buffers = SegmentBuffers::default();
        let segment = Bytes::from(vec![1u8; 100]);
        let still_read = segment.clone();
        buffers.give_back(segment);
        assert_eq!(buffers.idle_bytes(), 0);
        assert_eq!(still_read, vec![1u8; 100]);
    }

    #[test]
    fn take_picks_the_smallest_buffer_that_fits() {
        let buffers = SegmentBuffers::default();
        for capacity in [4000, 1000, 2000] {
            let mut buffer = Vec::with_capacity(capacity);
            buffer.push(0);
            buffers.give_back(Bytes::from(buffer));
        }
        assert!((1500..4000).contains(&buffers.take(1500).capacity()));
        assert!(buffers.take(5000).capacity() >= 5000);
        assert!(buffers.take(10).capacity() < 2000);
    }

    #[test]
    fn the_pool_stays_under_its_cap() {
        let buffers = SegmentBuffers::default();
        for _ in 0..3 {
            let mut buffer = Vec::with_capacity(MAX_POOLED_BYTES / 2);
            buffer.push(0);
            buffers.give_back(Bytes::from(buffer));
        }
        assert!(buffers.idle_bytes() <= MAX_POOLED_BYTES);
        assert!(buffers.idle_bytes() >= MAX_POOLED_BYTES / 2);
    }
}
