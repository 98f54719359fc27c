//! ssn-admin-api: see ARCHITECTURE.md. Built in its own issue.
