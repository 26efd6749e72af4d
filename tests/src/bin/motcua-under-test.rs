//! The `motcua` command, built inside the tests package so the end-to-end tests can start it as
//! a real process by `env!("CARGO_BIN_EXE_motcua-under-test")`.

fn main() -> std::process::ExitCode {
    motcua_node::cli::main()
}
