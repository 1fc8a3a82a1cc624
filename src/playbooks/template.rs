//! Notification templates: minijinja with strict undefined. Checked at load (syntax and every
//! variable it reads), rendered at run time with `alert`, `user`, `playbook`, `action`.

use minijinja::{Environment, UndefinedBehavior};

use super::cel::ALERT_FIELDS;

const VARIABLES: &[&str] = &["alert", "user", "playbook", "action"];
const USER_FIELDS: &[&str] = &[
    "id",
    "email",
    "display_name",
    "state",
    "create_time",
    "path",
];
const ACTION_FIELDS: &[&str] = &["id", "kind", "target", "mode", "state", "reason", "error"];

fn env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
}

/// Compiles the template and checks that it reads only known variables and fields.
pub fn check(source: &str) -> Result<(), String> {
    let env = env();
    let tmpl = env
        .template_from_str(source)
        .map_err(|e| format!("template does not compile: {e}"))?;
    for var in tmpl.undeclared_variables(true) {
        let mut parts = var.splitn(2, '.');
        let root = parts.next().unwrap_or_default();
        let field = parts.next().map(|f| f.split('.').next().unwrap_or(f));
        let known_fields: &[&str] = match root {
            "alert" => ALERT_FIELDS,
            "user" => USER_FIELDS,
            "action" => ACTION_FIELDS,
            "playbook" => &["name", "description", "mode"],
            _ => {
                return Err(format!(
                    "unknown variable {root:?} (templates see {})",
                    VARIABLES.join(", ")
                ));
            }
        };
        if let Some(f) = field
            && !known_fields.contains(&f)
        {
            return Err(format!(
                "{root} has no field {f:?} (fields: {})",
                known_fields.join(", ")
            ));
        }
    }
    Ok(())
}

/// Renders a checked template. Missing values are errors, never empty strings.
pub fn render(source: &str, context: &serde_json::Value) -> Result<String, String> {
    env()
        .render_str(
            source,
            minijinja::Value::from(minijinja::value::Serde(context)),
        )
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_variables_and_fields_are_refused() {
        assert!(check("Suspended {{ user.email }}: {{ alert.title }}").is_ok());
        assert!(check("{{ usr.email }}").unwrap_err().contains("usr"));
        assert!(check("{{ alert.titel }}").unwrap_err().contains("titel"));
        assert!(check("{{ alert.title ").is_err());
        let out = render(
            "{{ user.email }}",
            &serde_json::json!({"user": {"email": "a@example.com"}}),
        )
        .unwrap();
        assert_eq!(out, "a@example.com");
        assert!(render("{{ user.email }}", &serde_json::json!({})).is_err());
    }
}
