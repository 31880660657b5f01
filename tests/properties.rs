//! Properties over many generated values: money rounding and allocation months.

use crego_credgenics_sync::clock::allocation_month;
use crego_credgenics_sync::money;
use crego_credgenics_sync::partners::credgenics::rules::is_allocation_month;
use proptest::prelude::*;
use rust_decimal::Decimal;

proptest! {
    #[test]
    fn rounding_is_half_up_exact_and_round_trips_through_json(units in -10_000_000_000i64..10_000_000_000i64, scale in 0u32..6) {
        let d = Decimal::new(units, scale);
        let r = money::round(d, 2);
        prop_assert!(r.scale() <= 2);
        prop_assert!((r - d).abs() <= Decimal::new(5, 3));
        // JSON text in, the same decimal out: never through f64.
        prop_assert_eq!(money::from_json(&money::to_json(r)).unwrap(), r);
    }

    #[test]
    fn every_date_gives_a_valid_unpadded_allocation_month(y in 2000i16..2100, m in 1i8..=12, d in 1i8..=28) {
        let month = allocation_month(jiff::civil::Date::new(y, m, d).unwrap());
        prop_assert!(is_allocation_month(&month), "{}", month);
        prop_assert!(!month.split('-').nth(1).unwrap().starts_with('0'), "{}", month);
    }
}
