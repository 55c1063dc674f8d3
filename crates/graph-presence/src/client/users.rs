//! Users: UPN → object id resolution and its cache.

use super::{lock, GraphClient};
use crate::error::GraphError;
use crate::types::ObjectId;
use reqwest::Method;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

impl GraphClient {
    /// Resolves a UPN (or passes an object id through) to an object id, with
    /// `GET /users/{upn}?$select=id` (needs `User.Read.All`). Results are cached; see
    /// [`GraphClient::cached_users`] to persist them.
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
        Arc::make_mut(&mut lock(&self.inner.users)).insert(cache_key, id.clone());
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

    /// The UPN → object id cache as it is now (UPNs in lower case), for the caller to
    /// persist. A snapshot that shares the cache's memory: taking it copies nothing, and
    /// a lookup made later does not change it.
    pub fn cached_users(&self) -> CachedUsers {
        CachedUsers(Arc::clone(&lock(&self.inner.users)))
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
        let mut guard = lock(&self.inner.users);
        let c = Arc::make_mut(&mut guard);
        for (upn, id) in entries {
            c.insert(upn.to_lowercase(), id);
        }
    }
}

/// A snapshot of the UPN → object id cache, from [`GraphClient::cached_users`].
#[derive(Debug, Clone, Default)]
pub struct CachedUsers(Arc<HashMap<String, ObjectId>>);

impl CachedUsers {
    /// Every UPN (in lower case) and its object id, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ObjectId)> + '_ {
        self.0.iter().map(|(upn, id)| (upn.as_str(), id))
    }

    /// The object id cached for `upn` (any case).
    pub fn get(&self, upn: &str) -> Option<&ObjectId> {
        self.0.get(&upn.trim().to_lowercase())
    }

    /// How many users are cached.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
