//! Decimal arithmetic on untrusted numbers: two literals from a payload, every operation the
//! rules engine performs on them. decNumber's own code runs under AddressSanitizer here,
//! which is how results that need the top exponent folded were found unsafe in it.
#![no_main]

use ferrite_rules::num::Dec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut words = text.split(' ');
    let (Some(a), Some(b)) = (words.next().and_then(Dec::parse), words.next().and_then(Dec::parse)) else {
        return;
    };
    // Not addition and subtraction: decNumber's `decQuadAdd` reads two bytes past a stack
    // buffer for some operand alignments (input `-06611E033 10`), a report this target would
    // repeat at once; docs/fuzzing.md has the finding.
    let results = [a.checked_mul(b), a.checked_div(b), a.checked_rem(b)];
    for d in results.into_iter().flatten().chain([a.floor(), a.ceil(), a.round_half_up(), a.trunc(), a.trunc_places(3)]) {
        let _ = (d.to_sci_string(), d.to_reduced_string(), d.to_f64(), d.to_i128_exact(), d.is_integral());
        let _ = d.numeric_cmp(b);
    }
});
