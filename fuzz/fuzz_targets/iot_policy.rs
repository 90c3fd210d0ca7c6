//! IoT policy documents come from API callers: parsing and evaluating any text must never
//! panic, hang or blow the stack.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ferrite_aws::policy::fuzz_policy(data);
});
