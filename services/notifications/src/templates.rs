//! Templates: minijinja text with a declared list of variables. A template that uses a
//! variable it does not declare is refused when it is created; a send that lacks a declared
//! variable is refused when it is made. Rendering is strict: nothing renders as empty by
//! accident. HTML bodies escape what they insert.

use std::collections::BTreeSet;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde_json::Value;

/// Longest subject, body or HTML of a template, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

/// Why a template or its data is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// Not valid template syntax.
    #[error("{part}: {message}")]
    Syntax {
        /// `subject`, `body` or `html`.
        part: &'static str,
        /// The parser's words.
        message: String,
    },
    /// The text uses variables the template does not declare.
    #[error("{part} uses undeclared variables: {names}")]
    Undeclared {
        /// `subject`, `body` or `html`.
        part: &'static str,
        /// Comma-separated.
        names: String,
    },
    /// The data lacks declared variables.
    #[error("missing variables: {0}")]
    Missing(String),
    /// Rendering failed (a filter on the wrong type, …).
    #[error("cannot render: {0}")]
    Render(String),
}

/// A template's texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Texts {
    /// Subject line (or title).
    pub subject: String,
    /// Plain text body.
    pub body: String,
    /// HTML body (email only).
    pub html: Option<String>,
}

/// Names every template may use without declaring them: `click(url)` makes a tracked link,
/// `unsubscribe_url` the recipient's opt-out link for the message's category.
pub const GLOBALS: [&str; 2] = ["click", "unsubscribe_url"];

/// What the globals of one message render to.
#[derive(Debug, Clone, Default)]
pub struct Globals {
    /// Tracked links of notification `.1`; `None`: links stay as they are (previews).
    pub links: Option<(crate::links::Links, String)>,
    /// The opt-out link, empty when the message has no user or cannot be opted out of.
    pub unsubscribe_url: String,
}

fn environment(html: bool) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(move |_| {
        if html {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env
}

fn parts(texts: &Texts) -> Vec<(&'static str, &str, bool)> {
    let mut parts = vec![
        ("subject", texts.subject.as_str(), false),
        ("body", texts.body.as_str(), false),
    ];
    if let Some(html) = &texts.html {
        parts.push(("html", html.as_str(), true));
    }
    parts
}

/// Checks the syntax of every part and that it only uses `declared` variables (their
/// top-level names: `order.total` needs `order`).
pub fn validate(texts: &Texts, declared: &[String]) -> Result<(), TemplateError> {
    let declared: BTreeSet<&str> = declared.iter().map(String::as_str).collect();
    for (part, source, html) in parts(texts) {
        let env = environment(html);
        let template = env
            .template_from_str(source)
            .map_err(|e| TemplateError::Syntax {
                part,
                message: e.to_string(),
            })?;
        let mut undeclared: Vec<String> = template
            .undeclared_variables(false)
            .into_iter()
            .filter(|name| !declared.contains(name.as_str()) && !GLOBALS.contains(&name.as_str()))
            .collect();
        if !undeclared.is_empty() {
            undeclared.sort();
            return Err(TemplateError::Undeclared {
                part,
                names: undeclared.join(", "),
            });
        }
    }
    Ok(())
}

/// Renders `texts` with `data`, which must hold every `declared` variable; links stay as
/// written (previews).
pub fn render(texts: &Texts, declared: &[String], data: &Value) -> Result<Texts, TemplateError> {
    render_with(texts, declared, data, &Globals::default())
}

/// [`render`] with the message's tracked links and opt-out link.
pub fn render_with(
    texts: &Texts,
    declared: &[String],
    data: &Value,
    globals: &Globals,
) -> Result<Texts, TemplateError> {
    let missing: Vec<&str> = declared
        .iter()
        .map(String::as_str)
        .filter(|name| data.get(name).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(TemplateError::Missing(missing.join(", ")));
    }
    let mut out = Vec::new();
    for (part, source, html) in parts(texts) {
        let mut env = environment(html);
        let links = globals.links.clone();
        env.add_function("click", move |url: String| -> String {
            match &links {
                Some((links, id)) => links.click(id, &url),
                None => url,
            }
        });
        env.add_global("unsubscribe_url", globals.unsubscribe_url.clone());
        let rendered = env
            .render_str(source, data)
            .map_err(|e| TemplateError::Render(format!("{part}: {e}")))?;
        out.push(rendered);
    }
    let mut out = out.into_iter();
    Ok(Texts {
        subject: out.next().unwrap_or_default(),
        body: out.next().unwrap_or_default(),
        html: out.next(),
    })
}

/// A template the service ships with.
#[derive(Debug, Clone, Copy)]
pub struct BuiltIn {
    /// Name senders use.
    pub name: &'static str,
    /// Channel.
    pub channel: &'static str,
    /// Category.
    pub category: &'static str,
    /// Declared variables.
    pub variables: &'static [&'static str],
    /// Subject.
    pub subject: &'static str,
    /// Text body.
    pub body: &'static str,
    /// HTML body.
    pub html: Option<&'static str>,
}

/// The built-in templates: what orders, identity and inventory send.
pub const BUILT_INS: &[BuiltIn] = &[
    BuiltIn {
        name: "order_receipt",
        channel: "email",
        category: "transactional",
        variables: &["number", "total", "currency", "lines"],
        subject: "Your order {{ number }}",
        body: "Thank you for your order {{ number }}.\n{% for line in lines %}{{ line.quantity }} × {{ line.title }}: {{ line.total / 100 }} {{ currency }}\n{% endfor %}Total: {{ total / 100 }} {{ currency }}\n",
        html: Some(
            "<h1>Thank you for your order {{ number }}</h1><ul>{% for line in lines %}<li>{{ line.quantity }} × {{ line.title }}</li>{% endfor %}</ul><p>Total: {{ total / 100 }} {{ currency }}</p>",
        ),
    },
    BuiltIn {
        name: "order_shipped",
        channel: "email",
        category: "transactional",
        variables: &["number", "carrier", "tracking_number"],
        subject: "Order {{ number }} is on its way",
        body: "Your order {{ number }} was handed to {{ carrier }}; tracking number {{ tracking_number }}.\n",
        html: None,
    },
    BuiltIn {
        name: "order_cancelled",
        channel: "email",
        category: "transactional",
        variables: &["number", "reason"],
        subject: "Order {{ number }} was cancelled",
        body: "Your order {{ number }} was cancelled{% if reason %} ({{ reason }}){% endif %}. Nothing was charged, or it was refunded.\n",
        html: None,
    },
    BuiltIn {
        name: "password_reset",
        channel: "email",
        category: "transactional",
        variables: &["name", "token", "expires_in_seconds"],
        subject: "Reset your password",
        body: "Hello {{ name }},\nuse this code to choose a new password: {{ token }}\nIt expires in {{ expires_in_seconds // 60 }} minutes.\n",
        html: None,
    },
    BuiltIn {
        name: "verify_email",
        channel: "email",
        category: "transactional",
        variables: &["name", "token", "expires_in_seconds"],
        subject: "Confirm your email address",
        body: "Hello {{ name }},\nyour confirmation code is {{ token }}.\n",
        html: None,
    },
    BuiltIn {
        name: "organization_invitation",
        channel: "email",
        category: "transactional",
        variables: &["organization", "token", "role"],
        subject: "You are invited to {{ organization }}",
        body: "You are invited to join {{ organization }} as {{ role }}. Your invitation code: {{ token }}\n",
        html: None,
    },
    BuiltIn {
        name: "welcome",
        channel: "in_app",
        category: "transactional",
        variables: &["name"],
        subject: "Welcome, {{ name }}",
        body: "Welcome to the shop, {{ name }}.\n",
        html: None,
    },
    BuiltIn {
        name: "low_stock_alert",
        channel: "in_app",
        category: "operations",
        variables: &["sku", "available", "threshold"],
        subject: "Low stock: {{ sku }}",
        body: "{{ sku }} has {{ available }} units left (threshold {{ threshold }}).",
        html: None,
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn texts(subject: &str, body: &str, html: Option<&str>) -> Texts {
        Texts {
            subject: subject.into(),
            body: body.into(),
            html: html.map(str::to_owned),
        }
    }

    #[test]
    fn undeclared_variables_are_refused_at_create() {
        let t = texts("Hi {{ name }}", "Order {{ order.number }}", None);
        assert_eq!(validate(&t, &["name".into(), "order".into()]), Ok(()));
        let err = validate(&t, &["name".into()]).unwrap_err();
        assert!(
            matches!(err, TemplateError::Undeclared { part: "body", .. }),
            "{err}"
        );
        let bad = texts("{{ oops", "", None);
        assert!(matches!(
            validate(&bad, &[]),
            Err(TemplateError::Syntax { .. })
        ));
    }

    #[test]
    fn missing_data_is_refused_and_html_is_escaped() {
        let t = texts(
            "Hi {{ name }}",
            "Hello {{ name }}",
            Some("<b>{{ name }}</b>"),
        );
        let declared = vec!["name".to_owned()];
        assert_eq!(
            render(&t, &declared, &json!({})),
            Err(TemplateError::Missing("name".into()))
        );
        let out = render(&t, &declared, &json!({"name": "<Ada>"})).unwrap();
        assert_eq!(out.body, "Hello <Ada>");
        assert_eq!(out.html.as_deref(), Some("<b>&lt;Ada&gt;</b>"));
    }

    #[test]
    fn built_in_templates_are_valid() {
        for b in BUILT_INS {
            let t = texts(b.subject, b.body, b.html);
            let declared: Vec<String> = b.variables.iter().map(|v| v.to_string()).collect();
            assert_eq!(validate(&t, &declared), Ok(()), "{}", b.name);
        }
    }
}
