//! The decision core: pure functions over typed values, each returning what to do and a
//! reason a person can read. No I/O: the store gathers the counts a decision needs inside its
//! transaction, calls the function, and writes what it says; the worker resolves the user,
//! calls the step decision, and makes the call it says. The audit records every reason, and
//! the console shows it.

pub mod limits;
pub mod step;
pub mod suppress;
