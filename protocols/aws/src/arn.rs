//! Amazon Resource Names of IoT resources (`arn:aws:iot:REGION:ACCOUNT:TYPE/NAME`), built and
//! taken apart in one place so every resource's ARN has the same form and policies written
//! for AWS match them.

/// `arn:aws:iot:{region}:{account}:`, the start of every IoT resource's ARN; the caller
/// appends `thing/NAME`, `policy/NAME`, `cert/ID`...
pub fn prefix(region: &str, account: &str) -> String {
    format!("arn:aws:iot:{region}:{account}:")
}

/// The resource's name or id: what follows the last `/` (`lamp` of `...:thing/lamp`). `None`
/// for an ARN without a `/`.
pub fn resource_name(arn: &str) -> Option<&str> {
    arn.rsplit_once('/').map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_name_the_region_and_account() {
        assert_eq!(prefix("eu-west-1", "123456789012"), "arn:aws:iot:eu-west-1:123456789012:");
    }

    #[test]
    fn the_resource_name_is_after_the_last_slash() {
        assert_eq!(resource_name("arn:aws:iot:us-east-1:000000000000:thing/lamp"), Some("lamp"));
        assert_eq!(resource_name("arn:aws:iot:us-east-1:000000000000:cert/"), Some(""));
        assert_eq!(resource_name("arn:aws:iam::1:role/service/x"), Some("x"));
        assert_eq!(resource_name("arn:aws:iot:us-east-1:000000000000:thing"), None);
    }
}
