//! The probe binary: everything lives in the library; see `dns_doctor_probe::cli`.

fn main() {
    std::process::exit(dns_doctor_probe::cli::main());
}
