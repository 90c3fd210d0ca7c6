//! `ferrite`: the node binary. See `ferrite --help`.

fn main() -> std::process::ExitCode {
    ferrite::cli::main()
}
