//! The built-in functions of AWS IoT SQL: their names, arities and versions (for the checker), and
//! their behaviour (for the interpreter). Each one follows the type rules of the reference: a
//! wrong type gives Undefined, never an error.

mod datetime;
mod eval;

pub use eval::{call, cast, CallEnv};

/// A built-in function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Builtin {
    Abs,
    AccountId,
    Acos,
    Asin,
    Atan,
    Atan2,
    AwsLambda,
    BitAnd,
    BitOr,
    BitXor,
    BitNot,
    Ceil,
    Chr,
    ClientId,
    Concat,
    Cos,
    Cosh,
    Decode,
    Encode,
    EndsWith,
    Exp,
    Floor,
    Get,
    GetOrDefault,
    GetMqttProperty,
    GetUserProperties,
    GetRegistryData,
    GetSecret,
    GetThingShadow,
    Md2,
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    IndexOf,
    IsNull,
    IsUndefined,
    Length,
    Ln,
    Log,
    Lower,
    Lpad,
    Ltrim,
    Mod,
    Nanvl,
    NewUuid,
    NumBytes,
    ParseTime,
    Power,
    Principal,
    Rand,
    RegexpMatches,
    RegexpReplace,
    RegexpSubstr,
    Replace,
    Round,
    Rpad,
    Rtrim,
    Sign,
    Sin,
    Sinh,
    SourceIp,
    Sqrt,
    StartsWith,
    Substring,
    SqlVersion,
    Tan,
    Tanh,
    TimeToEpoch,
    Timestamp,
    Topic,
    TraceId,
    Transform,
    Trim,
    Trunc,
    Upper,
}

/// What the checker needs to know about a function.
#[derive(Debug, Clone, Copy)]
pub struct Signature {
    /// The name as AWS documents it.
    pub name: &'static str,
    /// The function.
    pub builtin: Builtin,
    /// Fewest arguments.
    pub min_args: usize,
    /// Most arguments (`usize::MAX` for any number).
    pub max_args: usize,
    /// Only in SQL version 2016-03-23 and later.
    pub v2_only: bool,
    /// Gives the same result for the same message and context (no randomness, no lookups).
    pub deterministic: bool,
}

const fn sig(name: &'static str, builtin: Builtin, min_args: usize, max_args: usize) -> Signature {
    Signature { name, builtin, min_args, max_args, v2_only: false, deterministic: true }
}

const fn v2(mut s: Signature) -> Signature {
    s.v2_only = true;
    s
}

const fn nondet(mut s: Signature) -> Signature {
    s.deterministic = false;
    s
}

use Builtin as B;

/// Every function Ferrite runs, by name.
pub const SIGNATURES: &[Signature] = &[
    sig("abs", B::Abs, 1, 1),
    sig("accountid", B::AccountId, 0, 0),
    sig("acos", B::Acos, 1, 1),
    sig("asin", B::Asin, 1, 1),
    sig("atan", B::Atan, 1, 1),
    sig("atan2", B::Atan2, 2, 2),
    nondet(sig("aws_lambda", B::AwsLambda, 2, 2)),
    sig("bitand", B::BitAnd, 2, 2),
    sig("bitor", B::BitOr, 2, 2),
    sig("bitxor", B::BitXor, 2, 2),
    sig("bitnot", B::BitNot, 1, 1),
    sig("ceil", B::Ceil, 1, 1),
    sig("chr", B::Chr, 1, 1),
    sig("clientid", B::ClientId, 0, 0),
    sig("concat", B::Concat, 0, usize::MAX),
    sig("cos", B::Cos, 1, 1),
    sig("cosh", B::Cosh, 1, 1),
    v2(sig("decode", B::Decode, 2, 2)),
    v2(sig("encode", B::Encode, 2, 2)),
    sig("endswith", B::EndsWith, 2, 2),
    sig("exp", B::Exp, 1, 1),
    sig("floor", B::Floor, 1, 1),
    sig("get", B::Get, 2, 2),
    sig("get_or_default", B::GetOrDefault, 2, 2),
    sig("get_mqtt_property", B::GetMqttProperty, 1, 1),
    sig("get_user_properties", B::GetUserProperties, 0, 1),
    nondet(sig("get_registry_data", B::GetRegistryData, 2, 3)),
    nondet(sig("get_secret", B::GetSecret, 2, 4)),
    nondet(v2(sig("get_thing_shadow", B::GetThingShadow, 1, 3))),
    sig("md2", B::Md2, 1, 1),
    sig("md5", B::Md5, 1, 1),
    sig("sha1", B::Sha1, 1, 1),
    sig("sha224", B::Sha224, 1, 1),
    sig("sha256", B::Sha256, 1, 1),
    sig("sha384", B::Sha384, 1, 1),
    sig("sha512", B::Sha512, 1, 1),
    v2(sig("indexof", B::IndexOf, 2, 2)),
    sig("isnull", B::IsNull, 1, 1),
    v2(sig("isundefined", B::IsUndefined, 1, 1)),
    v2(sig("length", B::Length, 1, 1)),
    sig("ln", B::Ln, 1, 1),
    sig("log", B::Log, 1, 1),
    sig("lower", B::Lower, 1, 1),
    sig("lpad", B::Lpad, 2, 2),
    sig("ltrim", B::Ltrim, 1, 1),
    sig("mod", B::Mod, 2, 2),
    sig("remainder", B::Mod, 2, 2),
    sig("nanvl", B::Nanvl, 2, 2),
    nondet(sig("newuuid", B::NewUuid, 0, 0)),
    v2(sig("numbytes", B::NumBytes, 1, 1)),
    v2(sig("parse_time", B::ParseTime, 2, 3)),
    sig("power", B::Power, 2, 2),
    sig("principal", B::Principal, 0, 0),
    nondet(sig("rand", B::Rand, 0, 0)),
    sig("regexp_matches", B::RegexpMatches, 2, 2),
    sig("regexp_replace", B::RegexpReplace, 3, 3),
    sig("regexp_substr", B::RegexpSubstr, 2, 2),
    sig("replace", B::Replace, 3, 3),
    sig("round", B::Round, 1, 1),
    sig("rpad", B::Rpad, 2, 2),
    sig("rtrim", B::Rtrim, 1, 1),
    sig("sign", B::Sign, 1, 1),
    sig("sin", B::Sin, 1, 1),
    sig("sinh", B::Sinh, 1, 1),
    sig("sourceip", B::SourceIp, 0, 0),
    sig("sqrt", B::Sqrt, 1, 1),
    sig("startswith", B::StartsWith, 2, 2),
    sig("substring", B::Substring, 2, 3),
    sig("sql_version", B::SqlVersion, 0, 0),
    sig("tan", B::Tan, 1, 1),
    sig("tanh", B::Tanh, 1, 1),
    v2(sig("time_to_epoch", B::TimeToEpoch, 2, 2)),
    sig("timestamp", B::Timestamp, 0, 0),
    sig("topic", B::Topic, 0, 1),
    sig("traceid", B::TraceId, 0, 0),
    v2(sig("transform", B::Transform, 3, 3)),
    sig("trim", B::Trim, 1, 1),
    sig("trunc", B::Trunc, 2, 2),
    sig("upper", B::Upper, 1, 1),
];

/// Functions of AWS IoT SQL that only work inside AWS, with the reason the checker gives.
pub const UNAVAILABLE: &[(&str, &str)] = &[
    ("get_dynamodb", "it reads an Amazon DynamoDB table, which does not exist outside AWS; use aws_lambda to call an HTTP function that reads your database"),
    ("machinelearning_predict", "it calls an Amazon Machine Learning model, a service that does not exist outside AWS; use aws_lambda to call an HTTP function that runs your model"),
];

/// Looks a function up by name, ignoring case as AWS does.
pub fn lookup(name: &str) -> Option<&'static Signature> {
    SIGNATURES.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// The signature of a builtin (its first documented name).
pub fn signature(builtin: Builtin) -> &'static Signature {
    SIGNATURES.iter().find(|s| s.builtin == builtin).expect("every builtin has a signature")
}

/// Checks a constant Joda-Time pattern (parse_time) at check time.
pub fn validate_format_pattern(pattern: &str) -> Result<(), String> {
    datetime::validate_format_pattern(pattern).map_err(|e| e.0)
}

/// Checks a constant java.time pattern (time_to_epoch) at check time.
pub fn validate_parse_pattern(pattern: &str) -> Result<(), String> {
    datetime::validate_parse_pattern(pattern).map_err(|e| e.0)
}

/// Checks a constant regular expression at check time.
pub fn validate_regex(pattern: &str) -> Result<(), String> {
    fancy_regex::Regex::new(pattern).map(|_| ()).map_err(|e| e.to_string())
}
