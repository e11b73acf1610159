//! The few Slack Web API methods Gate calls: `chat.postMessage`, `chat.update`,
//! `users.lookupByEmail`, `users.info`. Bearer bot token; `slack_base_url` points elsewhere in
//! tests. Every answer is `{"ok": bool, "error"?: "…", …}`.

use std::time::Duration;

use gate_config::control::SlackConfig;
use serde_json::Value;

use crate::delivery::client::post;
use crate::delivery::ssrf::Guard;

const DEFAULT_BASE: &str = "https://slack.com/api";

/// A failed Slack call: the method and Slack's `error` (or the transport's).
#[derive(Debug, thiserror::Error)]
#[error("slack {method}: {error}")]
pub struct SlackError {
    pub method: &'static str,
    pub error: String,
}

/// One Slack workspace's Web API.
#[derive(Debug, Clone)]
pub struct Api<'a> {
    pub config: &'a SlackConfig,
    pub timeout: Duration,
}

impl Api<'_> {
    fn url(&self, method: &str) -> String {
        let base = self
            .config
            .slack_base_url
            .as_deref()
            .unwrap_or(DEFAULT_BASE);
        format!("{}/{method}", base.trim_end_matches('/'))
    }

    async fn call(
        &self,
        method: &'static str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Value, SlackError> {
        let fail = |error: String| SlackError { method, error };
        // The operator configured this URL; the webhook SSRF rules are for tenants' URLs.
        let guard = Guard {
            trusted: true,
            ..Guard::default()
        };
        let headers = [
            ("authorization", format!("Bearer {}", self.config.bot_token)),
            ("content-type", content_type.to_owned()),
        ];
        let answer = post(&guard, &self.url(method), &headers, body, self.timeout)
            .await
            .map_err(fail)?;
        if answer.status != 200 {
            return Err(fail(format!("HTTP status {}", answer.status)));
        }
        let value: Value = serde_json::from_slice(&answer.body)
            .map_err(|e| fail(format!("answer is not JSON: {e}")))?;
        if value["ok"] == Value::Bool(true) {
            Ok(value)
        } else {
            Err(fail(value["error"].as_str().unwrap_or("not ok").to_owned()))
        }
    }

    async fn json(&self, method: &'static str, body: &Value) -> Result<Value, SlackError> {
        self.call(
            method,
            "application/json; charset=utf-8",
            body.to_string().into_bytes(),
        )
        .await
    }

    async fn form(
        &self,
        method: &'static str,
        pairs: &[(&str, &str)],
    ) -> Result<Value, SlackError> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.call(
            method,
            "application/x-www-form-urlencoded",
            body.into_bytes(),
        )
        .await
    }

    /// Post a message; returns its channel and `ts`.
    pub async fn post_message(&self, message: &Value) -> Result<(String, String), SlackError> {
        let answer = self.json("chat.postMessage", message).await?;
        let text = |name: &str| answer[name].as_str().unwrap_or_default().to_owned();
        Ok((text("channel"), text("ts")))
    }

    pub async fn update(&self, message: &Value) -> Result<(), SlackError> {
        self.json("chat.update", message).await.map(|_| ())
    }

    /// The Slack user id with this email, `None` when Slack knows no such user.
    pub async fn lookup_by_email(&self, email: &str) -> Result<Option<String>, SlackError> {
        match self.form("users.lookupByEmail", &[("email", email)]).await {
            Ok(answer) => Ok(answer["user"]["id"].as_str().map(str::to_owned)),
            Err(e) if e.error == "users_not_found" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A Slack user's profile email, if Slack shares it.
    pub async fn user_email(&self, user: &str) -> Result<Option<String>, SlackError> {
        let answer = self.form("users.info", &[("user", user)]).await?;
        Ok(answer["user"]["profile"]["email"]
            .as_str()
            .map(str::to_owned))
    }
}
