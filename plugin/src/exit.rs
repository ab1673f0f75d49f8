//! Exit codes: part of the interface scripts depend on.

/// How a run ended, as the process exit code reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything checked is healthy.
    Healthy,
    /// The run completed and found problems.
    ProblemsFound,
    /// The run could not be carried out (bad input, cluster unreachable, forbidden, ...).
    CouldNotRun,
    /// Interrupted by Ctrl-C or SIGTERM (after cleanup).
    Interrupted,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Self::Healthy => 0,
            Self::ProblemsFound => 1,
            Self::CouldNotRun => 2,
            Self::Interrupted => 130,
        }
    }
}

impl From<Outcome> for std::process::ExitCode {
    fn from(o: Outcome) -> Self {
        std::process::ExitCode::from(o.code())
    }
}
