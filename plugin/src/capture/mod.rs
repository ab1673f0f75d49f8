//! Reading packet captures and turning them into DNS transactions.
