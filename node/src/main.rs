//! The `motcua` binary; everything is in `motcua_node::cli`.

fn main() -> std::process::ExitCode {
    motcua_node::cli::main()
}
