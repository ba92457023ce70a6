//! Application and component variables, resolved the way Spin resolves them.
//!
//! Spin's model: the manifest declares *application* variables (`[variables]`) with a default or
//! `required = true`; components see only their own *component* variables, each a template such
//! as `"{{ signing_keys }}"` over application variables. Providers (explicit overrides, then the
//! `SPIN_VARIABLE_<NAME>` environment) win over defaults. All application values are resolved
//! once at startup — like Spin's prepared resolver — so a missing required value fails the start
//! instead of the first request, and per-request lookups are a map access.

use crate::manifest::Manifest;
use std::collections::{BTreeMap, HashMap};

/// Spin's environment provider reads application variable `name` from `SPIN_VARIABLE_<NAME>`.
pub const ENV_PREFIX: &str = "SPIN_VARIABLE_";

/// A variable lookup or template failure; variants mirror `spin:variables` errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VariableError {
    /// The name breaks Spin's naming rules.
    #[error("invalid variable name: {0}")]
    InvalidName(String),
    /// The component does not define this variable.
    #[error("undefined variable: {0}")]
    Undefined(String),
    /// A template is malformed or refers to an undeclared application variable.
    #[error("invalid variable template: {0}")]
    InvalidTemplate(String),
    /// A required application variable has no value from any provider.
    #[error("provider error: no provider resolved required variable {0:?}")]
    MissingRequired(String),
}

/// Checks a variable name against Spin's rules (lower-case letters, digits, single underscores).
///
/// Spin applies the same rule to application variables, component variables and guest lookups,
/// because names must map losslessly onto env vars (`SPIN_VARIABLE_NAME`) and file paths.
pub fn validate_name(name: &str) -> Result<(), VariableError> {
    let reason = if name.is_empty() {
        Some("must not be empty".to_owned())
    } else if let Some(invalid) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        Some(format!(
            "invalid character {invalid:?}. Variable names may contain only lower-case letters, numbers, and underscores."
        ))
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        Some("must start with a lowercase ASCII letter".to_owned())
    } else if !name.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        Some("must end with a lowercase ASCII letter or digit".to_owned())
    } else if name.contains("__") {
        Some("must not contain multiple consecutive underscores".to_owned())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(VariableError::InvalidName(format!("{name:?}: {reason}"))),
        None => Ok(()),
    }
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

/// A Spin template: literal text with `{{ name }}` expressions (no escapes, no nesting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Splits `text` into literals and `{{ … }}` expressions, as Spin's template parser does.
    pub fn parse(text: &str) -> Result<Self, VariableError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after_open) = rest.strip_prefix("{{") {
                let Some((expr, after_close)) = after_open.split_once("}}") else {
                    return Err(VariableError::InvalidTemplate(
                        "unmatched '{{' in template".to_owned(),
                    ));
                };
                parts.push(Part::Variable(expr.trim().to_owned()));
                rest = after_close;
            } else {
                let end = rest.find("{{").unwrap_or(rest.len());
                parts.push(Part::Literal(rest[..end].to_owned()));
                rest = &rest[end..];
            }
        }
        Ok(Self { parts })
    }

    /// True when the template has no expressions.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Variable(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }
}

/// All variable values of one application, resolved at startup.
#[derive(Debug, Clone)]
pub struct Variables {
    /// Application variable → resolved value.
    app_values: HashMap<String, String>,
    /// Component id → component variable → template.
    component_templates: HashMap<String, HashMap<String, Template>>,
}

impl Variables {
    /// Resolves every application variable and validates every component template.
    ///
    /// Provider order matches `spin up`: `overrides` (like `--variable`), then `env` looked up as
    /// `SPIN_VARIABLE_<UPPERCASE_NAME>`, then the manifest default.
    pub fn resolve(
        manifest: &Manifest,
        overrides: &BTreeMap<String, String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, VariableError> {
        let mut app_values = HashMap::new();
        for (name, decl) in &manifest.variables {
            validate_name(name)?;
            let value = overrides
                .get(name)
                .cloned()
                .or_else(|| env(&format!("{ENV_PREFIX}{}", name.to_ascii_uppercase())))
                .or_else(|| decl.default.clone())
                .ok_or_else(|| VariableError::MissingRequired(name.clone()))?;
            app_values.insert(name.clone(), value);
        }
        let mut component_templates = HashMap::new();
        for (component_id, component) in &manifest.components {
            let mut templates = HashMap::new();
            for (name, text) in &component.variables {
                validate_name(name)?;
                let template = Template::parse(text)?;
                if let Some(unknown) = template
                    .variables()
                    .find(|var| !manifest.variables.contains_key(*var))
                {
                    return Err(VariableError::InvalidTemplate(format!(
                        "unknown variable {unknown:?}"
                    )));
                }
                templates.insert(name.clone(), template);
            }
            component_templates.insert(component_id.clone(), templates);
        }
        Ok(Self {
            app_values,
            component_templates,
        })
    }

    /// Expands a template over the resolved application variables.
    pub fn expand(&self, template: &Template) -> Result<String, VariableError> {
        let mut out = String::new();
        for part in &template.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Variable(name) => out.push_str(
                    self.app_values
                        .get(name)
                        .ok_or_else(|| VariableError::InvalidName(name.clone()))?,
                ),
            }
        }
        Ok(out)
    }

    /// Parses and expands `text` (e.g. an `allowed_outbound_hosts` entry).
    pub fn expand_str(&self, text: &str) -> Result<String, VariableError> {
        self.expand(&Template::parse(text)?)
    }

    /// What `spin:variables/variables.get(name)` returns for `component_id`.
    pub fn component_value(&self, component_id: &str, name: &str) -> Result<String, VariableError> {
        validate_name(name)?;
        let templates = self.component_templates.get(component_id).ok_or_else(|| {
            VariableError::Undefined(format!("no variable for component {component_id:?}"))
        })?;
        let template = templates.get(name).ok_or_else(|| {
            VariableError::Undefined(format!("no variable for {component_id:?}.{name:?}"))
        })?;
        self.expand(template)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn manifest() -> Manifest {
        Manifest::parse(
            r#"
spin_manifest_version = 2
[application]
name = "t"
[variables]
region = { default = "eu" }
token = { required = true, secret = true }
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "c.wasm"
variables = { url = "https://{{ region }}.example.com/{{token}}", plain = "literal" }
"#,
            PathBuf::new(),
        )
        .unwrap()
    }

    #[test]
    fn names_follow_spins_rules() {
        // Spin's own good/bad key lists.
        for good in ["a", "abc", "a1b2c3", "a_1", "a_1_b_3"] {
            assert_eq!(validate_name(good), Ok(()), "{good}");
        }
        for bad in ["", "aX", "1bc", "_x", "x.y", "x_", "a__b", "x-y"] {
            assert!(
                matches!(validate_name(bad), Err(VariableError::InvalidName(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn templates_split_like_spin() {
        let t = Template::parse("a-{{ x }}-b{{y}}").unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Literal("a-".into()),
                Part::Variable("x".into()),
                Part::Literal("-b".into()),
                Part::Variable("y".into()),
            ]
        );
        assert!(Template::parse("plain").unwrap().is_literal());
        assert!(Template::parse("{{ ok }} {{ unmatched").is_err());
    }

    #[test]
    fn providers_win_over_defaults_in_spin_order() {
        let m = manifest();
        let env = |key: &str| match key {
            "SPIN_VARIABLE_TOKEN" => Some("from-env".to_owned()),
            "SPIN_VARIABLE_REGION" => Some("us".to_owned()),
            _ => None,
        };
        let vars = Variables::resolve(&m, &BTreeMap::new(), env).unwrap();
        assert_eq!(
            vars.component_value("c", "url").unwrap(),
            "https://us.example.com/from-env"
        );
        let overrides = BTreeMap::from([("region".to_owned(), "ap".to_owned())]);
        let vars = Variables::resolve(&m, &overrides, env).unwrap();
        assert_eq!(
            vars.component_value("c", "url").unwrap(),
            "https://ap.example.com/from-env"
        );
        assert_eq!(vars.component_value("c", "plain").unwrap(), "literal");
    }

    #[test]
    fn missing_required_fails_at_startup() {
        let err = Variables::resolve(&manifest(), &BTreeMap::new(), |_| None).unwrap_err();
        assert_eq!(err, VariableError::MissingRequired("token".into()));
    }

    #[test]
    fn lookups_report_spin_errors() {
        let overrides = BTreeMap::from([("token".to_owned(), "t".to_owned())]);
        let vars = Variables::resolve(&manifest(), &overrides, |_| None).unwrap();
        assert_eq!(
            vars.component_value("c", "nope"),
            Err(VariableError::Undefined(
                "no variable for \"c\".\"nope\"".into()
            ))
        );
        // Application variables are not visible unless the component declares them.
        assert!(matches!(
            vars.component_value("c", "region"),
            Err(VariableError::Undefined(_))
        ));
        assert!(matches!(
            vars.component_value("c", "Bad"),
            Err(VariableError::InvalidName(_))
        ));
    }

    #[test]
    fn templates_must_name_declared_variables() {
        let mut m = manifest();
        m.components
            .get_mut("c")
            .unwrap()
            .variables
            .insert("x".into(), "{{ undeclared }}".into());
        let overrides = BTreeMap::from([("token".to_owned(), "t".to_owned())]);
        assert!(matches!(
            Variables::resolve(&m, &overrides, |_| None),
            Err(VariableError::InvalidTemplate(_))
        ));
    }
}
