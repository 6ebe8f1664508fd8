//! The root context's outbox of decision events, free of host calls so it is tested natively.
//!
//! HTTP contexts hand events to the root context through a shared queue (a call dispatched
//! from an HTTP context is cancelled when its stream ends, which is when a local reply ends
//! it). The root context sends at most `max_in_flight` at a time; beyond a backlog of four
//! times that, the oldest events are dropped and counted: recording must never hold memory
//! without bound or slow the data path.

use std::collections::VecDeque;

pub struct Outbox {
    backlog: VecDeque<Vec<u8>>,
    in_flight: usize,
    max_in_flight: usize,
}

impl Outbox {
    pub fn new(max_in_flight: usize) -> Self {
        Outbox {
            backlog: VecDeque::new(),
            in_flight: 0,
            max_in_flight: max_in_flight.max(1),
        }
    }

    /// Queue an event; returns how many old events were dropped to stay within the bound.
    pub fn push(&mut self, event: Vec<u8>) -> usize {
        self.backlog.push_back(event);
        let mut dropped = 0;
        while self.backlog.len() > self.max_in_flight * 4 {
            self.backlog.pop_front();
            dropped += 1;
        }
        dropped
    }

    /// The next event to send, if one is waiting and a send slot is free. The caller reports
    /// the dispatch with [`Outbox::dispatched`] or [`Outbox::dispatch_failed`].
    pub fn next_to_send(&mut self) -> Option<Vec<u8>> {
        if self.in_flight >= self.max_in_flight {
            return None;
        }
        self.backlog.pop_front()
    }

    pub fn dispatched(&mut self) {
        self.in_flight += 1;
    }

    /// The host refused the call: the event is lost (and counted by the caller).
    pub fn dispatch_failed(&mut self) {}

    /// A sent event got its answer (or failed in flight): its slot is free again.
    pub fn completed(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }

    /// Drop everything waiting (no events target configured); returns how many.
    pub fn clear(&mut self) -> usize {
        let n = self.backlog.len();
        self.backlog.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_at_most_max_in_flight_and_frees_slots_on_answers() {
        let mut o = Outbox::new(2);
        for i in 0..3u8 {
            assert_eq!(o.push(vec![i]), 0);
        }
        assert_eq!(o.next_to_send(), Some(vec![0]));
        o.dispatched();
        assert_eq!(o.next_to_send(), Some(vec![1]));
        o.dispatched();
        assert_eq!(o.next_to_send(), None, "both slots busy");
        o.completed();
        assert_eq!(o.next_to_send(), Some(vec![2]));
        o.completed();
        o.completed();
        o.completed(); // more answers than sends never underflows
        assert_eq!(o.next_to_send(), None);
    }

    #[test]
    fn backlog_is_bounded_and_drops_the_oldest() {
        let mut o = Outbox::new(1);
        let dropped: usize = (0..10u8).map(|i| o.push(vec![i])).sum();
        assert_eq!(dropped, 6);
        assert_eq!(o.backlog(), 4);
        assert_eq!(o.next_to_send(), Some(vec![6]));
        assert_eq!(o.clear(), 3);
    }
}
