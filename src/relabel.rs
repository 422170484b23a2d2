//! Prometheus relabeling, pure: `metric_relabel_configs` (per target) and
//! `write_relabel_configs` (per remote-write endpoint) use these rules.
//!
//! The semantics are Prometheus' (`model/relabel`), names included: the
//! values of `source_labels` joined by `separator` are matched against
//! `regex`, which is anchored at both ends and uses RE2 syntax (through
//! `regex-lite`: RE2's syntax with `\d`, `\w`, `\s` and `\b` ASCII as in
//! RE2; Unicode classes such as `\pL` are refused when a rule is checked,
//! which keeps the Unicode tables, a few hundred KiB of relocated data,
//! out of the binary); `replacement` and a `replace` rule's
//! `target_label` expand `$1`, `${1}`, `$name` as Go's `Regexp.Expand`
//! does (`Captures::expand` has the same rules). Setting a label
//! to the empty string removes it. A series whose rules end without
//! `__name__` is dropped (Prometheus refuses such a scrape).
//!
//! Rules run once per series *shape* (`series::relabeled` caches the
//! outcome), never per sample: what a rule sees is a series' labels, which
//! do not change from one reading to the next.
//!
//! Invariants:
//! - a [`Rule`] is valid by construction ([`Rule::new`] checks what
//!   Prometheus' config loader checks), so [`Rules::apply`] cannot fail;
//! - applying rules is deterministic: the same labels give the same
//!   outcome, which is what makes caching it per shape sound.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use md5::{Digest, Md5};
use regex_lite::Regex;

/// A series' labels by name, `__name__` included.
pub(crate) type LabelSet = BTreeMap<String, String>;

/// The metric name's label.
pub(crate) const NAME: &str = "__name__";

/// What a rule does, by its Prometheus name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl Action {
    const ALL: [Action; 11] = [
        Action::Replace,
        Action::Keep,
        Action::Drop,
        Action::KeepEqual,
        Action::DropEqual,
        Action::HashMod,
        Action::LabelMap,
        Action::LabelDrop,
        Action::LabelKeep,
        Action::Lowercase,
        Action::Uppercase,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }

    /// Case-insensitive, as Prometheus reads it.
    fn parse(text: &str) -> Result<Action, String> {
        let lower = text.to_ascii_lowercase();
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == lower)
            .ok_or_else(|| {
                let names: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
                format!("unknown action \"{text}\"; one of {}", names.join(", "))
            })
    }

    /// Actions that write `target_label`.
    fn needs_target(self) -> bool {
        matches!(
            self,
            Action::Replace
                | Action::HashMod
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
        )
    }
}

/// A rule as written (a config file's table), each field `None` when left
/// out.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleText {
    pub(crate) source_labels: Option<Vec<String>>,
    pub(crate) separator: Option<String>,
    pub(crate) regex: Option<String>,
    pub(crate) modulus: Option<u64>,
    pub(crate) target_label: Option<String>,
    pub(crate) replacement: Option<String>,
    pub(crate) action: Option<String>,
}

const DEFAULT_SEPARATOR: &str = ";";
const DEFAULT_REGEX: &str = "(.*)";
const DEFAULT_REPLACEMENT: &str = "$1";

/// One checked rule.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    source_labels: Vec<String>,
    separator: String,
    /// As written, for `check-config` and comparing rules.
    regex_text: String,
    /// `^(?:regex_text)$`.
    regex: Regex,
    modulus: u64,
    target_label: String,
    replacement: String,
    action: Action,
}

impl PartialEq for Rule {
    fn eq(&self, other: &Rule) -> bool {
        self.source_labels == other.source_labels
            && self.separator == other.separator
            && self.regex_text == other.regex_text
            && self.modulus == other.modulus
            && self.target_label == other.target_label
            && self.replacement == other.replacement
            && self.action == other.action
    }
}

impl Rule {
    /// Checks a rule as Prometheus' config loader does; the error says
    /// which field is wrong and why.
    pub(crate) fn new(text: &RuleText) -> Result<Rule, String> {
        let action = Action::parse(text.action.as_deref().unwrap_or("replace"))?;
        let regex_text = text.regex.clone().unwrap_or_else(|| DEFAULT_REGEX.into());
        let regex = Regex::new(&regex_text)
            .and_then(|_| Regex::new(&format!("^(?:{regex_text})$")))
            .map_err(|e| format!("regex {regex_text:?} is invalid: {}", reason(&e)))?;
        let rule = Rule {
            source_labels: text.source_labels.clone().unwrap_or_default(),
            separator: text
                .separator
                .clone()
                .unwrap_or_else(|| DEFAULT_SEPARATOR.into()),
            regex_text,
            regex,
            modulus: text.modulus.unwrap_or(0),
            target_label: text.target_label.clone().unwrap_or_default(),
            replacement: text
                .replacement
                .clone()
                .unwrap_or_else(|| DEFAULT_REPLACEMENT.into()),
            action,
        };
        rule.check(text)?;
        Ok(rule)
    }

    fn check(&self, text: &RuleText) -> Result<(), String> {
        let action = self.action.as_str();
        if let Some(bad) = self.source_labels.iter().find(|l| !is_label_name(l)) {
            return Err(format!(
                "source_labels: \"{bad}\" is not a valid label name"
            ));
        }
        if self.action.needs_target() && self.target_label.is_empty() {
            return Err(format!("the {action} action needs target_label"));
        }
        let target_ok = match self.action {
            Action::Replace => is_label_template(&self.target_label),
            a if a.needs_target() => is_label_name(&self.target_label),
            _ => true,
        };
        if !target_ok {
            return Err(format!(
                "target_label: \"{}\" is not a valid label name for the {action} action",
                self.target_label
            ));
        }
        if self.action == Action::HashMod && self.modulus == 0 {
            return Err("the hashmod action needs a modulus above 0".into());
        }
        if self.action == Action::LabelMap && !is_label_template(&self.replacement) {
            return Err(format!(
                "replacement: \"{}\" is not a valid label name for the labelmap action",
                self.replacement
            ));
        }
        let only = match self.action {
            Action::KeepEqual | Action::DropEqual => Some((
                "source_labels and target_label",
                text.regex.is_some()
                    || text.modulus.is_some()
                    || text.separator.is_some()
                    || text.replacement.is_some(),
            )),
            Action::LabelDrop | Action::LabelKeep => Some((
                "regex",
                text.source_labels.is_some()
                    || text.target_label.is_some()
                    || text.modulus.is_some()
                    || text.separator.is_some()
                    || text.replacement.is_some(),
            )),
            Action::Lowercase | Action::Uppercase => {
                Some(("source_labels and target_label", text.replacement.is_some()))
            }
            _ => None,
        };
        match only {
            Some((fields, true)) => Err(format!("the {action} action takes only {fields}")),
            _ => Ok(()),
        }
    }

    /// Applies the rule to `labels`; false: the series is dropped.
    fn apply(&self, labels: &mut LabelSet) -> bool {
        let value = self.source_value(labels);
        match self.action {
            Action::Drop => return !self.regex.is_match(&value),
            Action::Keep => return self.regex.is_match(&value),
            Action::DropEqual => return get(labels, &self.target_label) != value,
            Action::KeepEqual => return get(labels, &self.target_label) == value,
            Action::Replace => self.replace(labels, &value),
            Action::Lowercase => set(labels, &self.target_label, value.to_lowercase()),
            Action::Uppercase => set(labels, &self.target_label, value.to_uppercase()),
            Action::HashMod => {
                let modulus = hash_mod(&value, self.modulus).to_string();
                set(labels, &self.target_label, modulus);
            }
            Action::LabelMap => self.label_map(labels),
            Action::LabelDrop => labels.retain(|name, _| !self.regex.is_match(name)),
            Action::LabelKeep => labels.retain(|name, _| self.regex.is_match(name)),
        }
        true
    }

    fn source_value(&self, labels: &LabelSet) -> String {
        let values: Vec<&str> = self.source_labels.iter().map(|l| get(labels, l)).collect();
        values.join(&self.separator)
    }

    fn replace(&self, labels: &mut LabelSet, value: &str) {
        let Some(captures) = self.regex.captures(value) else {
            return;
        };
        let mut target = String::new();
        captures.expand(&self.target_label, &mut target);
        if !is_label_name(&target) {
            return;
        }
        let mut replaced = String::new();
        captures.expand(&self.replacement, &mut replaced);
        set(labels, &target, replaced);
    }

    fn label_map(&self, labels: &mut LabelSet) {
        let mapped: Vec<(String, String)> = labels
            .iter()
            .filter(|(name, _)| self.regex.is_match(name))
            .map(|(name, value)| {
                let to = self.regex.replace_all(name, self.replacement.as_str());
                (to.into_owned(), value.clone())
            })
            .collect();
        for (name, value) in mapped {
            set(labels, &name, value);
        }
    }

    pub(crate) fn describe(&self) -> String {
        let mut parts = vec![format!("action = \"{}\"", self.action.as_str())];
        if !self.source_labels.is_empty() {
            parts.push(format!("source_labels = {:?}", self.source_labels));
        }
        if self.separator != DEFAULT_SEPARATOR {
            parts.push(format!("separator = {:?}", self.separator));
        }
        if self.regex_text != DEFAULT_REGEX {
            parts.push(format!("regex = {:?}", self.regex_text));
        }
        if self.modulus != 0 {
            parts.push(format!("modulus = {}", self.modulus));
        }
        if !self.target_label.is_empty() {
            parts.push(format!("target_label = {:?}", self.target_label));
        }
        if self.replacement != DEFAULT_REPLACEMENT {
            parts.push(format!("replacement = {:?}", self.replacement));
        }
        format!("{{ {} }}", parts.join(", "))
    }
}

/// A list of rules, applied in order; shared by every series they shape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rules(Arc<[Rule]>);

impl Rules {
    pub(crate) fn new(rules: Vec<Rule>) -> Rules {
        Rules(rules.into())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Applies every rule in order; false: the series is dropped (by a
    /// rule, or because it has no `__name__` left).
    pub(crate) fn apply(&self, labels: &mut LabelSet) -> bool {
        self.0.iter().all(|rule| rule.apply(labels))
            && labels.get(NAME).is_some_and(|n| !n.is_empty())
    }
}

impl fmt::Display for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rules: Vec<String> = self.0.iter().map(Rule::describe).collect();
        write!(f, "[{}]", rules.join(", "))
    }
}

fn get<'a>(labels: &'a LabelSet, name: &str) -> &'a str {
    labels.get(name).map_or("", String::as_str)
}

/// Sets a label; the empty value removes it, as in Prometheus.
fn set(labels: &mut LabelSet, name: &str, value: String) {
    if value.is_empty() {
        labels.remove(name);
    } else {
        labels.insert(name.to_owned(), value);
    }
}

/// Prometheus' hashmod: the last eight bytes of the value's MD5, big
/// endian, modulo `modulus`.
fn hash_mod(value: &str, modulus: u64) -> u64 {
    let sum = Md5::digest(value.as_bytes());
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&sum[8..]);
    u64::from_be_bytes(tail) % modulus
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A label name that may hold `$1`, `${1}` or `$name` references:
/// Prometheus' `^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$`.
fn is_label_template(text: &str) -> bool {
    if !text.contains('$') {
        return is_label_name(text);
    }
    static TEMPLATE: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$").expect("valid")
    });
    TEMPLATE.is_match(text)
}

/// The reason of a regex error, without the pattern it repeats.
fn reason(e: &regex_lite::Error) -> String {
    let text = e.to_string();
    let last = text.lines().last().unwrap_or_default();
    last.strip_prefix("error: ").unwrap_or(last).to_owned()
}

#[cfg(test)]
mod tests;
