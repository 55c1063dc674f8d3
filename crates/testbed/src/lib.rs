//! Start and stop the real peers the tests talk to.
//!
//! Will hold: Kamailio, SIPp and coturn started on loopback for the real-peer tests, stopped by pid.
