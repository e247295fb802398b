//! The byte budget shared by every request body being received: reservations that give their bytes back on drop.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus::IntGauge;

/// How many request body bytes all requests together may hold; shared by every HTTP worker.
#[derive(Debug)]
pub struct BodyBudget {
    capacity: usize,
    in_flight: AtomicUsize,
    gauge: IntGauge,
}

/// The budget has no room for the bytes asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetFull;

impl BodyBudget {
    /// A budget of `capacity` bytes whose use is mirrored in `gauge`.
    pub fn new(capacity: usize, gauge: IntGauge) -> Arc<BodyBudget> {
        Arc::new(BodyBudget {
            capacity,
            in_flight: AtomicUsize::new(0),
            gauge,
        })
    }

    /// The budget's size in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes reserved right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Bytes reserved as the gauge shows them.
    pub fn gauge_value(&self) -> i64 {
        self.gauge.get()
    }

    /// Reserves `bytes` (possibly 0, to grow later), or refuses when they do not fit.
    pub fn reserve(self: &Arc<Self>, bytes: usize) -> Result<Reservation, BudgetFull> {
        self.take(bytes)?;
        Ok(Reservation {
            budget: Arc::clone(self),
            bytes,
        })
    }

    fn take(&self, bytes: usize) -> Result<(), BudgetFull> {
        if bytes == 0 {
            return Ok(());
        }
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                now.checked_add(bytes)
                    .filter(|after| *after <= self.capacity)
            })
            .map_err(|_| BudgetFull)?;
        // Deltas, not the total: concurrent updates cannot leave the gauge on a stale value.
        self.gauge.add(bytes as i64);
        Ok(())
    }

    fn give_back(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.in_flight.fetch_sub(bytes, Ordering::AcqRel);
        self.gauge.sub(bytes as i64);
    }
}

/// Bytes held against a [`BodyBudget`]; they go back when this is dropped (the body was parsed, or the client left
/// or timed out).
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<BodyBudget>,
    bytes: usize,
}

impl Reservation {
    /// Grows the reservation to cover `total` bytes (never shrinks it).
    pub fn cover(&mut self, total: usize) -> Result<(), BudgetFull> {
        if total > self.bytes {
            self.budget.take(total - self.bytes)?;
            self.bytes = total;
        }
        Ok(())
    }

    /// Bytes reserved.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(capacity: usize) -> Arc<BodyBudget> {
        BodyBudget::new(capacity, IntGauge::new("test_in_flight", "test").unwrap())
    }

    #[test]
    fn reservations_are_refused_past_the_capacity_and_released_on_drop() {
        let b = budget(100);
        let first = b.reserve(60).unwrap();
        assert_eq!(b.reserve(41).unwrap_err(), BudgetFull);
        let second = b.reserve(40).unwrap();
        assert_eq!((b.in_flight(), b.gauge.get()), (100, 100));
        drop(first);
        assert_eq!((b.in_flight(), b.gauge.get()), (40, 40));
        drop(second);
        assert_eq!((b.in_flight(), b.gauge.get()), (0, 0));
    }

    #[test]
    fn a_reservation_grows_chunk_by_chunk_until_the_budget_is_full() {
        let b = budget(100);
        let other = b.reserve(30).unwrap();
        let mut r = b.reserve(0).unwrap();
        r.cover(50).unwrap();
        r.cover(20).unwrap();
        assert_eq!(r.bytes(), 50, "never shrinks");
        r.cover(70).unwrap();
        assert_eq!(r.cover(71), Err(BudgetFull));
        assert_eq!((r.bytes(), b.in_flight()), (70, 100));
        drop(r);
        drop(other);
        assert_eq!((b.in_flight(), b.gauge.get()), (0, 0));
    }

    #[test]
    fn huge_requests_do_not_overflow() {
        let b = budget(usize::MAX - 1);
        let _r = b.reserve(10).unwrap();
        assert!(b.reserve(usize::MAX).is_err());
    }
}
