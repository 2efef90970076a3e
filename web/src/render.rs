//! Templates: those compiled into the binary, each replaceable by a file of the same name in
//! the theme directory (`--theme DIR`) without recompiling. Every `.html` template escapes
//! what it prints unless told otherwise.

use std::path::PathBuf;

use minijinja::{Environment, Error, ErrorKind, Value};

/// Name and text of every template shipped: the storefront's and each admin area's.
fn shipped() -> impl Iterator<Item = &'static (&'static str, &'static str)> {
    TEMPLATES
        .iter()
        .chain(crate::admin::TEMPLATES.iter().flat_map(|t| t.iter()))
}

/// The storefront's templates.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("error.html", include_str!("../templates/error.html")),
    (
        "shop/_card.html",
        include_str!("../templates/shop/_card.html"),
    ),
    (
        "shop/_totals.html",
        include_str!("../templates/shop/_totals.html"),
    ),
    (
        "shop/_status.html",
        include_str!("../templates/shop/_status.html"),
    ),
    (
        "shop/home.html",
        include_str!("../templates/shop/home.html"),
    ),
    (
        "shop/search.html",
        include_str!("../templates/shop/search.html"),
    ),
    (
        "shop/product.html",
        include_str!("../templates/shop/product.html"),
    ),
    (
        "shop/cart.html",
        include_str!("../templates/shop/cart.html"),
    ),
    (
        "shop/checkout.html",
        include_str!("../templates/shop/checkout.html"),
    ),
    (
        "shop/order.html",
        include_str!("../templates/shop/order.html"),
    ),
    (
        "shop/login.html",
        include_str!("../templates/shop/login.html"),
    ),
    (
        "shop/register.html",
        include_str!("../templates/shop/register.html"),
    ),
    (
        "shop/account.html",
        include_str!("../templates/shop/account.html"),
    ),
    (
        "shop/reset.html",
        include_str!("../templates/shop/reset.html"),
    ),
];

/// The template environment of the web app.
pub(crate) fn environment(theme: Option<PathBuf>) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_loader(move |name| {
        if let Some(dir) = &theme {
            // Only plain relative names: a template name never leaves the theme directory.
            let safe = !name
                .split('/')
                .any(|s| s.is_empty() || s == ".." || s == ".");
            if safe {
                match std::fs::read_to_string(dir.join(name)) {
                    Ok(text) => return Ok(Some(text)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(Error::new(
                            ErrorKind::InvalidOperation,
                            "cannot read theme template",
                        )
                        .with_source(e));
                    }
                }
            }
        }
        Ok(shipped()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| (*text).to_owned()))
    });
    env.add_filter("money", money);
    env.add_filter("major", |amount: Value| {
        major(i64::try_from(amount).unwrap_or(0))
    });
    env
}

/// `{{ amount | money(currency) }}`: minor units as `€12.50`, `$3.00` or `12.50 CHF`.
fn money(amount: Value, currency: Option<String>) -> String {
    let minor = i64::try_from(amount).unwrap_or(0);
    let currency = currency.unwrap_or_else(|| "EUR".to_owned());
    let sign = if minor < 0 { "-" } else { "" };
    let units = major(minor);
    let units = units.trim_start_matches('-');
    match currency.as_str() {
        "EUR" => format!("{sign}€{units}"),
        "USD" => format!("{sign}${units}"),
        "GBP" => format!("{sign}£{units}"),
        other => format!("{sign}{units} {other}"),
    }
}

/// `{{ amount | major }}`: minor units as `12.50`, the way a form field takes them back.
fn major(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:02}",
        minor.unsigned_abs() / 100,
        minor.unsigned_abs() % 100
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_template_compiles() {
        let env = environment(None);
        for (name, _) in shipped() {
            env.get_template(name)
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }

    #[test]
    fn money_is_shown_in_major_units() {
        assert_eq!(money(Value::from(1250), Some("EUR".into())), "€12.50");
        assert_eq!(money(Value::from(-5), Some("USD".into())), "-$0.05");
        assert_eq!(money(Value::from(100), Some("CHF".into())), "1.00 CHF");
        assert_eq!(major(1205), "12.05");
    }

    #[test]
    fn a_theme_file_replaces_a_shipped_template() {
        let dir = std::env::temp_dir().join(format!("mercato-theme-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("error.html"), "themed {{ message }}").unwrap();
        let env = environment(Some(dir.clone()));
        let text = env
            .get_template("error.html")
            .unwrap()
            .render(minijinja::context! { message => "<b>x</b>" })
            .unwrap();
        assert_eq!(text, "themed &lt;b&gt;x&lt;&#x2f;b&gt;");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
