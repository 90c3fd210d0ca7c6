//! `GetStatistics` and `GetPercentiles` over the values of the aggregation field in the
//! matching documents, which the node collects (one entry per document, an array for a
//! multi-valued field; see [`field_values`](super::field_values)).
//!
//! AWS types each indexed field; here a value's JSON type is its type (the node indexes a
//! Number custom field as JSON numbers). Only JSON numbers are aggregated: a field with no
//! numbers (strings, booleans) is a string field, for which, as AWS does, `GetStatistics`
//! returns only the count and `GetPercentiles` nothing. A string that looks like a number
//! (`"1.0"`, as registry attributes are stored) is a string.

use serde_json::Value;

use super::predicate::numeric;
use super::values::scalars;

/// AWS's percentile groups when the request names none.
pub const DEFAULT_PERCENTS: [f64; 7] = [1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0];

/// The `statistics` object of `GetStatistics`. Statistics other than `count` are `None` for a
/// non-numeric field, for no values, and where the result overflows `f64`.
#[derive(Debug, Clone, PartialEq)]
pub struct Statistics {
    /// How many values were aggregated (one per document with a single-valued field).
    pub count: u64,
    /// `sum / count`.
    pub average: Option<f64>,
    /// The sum of the values.
    pub sum: Option<f64>,
    /// The smallest value.
    pub minimum: Option<f64>,
    /// The largest value.
    pub maximum: Option<f64>,
    /// The sum of the squares of the values.
    pub sum_of_squares: Option<f64>,
    /// The population variance: the mean squared distance from the average (as Elasticsearch's
    /// `extended_stats`, which AWS's fields follow).
    pub variance: Option<f64>,
    /// The square root of the variance.
    pub std_deviation: Option<f64>,
}

impl Statistics {
    /// Every statistic by AWS's name (`count`, `average`, `sum`, `minimum`, `maximum`,
    /// `sumOfSquares`, `variance`, `stdDeviation`), `count` as a number.
    pub fn named(&self) -> [(&'static str, Option<f64>); 8] {
        [
            ("count", Some(self.count as f64)),
            ("average", self.average),
            ("sum", self.sum),
            ("minimum", self.minimum),
            ("maximum", self.maximum),
            ("sumOfSquares", self.sum_of_squares),
            ("variance", self.variance),
            ("stdDeviation", self.std_deviation),
        ]
    }
}

/// The JSON numbers among the values (`None` when there are none: a string field).
fn numbers(values: &[Value]) -> Option<Vec<f64>> {
    let numbers: Vec<f64> = scalars(values).into_iter().filter_map(numeric).collect();
    Some(numbers).filter(|numbers| !numbers.is_empty())
}

/// `GetStatistics` of `values` (nulls and objects are not values; arrays are flattened). For a
/// numeric field (any JSON number among the values) every statistic is over the numbers, and
/// `count` is how many there are: a value of another type is not a valid value of a Number
/// field. For a string field, `count` is the number of values and the rest is `None`.
pub fn statistics(values: &[Value]) -> Statistics {
    let Some(numbers) = numbers(values) else {
        let count = scalars(values).len() as u64;
        return Statistics {
            count,
            average: None,
            sum: None,
            minimum: None,
            maximum: None,
            sum_of_squares: None,
            variance: None,
            std_deviation: None,
        };
    };
    let finite = |value: f64| Some(value).filter(|value| value.is_finite());
    let count = numbers.len() as u64;
    let n = numbers.len() as f64;
    let sum: f64 = numbers.iter().sum();
    let average = finite(sum / n);
    let variance =
        average.map(|average| numbers.iter().map(|value| (value - average).powi(2)).sum::<f64>() / n).and_then(finite);
    Statistics {
        count,
        average,
        sum: finite(sum),
        minimum: numbers.iter().copied().reduce(f64::min),
        maximum: numbers.iter().copied().reduce(f64::max),
        sum_of_squares: finite(numbers.iter().map(|value| value * value).sum()),
        variance,
        std_deviation: variance.map(f64::sqrt),
    }
}

/// `GetPercentiles`: `(percent, value)` for each of `percents` ([`DEFAULT_PERCENTS`] when
/// empty) in the order given, percents outside 0 to 100 left out. Exact, where AWS
/// approximates: the value at rank `p / 100 × (n − 1)` of the sorted values, interpolated
/// linearly between the two nearest ranks (Excel's `PERCENTILE.INC`, NumPy's default), over
/// the JSON numbers among the values. Empty when there are none (a string field).
pub fn percentiles(values: &[Value], percents: &[f64]) -> Vec<(f64, f64)> {
    let Some(mut numbers) = numbers(values) else { return Vec::new() };
    numbers.sort_by(f64::total_cmp);
    let percents = if percents.is_empty() { &DEFAULT_PERCENTS[..] } else { percents };
    let last = (numbers.len() - 1) as f64;
    percents
        .iter()
        .filter(|percent| (0.0..=100.0).contains(*percent))
        .filter_map(|&percent| {
            let rank = percent / 100.0 * last;
            let below = numbers.get(rank.floor() as usize)?;
            let above = numbers.get(rank.ceil() as usize)?;
            Some((percent, below + (above - below) * (rank - rank.floor())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numeric_fields_get_every_statistic() {
        let stats = statistics(&[json!(2), json!(4), json!([4, 4]), json!(null), json!(5), json!(7), json!(9)]);
        assert_eq!(stats.count, 7);
        assert_eq!((stats.sum, stats.average), (Some(35.0), Some(5.0)));
        assert_eq!((stats.minimum, stats.maximum), (Some(2.0), Some(9.0)));
        assert_eq!(stats.sum_of_squares, Some(207.0));
        let variance = stats.variance.unwrap();
        assert!((variance - 32.0 / 7.0).abs() < 1e-12);
        assert!((stats.std_deviation.unwrap() - variance.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn string_fields_get_only_a_count_even_when_the_strings_look_like_numbers() {
        let stats = statistics(&[json!("1.0"), json!("2.0"), json!(["a", true])]);
        assert_eq!(stats.count, 4);
        assert_eq!((stats.sum, stats.average, stats.variance), (None, None, None));
        assert_eq!(statistics(&[]).count, 0);
    }

    #[test]
    fn values_of_another_type_in_a_numeric_field_are_not_counted() {
        let stats = statistics(&[json!(1), json!("n/a"), json!(3)]);
        assert_eq!((stats.count, stats.average), (2, Some(2.0)));
    }

    #[test]
    fn overflowing_statistics_are_left_out() {
        let stats = statistics(&[json!(1e308), json!(1e308)]);
        assert_eq!((stats.sum, stats.maximum), (None, Some(1e308)));
    }

    #[test]
    fn percentiles_interpolate_between_ranks() {
        let values: Vec<Value> = [15, 20, 35, 40, 50].into_iter().map(Value::from).collect();
        let got = percentiles(&values, &[0.0, 25.0, 50.0, 100.0, 101.0, -1.0, f64::NAN]);
        assert_eq!(got, vec![(0.0, 15.0), (25.0, 20.0), (50.0, 35.0), (100.0, 50.0)]);
        let (_, forty) = percentiles(&values, &[40.0])[0];
        assert!((forty - 29.0).abs() < 1e-9);
        assert_eq!(percentiles(&values, &[]).len(), DEFAULT_PERCENTS.len());
        assert_eq!(percentiles(&[json!(3)], &[]), DEFAULT_PERCENTS.map(|p| (p, 3.0)).to_vec());
        assert_eq!(percentiles(&[json!("x"), json!(1)], &[50.0]), vec![(50.0, 1.0)]);
        assert!(percentiles(&[json!("1"), json!("2")], &[50.0]).is_empty());
    }
}
