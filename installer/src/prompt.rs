//! Questions to a person, behind a small trait so guided mode is tested without a terminal.

use anyhow::{Result, bail};
use dialoguer::{Confirm, Input, Password, Select};

pub type Check<'a> = &'a dyn Fn(&str) -> Result<(), String>;

pub trait Prompter {
    /// One of `items`; returns its index.
    fn select(&mut self, prompt: &str, items: &[String], default: usize) -> Result<usize>;
    /// A line of text; `check` says what is wrong with it, and the question is asked again.
    fn input(&mut self, prompt: &str, default: Option<&str>, check: Check<'_>) -> Result<String>;
    fn confirm(&mut self, prompt: &str, default: bool) -> Result<bool>;
    /// A password, read without echo and asked twice.
    fn password(&mut self, prompt: &str) -> Result<String>;
}

/// The real terminal, with dialoguer.
pub struct Terminal;

impl Prompter for Terminal {
    fn select(&mut self, prompt: &str, items: &[String], default: usize) -> Result<usize> {
        match Select::new()
            .with_prompt(prompt)
            .items(items)
            .default(default)
            .interact_opt()?
        {
            Some(i) => Ok(i),
            None => bail!("cancelled at: {prompt}"),
        }
    }

    fn input(&mut self, prompt: &str, default: Option<&str>, check: Check<'_>) -> Result<String> {
        let mut q = Input::<String>::new()
            .with_prompt(prompt)
            .allow_empty(default.is_none());
        if let Some(d) = default {
            q = q.default(d.to_string());
        }
        Ok(q.validate_with(|s: &String| check(s)).interact_text()?)
    }

    fn confirm(&mut self, prompt: &str, default: bool) -> Result<bool> {
        match Confirm::new()
            .with_prompt(prompt)
            .default(default)
            .interact_opt()?
        {
            Some(b) => Ok(b),
            None => bail!("cancelled at: {prompt}"),
        }
    }

    fn password(&mut self, prompt: &str) -> Result<String> {
        Ok(Password::new()
            .with_prompt(prompt)
            .with_confirmation("Again", "The two entries differ; try again")
            .interact()?)
    }
}

/// Answers given in advance, for tests; records every question asked.
#[cfg(test)]
pub struct Script {
    pub answers: std::collections::VecDeque<String>,
    pub asked: Vec<String>,
}

#[cfg(test)]
impl Script {
    pub fn new(answers: &[&str]) -> Script {
        Script {
            answers: answers.iter().map(|s| s.to_string()).collect(),
            asked: Vec::new(),
        }
    }

    fn next(&mut self, prompt: &str) -> Result<String> {
        self.asked.push(prompt.to_string());
        self.answers
            .pop_front()
            .ok_or_else(|| anyhow::anyhow!("no scripted answer for: {prompt}"))
    }
}

#[cfg(test)]
impl Prompter for Script {
    /// The scripted answer is the item's text, or its start.
    fn select(&mut self, prompt: &str, items: &[String], default: usize) -> Result<usize> {
        let a = self.next(prompt)?;
        if a.is_empty() {
            return Ok(default);
        }
        items
            .iter()
            .position(|i| i.starts_with(&a))
            .ok_or_else(|| anyhow::anyhow!("{a:?} is none of {items:?} for: {prompt}"))
    }

    fn input(&mut self, prompt: &str, default: Option<&str>, check: Check<'_>) -> Result<String> {
        let a = self.next(prompt)?;
        let a = if a.is_empty() {
            default.unwrap_or("").to_string()
        } else {
            a
        };
        check(&a).map_err(|e| anyhow::anyhow!("{prompt}: {e}"))?;
        Ok(a)
    }

    fn confirm(&mut self, prompt: &str, default: bool) -> Result<bool> {
        Ok(match self.next(prompt)?.as_str() {
            "" => default,
            a => a == "y",
        })
    }

    fn password(&mut self, prompt: &str) -> Result<String> {
        self.next(prompt)
    }
}
