//! Decimal numbers with AWS IoT's 34 significant digits: IEEE 754 decimal128 (the `dec` crate,
//! over IBM's decNumber, whose arithmetic and to-string rules are those of Java's BigDecimal with
//! `MathContext.DECIMAL128`, which is what AWS's engine uses). This module is the only place that
//! touches the `dec` API.

use std::cmp::Ordering;
use std::fmt;

use dec::{Context, Decimal128, Rounding};

/// A finite decimal number; operations that would leave the finite range give `None`.
#[derive(Clone, Copy)]
pub struct Dec(Decimal128);

fn cx() -> Context<Decimal128> {
    let mut cx = Context::<Decimal128>::default();
    cx.set_rounding(Rounding::HalfUp);
    cx
}

fn finite(d: Decimal128) -> Option<Dec> {
    d.is_finite().then_some(Dec(d))
}

/// The largest exponent decimal128 gives a coefficient's last digit (Emax - (Pmax - 1)).
/// A result whose exponent would be larger but whose value fits is stored by folding the
/// excess into the coefficient as zeros; decNumber's `decFinalize` does that from a buffer
/// whose scope has ended (AddressSanitizer: stack-use-after-scope), so no operation here
/// lets decNumber fold: [`scaled_up`] does it instead.
const E_TOP: i32 = 6111;

/// Digits of decimal128's coefficient.
const PRECISION: u32 = 34;

/// `d × 10^k` for a finite `d` with `k >= 0`, folding an exponent above [`E_TOP`] into the
/// coefficient here; `None` when the value is beyond decimal128's range.
fn scaled_up(d: Decimal128, k: i32) -> Option<Dec> {
    if !d.is_finite() {
        return None;
    }
    let target = d.exponent().saturating_add(k);
    let mut c = cx();
    if target <= E_TOP || d.is_zero() {
        let mut out = d;
        c.set_exponent(&mut out, target.min(E_TOP));
        return finite(out);
    }
    let shift = (target - E_TOP) as u32;
    if d.digits() + shift > PRECISION {
        return None;
    }
    finite(from_parts(d.coefficient().unsigned_abs() * 10u128.pow(shift), E_TOP, d.is_signed()))
}

/// `±magnitude × 10^exponent`, for a magnitude of at most 34 digits and an exponent at most
/// [`E_TOP`] (so decNumber never folds).
fn from_parts(magnitude: u128, exponent: i32, negative: bool) -> Decimal128 {
    let mut c = cx();
    let mut out = c.from_u128(magnitude);
    c.set_exponent(&mut out, exponent);
    if negative {
        out = c.minus(out);
    }
    out
}

/// `d` with its exponent lowered by `k` and the coefficient unchanged (`d × 10^-k`).
fn scaled_down(d: Decimal128, k: i32) -> Decimal128 {
    let mut out = d;
    cx().set_exponent(&mut out, d.exponent() - k);
    out
}

/// How far above [`E_TOP`] the exponent of `text`'s last kept digit is, when decimal128 can
/// hold the literal only by folding that excess into the coefficient (its value is below
/// 10^6145). decNumber's string parser would fold it through the unsafe path [`E_TOP`]
/// describes (found by the `rules_payload` fuzz target, input `1E6112`), so [`Dec::parse`]
/// reads such a literal 10^excess smaller and folds it with [`scaled_up`].
fn fold_excess(text: &str) -> Option<(&str, i64, i64)> {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, "0"),
    };
    let exponent = exponent.parse::<i64>().ok()?;
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let whole = whole.trim_start_matches(['+', '-']);
    let digits = whole.chars().chain(fraction.chars()).skip_while(|c| *c == '0').count();
    if digits == 0 {
        return None;
    }
    let fraction_len = i64::try_from(fraction.len()).ok()?;
    let n = i64::try_from(digits).ok()?;
    let last = exponent.saturating_sub(fraction_len).saturating_add((n - i64::from(PRECISION)).max(0));
    let adjusted = exponent.saturating_sub(fraction_len).saturating_add(n - 1);
    let excess = last - i64::from(E_TOP);
    (excess > 0 && adjusted <= 6144).then_some((mantissa, exponent, excess))
}

impl Dec {
    /// Zero.
    pub fn zero() -> Dec {
        Dec(Decimal128::default())
    }

    /// Parses a decimal literal (`1.5`, `-2.411E247`); `None` for anything else.
    pub fn parse(text: &str) -> Option<Dec> {
        if let Some(d) = Dec::parse_plain(text) {
            return Some(d);
        }
        let ok = !text.is_empty()
            && text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
            && text.bytes().any(|b| b.is_ascii_digit());
        if !ok {
            return None;
        }
        if let Some((mantissa, exponent, excess)) = fold_excess(text) {
            let lowered = cx().parse(format!("{mantissa}E{}", exponent - excess)).ok()?;
            return scaled_up(lowered, i32::try_from(excess).ok()?);
        }
        cx().parse(text).ok().and_then(finite)
    }

    /// `-?digits(.digits)?` whose digits fit an i32, without decNumber's string parser (which
    /// allocates): the digits become the coefficient and the fraction's length the exponent,
    /// exactly what decNumber would make of it. Anything else (including -0) is `None`.
    fn parse_plain(text: &str) -> Option<Dec> {
        let b = text.as_bytes();
        let (negative, digits) = match b.first()? {
            b'-' => (true, &b[1..]),
            _ => (false, b),
        };
        let mut coefficient: u128 = 0;
        let mut count = 0usize;
        let mut fraction: Option<usize> = None;
        for &c in digits {
            match c {
                b'0'..=b'9' => {
                    coefficient = coefficient * 10 + u128::from(c - b'0');
                    count += 1;
                    if let Some(f) = &mut fraction {
                        *f += 1;
                    }
                }
                b'.' if fraction.is_none() && count > 0 => fraction = Some(0),
                _ => return None,
            }
            if count > 34 {
                return None;
            }
        }
        if count == 0 || fraction == Some(0) || (negative && coefficient == 0) {
            return None;
        }
        // Larger coefficients take decNumber's parser: its integer conversion is slower still.
        let coefficient = i32::try_from(coefficient).ok()?;
        let mut d = Decimal128::from(if negative { -coefficient } else { coefficient });
        cx().set_exponent(&mut d, -(fraction.unwrap_or(0) as i32));
        Some(Dec(d))
    }

    /// The exact decimal for an integer (rounded to 34 digits if it has more).
    pub fn from_i128(n: i128) -> Dec {
        // decNumber converts an i32 in one step (its i128 conversion is six decimal operations,
        // slower than going through text).
        if let Ok(small) = i32::try_from(n) {
            return Dec(Decimal128::from(small));
        }
        Dec::parse(&n.to_string()).unwrap_or_else(Dec::zero)
    }

    /// Magnitude of the coefficient, exponent and sign of a finite decimal.
    fn parts(self) -> Option<(u128, i32, bool)> {
        // `is_signed`, not `is_negative`: -0 has the sign bit but is not below zero.
        self.0.is_finite().then(|| (self.0.coefficient().unsigned_abs(), self.0.exponent(), self.0.is_signed()))
    }

    /// The shortest decimal that reads back as `f`; `None` for NaN and infinities.
    pub fn from_f64(f: f64) -> Option<Dec> {
        if !f.is_finite() {
            return None;
        }
        Dec::parse(&format!("{f:e}"))
    }

    /// Nearest double.
    pub fn to_f64(self) -> f64 {
        self.0.to_string().parse().unwrap_or(f64::NAN)
    }

    /// `self + o`.
    pub fn checked_add(self, o: Dec) -> Option<Dec> {
        finite(cx().add(self.0, o.0))
    }
    /// `self - o`.
    pub fn checked_sub(self, o: Dec) -> Option<Dec> {
        finite(cx().sub(self.0, o.0))
    }
    /// `self * o`.
    pub fn checked_mul(self, o: Dec) -> Option<Dec> {
        let excess = self.0.exponent().saturating_add(o.0.exponent()) - E_TOP;
        if excess > 0 && self.0.is_finite() && o.0.is_finite() {
            // The exact product's exponent is above E_TOP: multiply 10^excess smaller.
            return scaled_up(cx().mul(scaled_down(self.0, excess), o.0), excess);
        }
        finite(cx().mul(self.0, o.0))
    }
    /// `self / o`, rounded to 34 digits; `None` when dividing by zero.
    pub fn checked_div(self, o: Dec) -> Option<Dec> {
        if o.is_zero() {
            return None;
        }
        let excess = self.0.exponent().saturating_sub(o.0.exponent()) - E_TOP;
        if excess > 0 && self.0.is_finite() && o.0.is_finite() {
            // The quotient's ideal exponent is above E_TOP: divide 10^excess smaller.
            return scaled_up(cx().div(scaled_down(self.0, excess), o.0), excess);
        }
        finite(cx().div(self.0, o.0))
    }
    /// Remainder of truncating division (sign of the dividend), as Java's BigDecimal.remainder.
    pub fn checked_rem(self, o: Dec) -> Option<Dec> {
        if o.is_zero() {
            return None;
        }
        finite(cx().rem(self.0, o.0))
    }
    /// `-self`.
    pub fn negated(self) -> Dec {
        Dec(cx().minus(self.0))
    }
    /// `|self|`.
    pub fn abs(self) -> Dec {
        Dec(cx().abs(self.0))
    }
    /// Is it zero.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
    /// Is it below zero.
    pub fn is_negative(self) -> bool {
        self.0.is_negative()
    }
    /// Numeric comparison (`1.0` equals `1`).
    pub fn numeric_cmp(self, o: Dec) -> Ordering {
        if let (Some(a), Some(b)) = (self.parts(), o.parts()) {
            if let Some(order) = cmp_parts(a, b) {
                return order;
            }
        }
        cx().partial_cmp(self.0, o.0).unwrap_or(Ordering::Equal)
    }
    /// Does it have no fractional part.
    pub fn is_integral(self) -> bool {
        if let Some((coefficient, exponent, _)) = self.parts() {
            // Whole when the digits right of the point are all zero.
            return exponent >= 0
                || coefficient == 0
                || (exponent > -34 && coefficient % 10u128.pow(exponent.unsigned_abs()) == 0);
        }
        let mut c = cx();
        let reduced = c.reduce(self.0);
        reduced.exponent() >= 0 || reduced.is_zero()
    }

    fn to_integral(self, rounding: Rounding) -> Dec {
        let mut c = cx();
        c.set_rounding(rounding);
        Dec(c.round(self.0))
    }

    /// Rounded toward negative infinity.
    pub fn floor(self) -> Dec {
        self.to_integral(Rounding::Floor)
    }
    /// Rounded toward positive infinity.
    pub fn ceil(self) -> Dec {
        self.to_integral(Rounding::Ceiling)
    }
    /// Rounded to nearest, half away from zero.
    pub fn round_half_up(self) -> Dec {
        self.to_integral(Rounding::HalfUp)
    }
    /// Rounded toward zero.
    pub fn trunc(self) -> Dec {
        self.to_integral(Rounding::Down)
    }

    /// Truncated to `places` decimal places, trailing zeros removed.
    pub fn trunc_places(self, places: u32) -> Dec {
        let mut c = cx();
        c.set_rounding(Rounding::Down);
        let quantum = c.parse(format!("1E-{places}")).unwrap_or_default();
        let q = c.quantize(self.0, quantum);
        if !q.is_finite() {
            return self;
        }
        Dec(Dec(q).reduced())
    }

    /// The integer value when it is integral and fits in an i128.
    pub fn to_i128_exact(self) -> Option<i128> {
        if !self.is_integral() {
            return None;
        }
        if let Some((coefficient, exponent, negative)) = self.parts() {
            let magnitude = if coefficient == 0 {
                Some(0)
            } else if exponent >= 0 {
                10u128.checked_pow(exponent as u32).and_then(|p| coefficient.checked_mul(p))
            } else if exponent > -34 {
                Some(coefficient / 10u128.pow(exponent.unsigned_abs()))
            } else {
                Some(0)
            }?;
            // Like decNumber's quantize to exponent 0: more than 34 digits is not exact.
            if magnitude >= 10u128.pow(34) {
                return None;
            }
            return if negative { 0i128.checked_sub_unsigned(magnitude) } else { i128::try_from(magnitude).ok() };
        }
        let mut c = cx();
        let q = c.quantize(self.0, Decimal128::default());
        if !q.is_finite() {
            return None;
        }
        q.to_string().parse().ok()
    }

    /// Java-style rendering: plain digits, or scientific notation for very large or small
    /// exponents (`1E+3`, `1.5E-7`).
    pub fn to_sci_string(self) -> String {
        if let Some((coefficient, exponent, negative)) = self.parts() {
            let digits = coefficient.to_string();
            let adjusted = exponent as i64 + digits.len() as i64 - 1;
            // Plain notation (no exponent) is what decNumber prints in this range.
            if exponent <= 0 && adjusted >= -6 {
                let mut out = String::with_capacity(digits.len() + 9);
                if negative {
                    out.push('-');
                }
                let point = digits.len() as i64 + exponent as i64;
                if exponent == 0 {
                    out.push_str(&digits);
                } else if point > 0 {
                    out.push_str(&digits[..point as usize]);
                    out.push('.');
                    out.push_str(&digits[point as usize..]);
                } else {
                    out.push_str("0.");
                    out.extend(std::iter::repeat_n('0', (-point) as usize));
                    out.push_str(&digits);
                }
                return out;
            }
        }
        self.0.to_string()
    }

    /// Rendering without trailing fractional zeros (for whole numbers under SQL version 2016-03-23).
    pub fn to_reduced_string(self) -> String {
        if let Some(i) = self.to_i128_exact() {
            return i.to_string();
        }
        self.reduced().to_string()
    }

    /// Trailing zeros of the coefficient removed, as decNumber's `reduce`, but never past
    /// [`E_TOP`] (where decNumber would fold them back in).
    fn reduced(self) -> Decimal128 {
        let Some((mut coefficient, mut exponent, _)) = self.parts() else { return self.0 };
        if coefficient == 0 {
            return cx().reduce(self.0);
        }
        while coefficient.is_multiple_of(10) && exponent < E_TOP {
            coefficient /= 10;
            exponent += 1;
        }
        from_parts(coefficient, exponent, self.0.is_signed())
    }
}

impl fmt::Debug for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl PartialEq for Dec {
    fn eq(&self, other: &Dec) -> bool {
        self.numeric_cmp(*other) == Ordering::Equal
    }
}

/// Compares two finite decimals given as (coefficient magnitude, exponent, negative) by scaling
/// the one with the larger exponent; `None` when that would overflow (decNumber decides then).
fn cmp_parts(a: (u128, i32, bool), b: (u128, i32, bool)) -> Option<Ordering> {
    let sign = |(c, _, negative): (u128, i32, bool)| {
        if c == 0 {
            0
        } else if negative {
            -1
        } else {
            1
        }
    };
    let (sa, sb) = (sign(a), sign(b));
    if sa != sb || sa == 0 {
        return Some(sa.cmp(&sb));
    }
    let scale = |c: u128, by: i32| 10u128.checked_pow(by as u32).and_then(|p| c.checked_mul(p));
    let (ma, mb) = if a.1 >= b.1 { (scale(a.0, a.1 - b.1)?, b.0) } else { (a.0, scale(b.0, b.1 - a.1)?) };
    let magnitude = ma.cmp(&mb);
    Some(if sa < 0 { magnitude.reverse() } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (coefficient, exponent) with the coefficient's trailing zeros moved to the exponent.
    fn stripped(mut coefficient: u128, mut exponent: i64) -> (u128, i64) {
        while coefficient != 0 && coefficient.is_multiple_of(10) {
            coefficient /= 10;
            exponent += 1;
        }
        (coefficient, exponent)
    }

    fn value_of(d: Dec) -> (u128, i64) {
        let (c, e, _) = d.parts().expect("finite");
        stripped(c, i64::from(e))
    }

    /// What decimal128 holds for an exact `coefficient × 10^exponent`: the value, or `None`
    /// past its range.
    fn representable(coefficient: u128, exponent: i64) -> Option<(u128, i64)> {
        let digits = i64::from(coefficient.checked_ilog10().unwrap_or(0)) + 1;
        (exponent + digits - 1 <= 6144).then(|| stripped(coefficient, exponent))
    }

    #[test]
    fn results_above_the_top_exponent_are_folded_without_decnumber() {
        let d = |t: &str| Dec::parse(t).expect(t);
        assert_eq!(d("1E6111").checked_mul(d("1E1")).expect("fits").to_sci_string(), "1.0E+6112");
        assert_eq!(
            d("-1E6111").checked_mul(d("1E33")).expect("fits").to_sci_string(),
            format!("-1.{}E+6144", "0".repeat(33))
        );
        assert!(d("1E6111").checked_mul(d("1E34")).is_none(), "overflow");
        assert!(d("5E6111").checked_mul(d("3E33")).is_none(), "overflow: 1.5E6145");
        assert_eq!(d("1E6111").checked_div(d("1E-1")).expect("fits").to_sci_string(), "1.0E+6112");
        // 15E6113 folded down to 1500E6111, as decimal128 stores it.
        assert_eq!(d("3E6111").checked_div(d("2E-3")).expect("fits").to_sci_string(), "1.500E+6114");
        assert_eq!(d("10E6111").to_reduced_string(), "1.0E+6112");
        assert_eq!(d("1.2500E3").trunc_places(3).to_sci_string(), "1.25E+3");
        assert_eq!(d("0E6111").checked_mul(d("1E100")).expect("zero").to_sci_string(), "0E+6111");
    }

    proptest! {
        #[test]
        fn products_near_the_top_exponent_are_exact_or_overflow(
            a in 1u128..100_000_000_000_000_000,
            b in 1u128..100_000_000_000_000_000,
            ea in 3000i32..3100,
            eb in 3000i32..3100,
        ) {
            let x = Dec::parse(&format!("{a}E{ea}")).expect("a fits");
            let y = Dec::parse(&format!("{b}E{eb}")).expect("b fits");
            let expected = representable(a * b, i64::from(ea) + i64::from(eb));
            prop_assert_eq!(x.checked_mul(y).map(value_of), expected);
        }

        #[test]
        fn exact_quotients_near_the_top_exponent_are_exact_or_overflow(
            q in 1u128..100_000_000_000_000_000,
            b in 1u128..100_000_000_000_000_000,
            ea in 3000i32..3100,
            eb in -3100i32..-3000,
        ) {
            let x = Dec::parse(&format!("{}E{ea}", q * b)).expect("a fits");
            let y = Dec::parse(&format!("{b}E{eb}")).expect("b fits");
            let expected = representable(q, i64::from(ea) - i64::from(eb));
            prop_assert_eq!(x.checked_div(y).map(value_of), expected);
        }
    }

    #[test]
    fn literals_that_need_a_folded_exponent_are_folded_here() {
        let cases = [
            ("1E6112", (1, 6112)),
            ("9E6120", (9, 6120)),
            ("1E6144", (1, 6144)),
            ("2611E6121", (2611, 6121)),
            ("1.5E6113", (15, 6112)),
            ("-1E6112", (1, 6112)),
        ];
        for (text, value) in cases {
            assert!(fold_excess(text).is_some(), "{text}");
            let parsed = Dec::parse(text).expect(text);
            assert_eq!(value_of(parsed), value, "{text}");
            assert_eq!(parsed.0.exponent(), E_TOP, "{text} is stored folded");
            assert_eq!(parsed.is_negative(), text.starts_with('-'), "{text}");
        }
        for text in ["1E6111", "1E6200", "1E-7000", "0E7000", "123456789012345678901234567890123456E6100", "1.5"] {
            assert!(fold_excess(text).is_none(), "{text}");
        }
        assert!(Dec::parse("1E6111").is_some());
        assert_eq!(Dec::parse("1E6145"), None, "overflow");
        assert_eq!(Dec::parse("1E6200"), None, "overflow");
    }

    fn d(s: &str) -> Dec {
        Dec::parse(s).unwrap()
    }

    #[test]
    fn keeps_34_significant_digits() {
        let x = d("1234567890123456789012345678901234");
        assert_eq!(x.to_sci_string(), "1234567890123456789012345678901234");
        assert_eq!(d("1").checked_div(d("3")).unwrap().to_sci_string(), "0.3333333333333333333333333333333333");
    }

    #[test]
    fn rounding_modes_follow_their_names() {
        assert_eq!(d("-1.5").round_half_up().to_i128_exact(), Some(-2));
        assert_eq!(d("-1.2").floor().to_i128_exact(), Some(-2));
        assert_eq!(d("-1.2").ceil().to_i128_exact(), Some(-1));
        assert_eq!(d("2.888").trunc_places(2).to_sci_string(), "2.88");
        assert_eq!(d("2.300").trunc_places(2).to_sci_string(), "2.3");
    }

    #[test]
    fn negative_zero_keeps_its_sign_in_text() {
        for text in ["-0", "-0.00", "-0E+3", "-0E-9"] {
            assert_eq!(d(text).to_sci_string(), cx().parse(text).unwrap().to_string());
        }
        assert_eq!(d("-0.00").to_sci_string(), "-0.00");
        assert_eq!(d("-0").numeric_cmp(d("0")), Ordering::Equal);
        assert_eq!(d("-0.0").to_i128_exact(), Some(0));
    }

    #[test]
    fn whole_numbers_render_reduced() {
        assert_eq!(d("10.0").to_reduced_string(), "10");
        assert_eq!(d("1E3").to_reduced_string(), "1000");
        assert_eq!(d("10.0").to_sci_string(), "10.0");
        assert_eq!(d("1.50").to_reduced_string(), "1.5");
    }

    #[test]
    fn rejects_non_numbers_and_division_by_zero() {
        assert!(Dec::parse("abc").is_none());
        assert!(Dec::parse("NaN").is_none());
        assert!(Dec::parse("Infinity").is_none());
        assert!(d("1").checked_div(Dec::zero()).is_none());
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config { cases: 2048, ..Default::default() })]

        #[test]
        fn fast_conversions_agree_with_decnumber(
            digits in "[0-9]{1,36}",
            exponent in -45i32..45,
            negative in proptest::bool::ANY,
            n in proptest::num::i128::ANY,
        ) {
            let text = format!("{}{digits}E{exponent}", if negative { "-" } else { "" });
            let x = d(&text);
            let split = digits.len() / 2;
            let plain = format!("{}{}.{}", if negative { "-" } else { "" }, &digits[..split.max(1)], &digits[split.max(1)..]);
            let plain = plain.trim_end_matches('.');
            let decnumber = cx().parse(plain).unwrap();
            let fast = Dec::parse(plain).unwrap();
            proptest::prop_assert_eq!(fast.0.to_string(), decnumber.to_string());
            proptest::prop_assert_eq!(fast.0.exponent(), decnumber.exponent());
            proptest::prop_assert_eq!(fast.0.is_negative(), decnumber.is_negative());
            for other in [d("0"), d("-0.0"), d("61.5"), d("-2.50"), d("50"), d("1E+3"), x, fast] {
                proptest::prop_assert_eq!(
                    x.numeric_cmp(other),
                    cx().partial_cmp(x.0, other.0).unwrap(),
                    "{} vs {}", x.0, other.0
                );
                proptest::prop_assert_eq!(
                    other.numeric_cmp(fast),
                    cx().partial_cmp(other.0, fast.0).unwrap(),
                    "{} vs {}", other.0, fast.0
                );
            }
            // decNumber's own answers, the way these functions computed them before.
            proptest::prop_assert_eq!(x.to_sci_string(), x.0.to_string());
            let reduced = cx().reduce(x.0);
            let integral = reduced.exponent() >= 0 || reduced.is_zero();
            proptest::prop_assert_eq!(x.is_integral(), integral);
            let exact = if integral {
                cx().quantize(x.0, Decimal128::default()).to_string().parse::<i128>().ok()
            } else {
                None
            };
            proptest::prop_assert_eq!(x.to_i128_exact(), exact);
            let small = n % 10i128.pow(30);
            proptest::prop_assert_eq!(Dec::from_i128(small).0.to_string(), small.to_string());
            proptest::prop_assert_eq!(Dec::from_i128(n).0.to_string(), Dec::parse(&n.to_string()).unwrap().0.to_string());
        }
    }
}
