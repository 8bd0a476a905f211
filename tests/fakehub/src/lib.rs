//! A fake Koji hub that follows kojihub's rules (sessions, callnum, task state machine, upload
//! rules, fault injection) for koji-adjutant's tests.
