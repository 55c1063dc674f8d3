//! Users: UPN → object id resolution and its cache.

use super::{lock, GraphClient};
use crate::error::GraphError;
use crate::types::ObjectId;
use reqwest::Method;
use serde_json::Value;
use std::collections::HashMap;

impl GraphClient {
    /// Resolves a UPN (or passes an object id through) to an object id, with
    /// `GET /users/{upn}?$select=id` (needs `User.Read.All`). Results are cached; see
    /// [`GraphClient::user_cache`] to persist them.
    pub async fn resolve_user(&self, upn_or_id: &str) -> Result<ObjectId, GraphError> {
        if let Some(id) = self.cached_user(upn_or_id) {
            return Ok(id);
        }
        let key = upn_or_id.trim();
        if key.is_empty() || key.len() > 1024 {
            return Err(GraphError::InvalidInput(format!(
                "{upn_or_id:?} is not a user principal name"
            )));
        }
        let cache_key = key.to_lowercase();
        // UPNs starting with '$' need the key syntax; '#' (guests' #EXT#) is percent-encoded
        // by the URL builder (user-get page tips).
        let segment = if key.starts_with('$') {
            format!("users('{key}')")
        } else {
            key.to_owned()
        };
        let segments = if key.starts_with('$') {
            vec![segment]
        } else {
            vec!["users".to_owned(), segment]
        };
        let url = self.url(&segments, &[("$select", "id")])?;
        let raw = Self::ensure_ok(
            "getUser",
            self.send("getUser", Method::GET, url, None::<&()>, 1)
                .await?,
        )?;
        let v = raw.json("getUser")?;
        let id = v
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| GraphError::InvalidResponse {
                operation: "getUser",
                message: "no id".into(),
            })
            .and_then(ObjectId::parse)?;
        lock(&self.inner.users).insert(cache_key, id.clone());
        Ok(id)
    }

    /// Resolves several users one by one (cached ones cost nothing) and reports each
    /// outcome, e.g. for a configuration check that lists every user that fails and why.
    pub async fn resolve_users<'a>(
        &self,
        users: impl IntoIterator<Item = &'a str>,
    ) -> Vec<(String, Result<ObjectId, GraphError>)> {
        let mut out = Vec::new();
        for u in users {
            out.push((u.to_owned(), self.resolve_user(u).await));
        }
        out
    }

    /// The UPN → object id cache (UPNs in lower case), for the caller to persist.
    pub fn user_cache(&self) -> HashMap<String, ObjectId> {
        lock(&self.inner.users).clone()
    }

    /// The object id [`resolve_user`](Self::resolve_user) would give without a
    /// request: an object id as it is, a UPN from the cache; `None` when it
    /// would have to look the user up.
    pub fn cached_user(&self, upn_or_id: &str) -> Option<ObjectId> {
        let key = upn_or_id.trim();
        if let Ok(id) = ObjectId::parse(key) {
            return Some(id);
        }
        lock(&self.inner.users).get(&key.to_lowercase()).cloned()
    }

    /// Pre-fills the UPN → object id cache (e.g. from a previous run).
    pub fn seed_user_cache(&self, entries: impl IntoIterator<Item = (String, ObjectId)>) {
        let mut c = lock(&self.inner.users);
        for (upn, id) in entries {
            c.insert(upn.to_lowercase(), id);
        }
    }
}
