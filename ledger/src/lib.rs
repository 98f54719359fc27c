//! ssn-ledger: see ARCHITECTURE.md. Built in its own issue.
