//! Who or what asked for work, as far as the trigger can tell: the hints an HTTP call carries (Logic
//! Apps' workflow headers, the Entra caller App Service authentication forwards, the name of the
//! function key used), or the alert that fired. It travels with the work through every queue message
//! (`origin`), so the audit record of a reprocess done later by the queue function still names it.
//!
//! Every value is caller text: it is kept only as printable text of at most [`MAX_VALUE`] characters
//! (clipped otherwise), without control or Unicode format characters. No header other than the named ones is ever read, so no token, function key or
//! URL query can end up here.

use serde::{Deserialize, Serialize};

/// Longest value kept, in characters.
pub const MAX_VALUE: usize = 256;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Caller {
    /// The trigger that first received the request: `http` or `alert` (queue messages put there by
    /// someone else carry no origin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<String>,
    /// Logic Apps: `x-ms-workflow-name`, `x-ms-workflow-run-id`, `x-ms-client-tracking-id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_tracking_id: Option<String>,
    /// App Service authentication: `x-ms-client-principal-name`, `-id`, `-idp`, as the request carried
    /// them: caller text, verified only when the `verified_*` fields are set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal_idp: Option<String>,
    /// The principal App Service authentication verified (only while it is on, from its
    /// `X-MS-CLIENT-PRINCIPAL`): object ID, calling application's client ID, and the app roles that
    /// granted this call (comma-separated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_principal_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_app_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_roles: Option<String>,
    /// The *name* of the function key the host accepted (its `keyid` claim), never the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    /// Azure Monitor: `essentials.alertRule` and `essentials.alertId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<String>,
}

impl Caller {
    /// Every value made safe ([`clean`]); empty ones dropped.
    pub fn cleaned(mut self) -> Self {
        for value in self.values_mut() {
            *value = value.as_deref().and_then(clean);
        }
        self
    }

    fn values_mut(&mut self) -> [&mut Option<String>; 15] {
        [
            &mut self.trigger,
            &mut self.function,
            &mut self.invocation_id,
            &mut self.workflow_name,
            &mut self.workflow_run_id,
            &mut self.client_tracking_id,
            &mut self.principal_name,
            &mut self.principal_id,
            &mut self.principal_idp,
            &mut self.verified_principal_id,
            &mut self.verified_app_id,
            &mut self.verified_roles,
            &mut self.key_name,
            &mut self.alert_rule,
            &mut self.alert_id,
        ]
    }
}

/// Control and format characters removed ([`super::text::shown`]: a bidirectional override in a
/// workflow name would make the record read as something else), trimmed, clipped to [`MAX_VALUE`]
/// characters; `None` if nothing is left.
pub fn clean(value: &str) -> Option<String> {
    let text = super::text::shown(value, MAX_VALUE);
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_clipped_and_control_free() {
        let caller = Caller {
            workflow_name: Some("flow\r\n{\"forged\":1}".into()),
            alert_rule: Some("x".repeat(1_000)),
            alert_id: Some(" \t ".into()),
            ..Caller::default()
        }
        .cleaned();
        assert_eq!(caller.workflow_name.as_deref(), Some("flow{\"forged\":1}"));
        assert_eq!(caller.alert_rule.unwrap().chars().count(), MAX_VALUE);
        assert_eq!(caller.alert_id, None);
    }

    #[test]
    fn format_characters_are_dropped_like_control_characters() {
        let caller = Caller {
            workflow_name: Some("pay\u{202E}txt.exe\u{200B}".into()),
            principal_name: Some("\u{2066}admin\u{2069}\u{FEFF}@contoso.com\u{E0041}".into()),
            alert_id: Some("\u{200B}\u{00AD}\u{061C}".into()),
            ..Caller::default()
        }
        .cleaned();
        assert_eq!(caller.workflow_name.as_deref(), Some("paytxt.exe"));
        assert_eq!(caller.principal_name.as_deref(), Some("admin@contoso.com"));
        assert_eq!(caller.alert_id, None, "nothing shown is left");
    }
}
