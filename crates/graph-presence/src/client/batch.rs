//! `$batch`: chunking, sub-response correlation and per-sub-request retries.

use super::{error_parts_value, status_error, GraphClient, MAX_BATCH_REQUESTS};
use crate::error::GraphError;
use crate::ops::{Body, OperationOutcome, Parts, PresenceOperation};
use crate::types::Presence;
use reqwest::Method;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

impl GraphClient {
    /// Runs operations through `$batch`, 20 per request. Every sub-response is checked and
    /// correlated by id; as the [`RetryPolicy`](crate::RetryPolicy) allows, throttled (429)
    /// or failing (5xx) sub-requests are retried after the longest `Retry-After` (or a
    /// backoff), else they fail with their own `Retry-After`; an outer 200 or 424 is accepted. Invalid
    /// operations fail alone, before anything is sent. Results are in input order.
    pub async fn batch(
        &self,
        ops: Vec<PresenceOperation>,
    ) -> Vec<(PresenceOperation, Result<OperationOutcome, GraphError>)> {
        let mut results: Vec<Option<Result<OperationOutcome, GraphError>>> = vec![None; ops.len()];
        let mut valid: Vec<(usize, Parts)> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            match op.parts(self.client_id()) {
                Ok(p) => valid.push((i, p)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        let mut queue = valid.into_iter();
        loop {
            let chunk: Vec<(usize, Parts)> = queue.by_ref().take(MAX_BATCH_REQUESTS).collect();
            if chunk.is_empty() {
                break;
            }
            for (i, r) in self.run_batch(chunk).await {
                if let Some(slot) = results.get_mut(i) {
                    *slot = Some(r);
                }
            }
        }
        ops.into_iter()
            .zip(results)
            .map(|(op, r)| {
                let r = r.unwrap_or_else(|| {
                    Err(GraphError::InvalidResponse {
                        operation: "$batch",
                        message: "no result".into(),
                    })
                });
                (op, r)
            })
            .collect()
    }

    async fn run_batch(
        &self,
        chunk: Vec<(usize, Parts)>,
    ) -> Vec<(usize, Result<OperationOutcome, GraphError>)> {
        let mut done = Vec::with_capacity(chunk.len());
        let mut todo = chunk;
        let mut round: u32 = 0;
        let policy = self.retry_policy();
        let mut waited = Duration::ZERO;
        while !todo.is_empty() {
            let body = BatchRequest {
                requests: todo
                    .iter()
                    .map(|(i, p)| BatchSubRequest {
                        id: i.to_string(),
                        method: p.method.as_str(),
                        url: p.segments.iter().fold(String::new(), |mut acc, s| {
                            acc.push('/');
                            acc.push_str(&encode_segment(s));
                            acc
                        }),
                        headers: p.body.as_ref().map(|_| JsonContentType {
                            content_type: "application/json",
                        }),
                        body: p.body.as_ref(),
                    })
                    .collect(),
            };
            let cost = u32::try_from(todo.len()).unwrap_or(u32::MAX);
            let outer = match self.url(&["$batch".into()], &[]) {
                Ok(url) => {
                    self.send("$batch", Method::POST, url, Some(&body), cost)
                        .await
                }
                Err(e) => Err(e),
            };
            let value = match outer.and_then(|raw| {
                if raw.status == 200 || raw.status == 424 {
                    raw.json("$batch")
                } else {
                    Err(status_error(
                        "$batch",
                        raw.status,
                        serde_json::from_slice::<Value>(&raw.body).ok().as_ref(),
                    ))
                }
            }) {
                Ok(v) => v,
                Err(e) => {
                    done.extend(todo.into_iter().map(|(i, _)| (i, Err(e.clone()))));
                    return done;
                }
            };
            let responses: HashMap<String, &Value> = value
                .get("responses")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|r| Some((r.get("id")?.as_str()?.to_ascii_lowercase(), r)))
                        .collect()
                })
                .unwrap_or_default();
            let mut retry = Vec::new();
            let mut wait: Option<Duration> = None;
            let mut last_throttle: Option<Duration> = None;
            let mut any_server_error = false;
            for (i, parts) in todo {
                let Some(r) = responses.get(&i.to_string()) else {
                    done.push((
                        i,
                        Err(GraphError::InvalidResponse {
                            operation: parts.op,
                            message: "the $batch response has no sub-response for this request"
                                .into(),
                        }),
                    ));
                    continue;
                };
                let status = r.get("status").and_then(Value::as_u64).unwrap_or(0) as u16;
                let body = r.get("body");
                match status {
                    200..=299 => {
                        let outcome = if parts.op == "getPresence" {
                            match body.cloned().map(serde_json::from_value::<Presence>) {
                                Some(Ok(p)) => Ok(OperationOutcome::Presence(p)),
                                _ => Err(GraphError::InvalidResponse {
                                    operation: parts.op,
                                    message: "no presence in the sub-response".into(),
                                }),
                            }
                        } else {
                            Ok(OperationOutcome::Done)
                        };
                        done.push((i, outcome));
                    }
                    404 if parts.op == "clearPresence" => {
                        done.push((i, Ok(OperationOutcome::AlreadyCleared)))
                    }
                    429 | 500 | 502 | 503 | 504 => {
                        let ra = r
                            .get("headers")
                            .and_then(Value::as_object)
                            .and_then(|h| {
                                h.iter()
                                    .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                            })
                            .and_then(|(_, v)| {
                                v.as_str()
                                    .and_then(|s| s.trim().parse::<u64>().ok())
                                    .or(v.as_u64())
                            })
                            .map(Duration::from_secs);
                        if status == 429 {
                            last_throttle = ra;
                        } else {
                            any_server_error = true;
                        }
                        if let Some(ra) = ra {
                            wait = Some(wait.map_or(ra, |w| w.max(ra)));
                        }
                        let err = if status == 429 {
                            GraphError::Throttled {
                                operation: parts.op,
                                attempts: round + 1,
                                retry_after: ra,
                            }
                        } else {
                            let (code, message) = error_parts_value(body);
                            GraphError::Server {
                                operation: parts.op,
                                status,
                                attempts: round + 1,
                                code,
                                message,
                                retry_after: ra,
                            }
                        };
                        retry.push((i, parts, err));
                    }
                    s => done.push((i, Err(status_error(parts.op, s, body)))),
                }
            }
            let next = if retry.is_empty() {
                None
            } else {
                policy.next_wait(round, wait, waited)
            };
            let Some(d) = next else {
                // Nothing to retry, or the policy says stop: each keeps its own error.
                done.extend(retry.into_iter().map(|(i, _, err)| (i, Err(err))));
                return done;
            };
            {
                tracing::warn!(
                    count = retry.len(),
                    throttled = last_throttle.is_some(),
                    server_errors = any_server_error,
                    retry_in_ms = d.as_millis() as u64,
                    "retrying $batch sub-requests"
                );
                self.inner.clock.sleep(d).await;
                waited += d;
                round += 1;
            }
            todo = retry.into_iter().map(|(i, parts, _)| (i, parts)).collect();
        }
        done
    }
}

/// A `$batch` request body (JSON batching: `requests`, at most 20).
#[derive(serde::Serialize)]
struct BatchRequest<'a> {
    requests: Vec<BatchSubRequest<'a>>,
}

#[derive(serde::Serialize)]
struct BatchSubRequest<'a> {
    id: String,
    method: &'a str,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<JsonContentType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a Body>,
}

/// A sub-request with a body must give its `Content-Type`.
#[derive(serde::Serialize)]
struct JsonContentType {
    #[serde(rename = "Content-Type")]
    content_type: &'static str,
}

/// Percent-encodes a path segment for a `$batch` relative URL (same set as the URL builder).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_encode_hash() {
        assert_eq!(
            encode_segment("a_b.com#EXT#@c.com"),
            "a_b.com%23EXT%23@c.com"
        );
    }
}
