//! How one LMS repayment is shared across a line's transactions (design §8): in the order given
//! (the drawdowns the record names, else the line's, oldest first), each takes what its month's
//! claim has left, at most; whatever is left after all of them goes to the last one that took a
//! share (to the first when none could). Shares are whole units of the amount Credgenics takes
//! (`decimals`), except that the last one carries whatever the record's own amount has beyond
//! that; they always sum exactly to the record's amount, and none is zero.

use rust_decimal::{Decimal, RoundingStrategy};

/// `(transaction id, room left in its claim)` in application order → `(transaction id, share)`.
pub fn split(amount: Decimal, room: &[(String, Decimal)], decimals: u32) -> Vec<(String, Decimal)> {
    if room.is_empty() || amount <= Decimal::ZERO {
        return Vec::new();
    }
    let mut shares: Vec<(String, Decimal)> = Vec::new();
    let mut left = amount;
    for (id, r) in room {
        if left <= Decimal::ZERO {
            break;
        }
        let r = r
            .max(&Decimal::ZERO)
            .round_dp_with_strategy(decimals, RoundingStrategy::ToZero);
        let take = r.min(left.round_dp_with_strategy(decimals, RoundingStrategy::ToZero));
        if take > Decimal::ZERO {
            shares.push((id.clone(), take));
            left -= take;
        }
    }
    if left > Decimal::ZERO {
        match shares.last_mut() {
            Some((_, s)) => *s += left,
            None => shares.push((room[0].0.clone(), left)),
        }
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn a_repayment_settling_two_drawdowns_is_two_shares_oldest_first() {
        let room = vec![("T1".to_string(), d("1000")), ("T2".to_string(), d("500.50"))];
        assert_eq!(
            split(d("1300.25"), &room, 2),
            vec![("T1".to_string(), d("1000")), ("T2".to_string(), d("300.25"))]
        );
        // More than both claims: the excess stays on the last one paid.
        assert_eq!(
            split(d("2000"), &room, 2),
            vec![("T1".to_string(), d("1000")), ("T2".to_string(), d("1000.00"))]
        );
        // No room anywhere (claims already met): all of it on the first.
        let full = vec![("T1".to_string(), d("0")), ("T2".to_string(), d("0"))];
        assert_eq!(split(d("10"), &full, 2), vec![("T1".to_string(), d("10"))]);
    }

    #[test]
    fn whole_rupee_shares_when_credgenics_takes_integers() {
        let room = vec![("T1".to_string(), d("333.67")), ("T2".to_string(), d("999"))];
        let s = split(d("500.50"), &room, 0);
        assert_eq!(s, vec![("T1".to_string(), d("333")), ("T2".to_string(), d("167.50"))]);
    }

    proptest! {
        #[test]
        fn shares_sum_exactly_to_the_record_and_none_is_zero_or_over_its_room(
            paise in 1i64..100_000_000,
            rooms in proptest::collection::vec(0i64..50_000_000, 1..6),
            decimals in 0u32..3,
        ) {
            let amount = Decimal::new(paise, 2);
            let room: Vec<(String, Decimal)> =
                rooms.iter().enumerate().map(|(i, r)| (format!("T{i}"), Decimal::new(*r, 2))).collect();
            let shares = split(amount, &room, decimals);
            let total: Decimal = shares.iter().map(|(_, s)| *s).sum();
            prop_assert_eq!(total, amount);
            prop_assert!(shares.iter().all(|(_, s)| *s > Decimal::ZERO));
            // Every share but the last fits in its room; ids are distinct and in order.
            for (id, s) in &shares[..shares.len() - 1] {
                let r = room.iter().find(|(i, _)| i == id).unwrap().1;
                prop_assert!(*s <= r);
            }
            let order: Vec<usize> = shares.iter().map(|(id, _)| room.iter().position(|(i, _)| i == id).unwrap()).collect();
            prop_assert!(order.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
