//! Timing configuration of the Binding client.

use std::time::Duration;

/// Timing of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Initial retransmission timeout (RFC 8489 §6.2.1 RTO), doubled after each
    /// retransmission. Default 500 ms.
    pub rto: Duration,
    /// Requests sent per server, the first included (Rc). Default 7.
    pub max_transmissions: u32,
    /// After the last request, wait `rto × last_wait_factor` (Rm). Default 16.
    pub last_wait_factor: u32,
    /// Give up on a server after this long even if the schedule above is not
    /// over (a one-shot query with a time budget). Default: none (39.5 s with
    /// the defaults above).
    pub transaction_timeout: Option<Duration>,
    /// Run discovery again this long after a success (re-discovery; it also
    /// refreshes the NAT binding). `None`: once only. Default 60 s.
    pub refresh_interval: Option<Duration>,
    /// Run discovery again this long after every server failed. `None`: never.
    /// Default 30 s.
    pub retry_interval: Option<Duration>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            rto: Duration::from_millis(500),
            max_transmissions: 7,
            last_wait_factor: 16,
            transaction_timeout: None,
            refresh_interval: Some(Duration::from_secs(60)),
            retry_interval: Some(Duration::from_secs(30)),
        }
    }
}

impl ClientConfig {
    /// One discovery round only: no refresh, no retry.
    pub fn one_shot() -> Self {
        Self {
            refresh_interval: None,
            retry_interval: None,
            ..Self::default()
        }
    }

    /// Sets [`refresh_interval`](Self::refresh_interval).
    pub fn with_refresh_interval(mut self, interval: Option<Duration>) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// Sets [`retry_interval`](Self::retry_interval).
    pub fn with_retry_interval(mut self, interval: Option<Duration>) -> Self {
        self.retry_interval = interval;
        self
    }

    /// Sets [`transaction_timeout`](Self::transaction_timeout).
    pub fn with_transaction_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.transaction_timeout = timeout;
        self
    }

    /// Sets [`rto`](Self::rto).
    pub fn with_rto(mut self, rto: Duration) -> Self {
        self.rto = rto;
        self
    }

    /// Sets [`max_transmissions`](Self::max_transmissions) (at least 1).
    pub fn with_max_transmissions(mut self, n: u32) -> Self {
        self.max_transmissions = n.max(1);
        self
    }
}
