//! Renders the config file through minijinja before it is parsed, so operators
//! can pull secrets and per-host values from the environment:
//! `{{ env("DATABASE_URL") }}`, `{{ env_or("LISTEN", ":8234") }}`.

use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};

pub fn render(source: &str) -> Result<String, Error> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_function("env", |name: String| -> Result<String, Error> {
        std::env::var(&name).map_err(|_| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("environment variable {name} is not set (use env_or(\"{name}\", default) for an optional one)"),
            )
        })
    });
    env.add_function("env_or", |name: String, default: String| {
        std::env::var(&name).unwrap_or(default)
    });
    env.render_str(source, ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_and_env_or() {
        // SAFETY: tests in this module are the only readers of this variable.
        unsafe { std::env::set_var("CBS_TEMPLATE_TEST_VAR", "from-env") };
        let out = render("a: {{ env('CBS_TEMPLATE_TEST_VAR') }}\nb: {{ env_or('CBS_SURELY_UNSET', 'dflt') }}\n").unwrap();
        assert_eq!(out.trim_end(), "a: from-env\nb: dflt");
    }

    #[test]
    fn missing_env_names_the_variable() {
        let err = render("a: {{ env('CBS_SURELY_UNSET_TOO') }}").unwrap_err();
        assert!(err.to_string().contains("CBS_SURELY_UNSET_TOO"), "{err}");
    }
}
