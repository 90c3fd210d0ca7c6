//! Provisioning templates come from API callers and their parameters from devices: parsing any
//! text as a template and evaluating it must never panic, hang or blow the stack.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ferrite_aws::provisioning::fuzz_template(data);
});
