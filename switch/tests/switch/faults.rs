//! What the fault tests (`full_disk`, `redis_restart`) share: purchases kept in flight on a
//! terminal through a fault, a terminal's retry until approved, and the books checked after.

use super::e2e::{Card, Purchase, Switch, Terminal, code, start_balance, text, verify};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Between a terminal's retries.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// What the terminal was told.
#[derive(Default)]
pub(super) struct Outcomes {
    /// Approved purchases with their RRN and authorization id.
    pub(super) approved: Vec<(Purchase, String, String)>,
    /// Purchases answered `91`.
    pub(super) refused: Vec<Purchase>,
}

impl Outcomes {
    /// Sends `p` and records its approval (anything else fails the test).
    pub(super) async fn approve(&mut self, t: &mut Terminal, p: Purchase, when: &str) {
        let answer = t.purchase(&p).await;
        assert_eq!(code(&answer), "00", "{when}");
        self.approved
            .push((p, text(&answer, 37), text(&answer, 38)));
    }

    /// Keeps `in_flight` purchases from `next` outstanding on `t`, runs `fault` once the first
    /// are sent, and goes on until `refusals` are answered `91` or `max` were sent; `00` and
    /// `91` are the only answers allowed. Returns how many were sent and refused.
    pub(super) async fn through_fault(
        &mut self,
        t: &mut Terminal,
        next: &mut impl FnMut() -> Purchase,
        (in_flight_max, refusals, max): (usize, usize, usize),
        fault: impl FnOnce(),
        during: &str,
    ) -> (usize, usize) {
        let (mut in_flight, mut sent, mut declined) = (Vec::<Purchase>::new(), 0, 0);
        while in_flight.len() < in_flight_max {
            let p = next();
            t.send(&t.purchase_message(&p)).await;
            in_flight.push(p);
            sent += 1;
        }
        fault();
        while !in_flight.is_empty() {
            let answer = t.receive().await;
            let stan = String::from_utf8(answer.stan().unwrap().to_vec()).unwrap();
            let position = in_flight.iter().position(|p| p.stan == stan).unwrap();
            let p = in_flight.swap_remove(position);
            match code(&answer).as_str() {
                "00" => self
                    .approved
                    .push((p, text(&answer, 37), text(&answer, 38))),
                "91" => {
                    declined += 1;
                    self.refused.push(p);
                }
                other => panic!("{during}: {other}"),
            }
            if declined < refusals && sent < max {
                let p = next();
                t.send(&t.purchase_message(&p)).await;
                in_flight.push(p);
                sent += 1;
            }
        }
        (sent, declined)
    }

    /// Sends `p` until it is approved, `91`s meanwhile, for at most `deadline`.
    pub(super) async fn retry_until_approved(
        &mut self,
        t: &mut Terminal,
        p: Purchase,
        deadline: Duration,
        after: &str,
    ) {
        let started = Instant::now();
        loop {
            let answer = t.purchase(&p).await;
            match code(&answer).as_str() {
                "00" => {
                    self.approved
                        .push((p, text(&answer, 37), text(&answer, 38)));
                    return;
                }
                "91" if started.elapsed() < deadline => {
                    self.refused.push(p.clone());
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                other => panic!("{after}: {other}"),
            }
        }
    }

    /// Every approval is still the journal's (a repeat gets its RRN and authorization id),
    /// and every card touched, refused ones too, holds what its approvals left: no `91`
    /// took money.
    pub(super) async fn assert_books(&self, t: &mut Terminal, cards: &[Card], after: &str) {
        let mut spent: HashMap<String, u64> = self
            .refused
            .iter()
            .map(|p| (p.card.pan.clone(), 0))
            .collect();
        for (p, rrn, authorization) in &self.approved {
            let again = t.purchase(p).await;
            assert_eq!(
                (code(&again), text(&again, 37), text(&again, 38)),
                ("00".to_string(), rrn.clone(), authorization.clone()),
                "an approval lost {after}"
            );
            *spent.entry(p.card.pan.clone()).or_default() += p.amount;
        }
        for card in cards.iter().filter(|c| spent.contains_key(&c.pan)) {
            assert_eq!(
                t.balance(card).await,
                start_balance(card) - spent[&card.pan],
                "a card's balance {after}"
            );
        }
    }
}

/// Purchases on `cards` in turn, each amount a little different from the last.
pub(super) fn purchases(cards: &[Card]) -> impl FnMut(u64) -> Purchase + '_ {
    let mut next = 0usize;
    move |amount| {
        next += 1;
        Purchase::new(
            &cards[next % cards.len()],
            amount + (next as u64 % 5) * 1_000,
        )
    }
}

/// Kills the switch, then checks its journal with `ssn-switch verify`.
pub(super) fn stop_and_verify(mut switch: Switch) {
    let _ = switch.child.kill();
    let _ = switch.child.wait();
    verify(&switch.data_dir);
}
