//! The presence calls: the app's session, status message, reads and the user's preferred presence.

use super::{GraphClient, MAX_IDS_PER_PRESENCE_READ};
use crate::error::GraphError;
use crate::ops::{ClearOutcome, PresenceOperation, StatusMessageExpiry};
use crate::types::{iso8601, ObjectId, PreferredPresence, Presence, PresenceState};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

impl GraphClient {
    /// Sets the app's presence session for `user` (`sessionId` = client id). `expiration`
    /// must be within 5 minutes..=4 hours (checked before sending); `None` leaves Graph's
    /// default of 5 minutes. Re-send before it ends, and within 5 minutes for `Available`
    /// (see [`crate::refresh_interval`]).
    pub async fn set_presence(
        &self,
        user: &ObjectId,
        state: PresenceState,
        expiration: Option<Duration>,
    ) -> Result<(), GraphError> {
        let parts = PresenceOperation::SetPresence {
            user: user.clone(),
            state,
            expiration,
        }
        .parts(self.client_id())?;
        Self::ensure_ok("setPresence", self.call(parts).await?).map(|_| ())
    }

    /// Clears the app's presence session. A 404 (no session) is success:
    /// [`ClearOutcome::AlreadyCleared`]. If it was the user's only session the user shows
    /// Offline.
    pub async fn clear_presence(&self, user: &ObjectId) -> Result<ClearOutcome, GraphError> {
        let parts =
            PresenceOperation::ClearPresence { user: user.clone() }.parts(self.client_id())?;
        let raw = self.call(parts).await?;
        if raw.status == 404 {
            return Ok(ClearOutcome::AlreadyCleared);
        }
        Self::ensure_ok("clearPresence", raw).map(|_| ClearOutcome::Cleared)
    }

    /// Sets the user's status message (plain text), optionally expiring.
    pub async fn set_status_message(
        &self,
        user: &ObjectId,
        message: &str,
        expiry: Option<StatusMessageExpiry>,
    ) -> Result<(), GraphError> {
        let parts = PresenceOperation::SetStatusMessage {
            user: user.clone(),
            message: message.to_owned(),
            expiry,
        }
        .parts(self.client_id())?;
        Self::ensure_ok("setStatusMessage", self.call(parts).await?).map(|_| ())
    }

    /// Reads one user's aggregated presence.
    pub async fn get_presence(&self, user: &ObjectId) -> Result<Presence, GraphError> {
        let parts =
            PresenceOperation::GetPresence { user: user.clone() }.parts(self.client_id())?;
        let raw = Self::ensure_ok("getPresence", self.call(parts).await?)?;
        serde_json::from_slice(&raw.body).map_err(|e| GraphError::InvalidResponse {
            operation: "getPresence",
            message: e.to_string(),
        })
    }

    /// Reads many users' presence with `getPresencesByUserId`, in calls of at most 650 ids.
    pub async fn get_presences(&self, users: &[ObjectId]) -> Result<Vec<Presence>, GraphError> {
        let mut out = Vec::with_capacity(users.len());
        for chunk in users.chunks(MAX_IDS_PER_PRESENCE_READ) {
            let body = json!({"ids": chunk.iter().map(ObjectId::as_str).collect::<Vec<_>>()});
            let url = self.url(
                &["communications".into(), "getPresencesByUserId".into()],
                &[],
            )?;
            let raw = self
                .send("getPresencesByUserId", Method::POST, url, Some(&body), 1)
                .await?;
            let raw = Self::ensure_ok("getPresencesByUserId", raw)?;
            #[derive(serde::Deserialize)]
            struct List {
                value: Vec<Presence>,
            }
            let list: List =
                serde_json::from_slice(&raw.body).map_err(|e| GraphError::InvalidResponse {
                    operation: "getPresencesByUserId",
                    message: e.to_string(),
                })?;
            out.extend(list.value);
        }
        Ok(out)
    }

    /// Sets the user's **preferred** presence. **Not for BLF**: this is the user's own
    /// choice in Teams, overrides every session, and lasts 1 day (Busy, DoNotDisturb) or
    /// 7 days (others) unless `expiration` is given. Use [`GraphClient::set_presence`].
    pub async fn set_user_preferred_presence(
        &self,
        user: &ObjectId,
        presence: PreferredPresence,
        expiration: Option<Duration>,
    ) -> Result<(), GraphError> {
        let (a, b) = presence.pair();
        let mut body = json!({"availability": a, "activity": b});
        if let (Some(d), Some(o)) = (expiration, body.as_object_mut()) {
            o.insert("expirationDuration".into(), Value::String(iso8601(d)));
        }
        let segs = vec![
            "users".into(),
            user.as_str().into(),
            "presence".into(),
            "setUserPreferredPresence".into(),
        ];
        let url = self.url(&segs, &[])?;
        let raw = self
            .send(
                "setUserPreferredPresence",
                Method::POST,
                url,
                Some(&body),
                1,
            )
            .await?;
        Self::ensure_ok("setUserPreferredPresence", raw).map(|_| ())
    }

    /// Clears the user's preferred presence. **Not for BLF** (see
    /// [`GraphClient::set_user_preferred_presence`]).
    pub async fn clear_user_preferred_presence(&self, user: &ObjectId) -> Result<(), GraphError> {
        let segs = vec![
            "users".into(),
            user.as_str().into(),
            "presence".into(),
            "clearUserPreferredPresence".into(),
        ];
        let url = self.url(&segs, &[])?;
        let raw = self
            .send(
                "clearUserPreferredPresence",
                Method::POST,
                url,
                Some(&json!({})),
                1,
            )
            .await?;
        Self::ensure_ok("clearUserPreferredPresence", raw).map(|_| ())
    }
}
