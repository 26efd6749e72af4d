//! `motcua-sim`: runs the deterministic network simulator (see the crate docs).

fn main() -> std::process::ExitCode {
    eprintln!(
        "motcua-sim: the network simulator is not built yet; it arrives with the replication work"
    );
    std::process::ExitCode::from(2)
}
