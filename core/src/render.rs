//! Rendering of every generated file (host configuration, GRUB, kickstarts, preseeds, xl and
//! libvirt configs) with Tera. Templates are compiled in; a directory given at run time overrides
//! any of them by the same relative name (`templates/fstab.tera`, `kickstarts/rocky9.ks`), so an
//! admin can change a kickstart without rebuilding.

use std::path::Path;

use serde::Serialize;
use tera::{Context, Kwargs, State, Tera};

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/templates.rs"));
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {name}:\n{message}")]
    Template { name: String, message: String },
    #[error("reading template override {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub struct Templates {
    tera: Tera,
}

/// POSIX shell single-quoting, for values placed in scripts and shell-sourced files.
pub fn shquote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn new_tera() -> Tera {
    let mut t = Tera::new();
    // Only XML (libvirt domains) and HTML (the status page) are escaped; shell, kickstart and
    // config files must stay verbatim.
    t.autoescape_on([".xml", ".html"]);
    t.register_filter("shquote", |s: &str, _: Kwargs, _: &State| shquote(s));
    t.register_filter("json", |v: tera::Value, _: Kwargs, _: &State| {
        serde_json::to_string(&v).unwrap_or_default()
    });
    t
}

impl Templates {
    /// The templates compiled into this binary.
    pub fn builtin() -> Templates {
        Templates::from_sources(
            builtin::BUILTIN
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string())),
        )
        .expect("the compiled-in templates parse (checked by the tests)")
    }

    /// The compiled-in templates, with any file under `dir` replacing the one of the same name.
    pub fn with_overrides(dir: &Path) -> Result<Templates, RenderError> {
        let mut sources: Vec<(String, String)> = builtin::BUILTIN
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect();
        for (name, body) in sources.iter_mut() {
            let p = dir.join(&*name);
            match std::fs::read_to_string(&p) {
                Ok(s) => *body = s,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(RenderError::Io {
                        path: p.display().to_string(),
                        source,
                    });
                }
            }
        }
        Templates::from_sources(sources.into_iter())
    }

    fn from_sources(
        sources: impl Iterator<Item = (String, String)>,
    ) -> Result<Templates, RenderError> {
        let mut tera = new_tera();
        let sources: Vec<(String, String)> = sources.collect();
        tera.add_raw_templates(sources.iter().map(|(n, s)| (n.as_str(), s.as_str())))
            .map_err(|e| RenderError::Template {
                name: "(loading)".into(),
                message: e.to_string(),
            })?;
        Ok(Templates { tera })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tera.get_template_names()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tera.contains_template(name)
    }

    /// Renders `src`, a template an admin wrote outside this set (a fleet host's answer), with the
    /// same filters; `name` is what its errors call it.
    pub fn render_source(
        name: &str,
        src: &str,
        ctx: &impl Serialize,
    ) -> Result<String, RenderError> {
        let err = |e: tera::Error| RenderError::Template {
            name: name.into(),
            message: e.to_string(),
        };
        let mut tera = new_tera();
        tera.add_raw_template(name, src).map_err(err)?;
        let ctx = Context::from_serialize(ctx).map_err(err)?;
        tera.render(name, &ctx).map_err(err)
    }

    pub fn render(&self, name: &str, ctx: &impl Serialize) -> Result<String, RenderError> {
        let err = |e: tera::Error| RenderError::Template {
            name: name.into(),
            message: e.to_string(),
        };
        let ctx = Context::from_serialize(ctx).map_err(err)?;
        self.tera.render(name, &ctx).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shquote_survives_quotes() {
        assert_eq!(shquote("a'b c"), r"'a'\''b c'");
    }

    #[test]
    fn every_builtin_template_parses() {
        let t = Templates::builtin();
        assert_eq!(t.names().count(), builtin::BUILTIN.len());
    }

    #[test]
    fn overrides_replace_by_name_and_report_errors_with_position() {
        let dir = tempfile::tempdir().unwrap();
        let name = builtin::BUILTIN[0].0;
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "custom {{ x }}").unwrap();
        let t = Templates::with_overrides(dir.path()).unwrap();
        assert_eq!(
            t.render(name, &serde_json::json!({"x": 1})).unwrap(),
            "custom 1"
        );
        let e = t
            .render(name, &serde_json::json!({}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("x"), "{e}");
        std::fs::write(&p, "broken {{ x | nosuchfilter }}").unwrap();
        let e = Templates::with_overrides(dir.path())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("nosuchfilter") && e.contains(":1:"), "{e}");
    }
}
