//! Rule violations, collected so that a request gets all of them at once.

use std::fmt;

/// One bad field: its path (as in the proto, e.g. `report.child.sex`) and
/// the rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The field's path.
    pub field: String,
    /// The rule, in words an operator understands.
    pub rule: String,
    /// When the field is wrong only for this partition: the province whose
    /// partition takes the request as it is ([`Violations::add_elsewhere`]).
    pub elsewhere: Option<String>,
    /// That province's name ("Thành phố Cần Thơ"), when known.
    pub elsewhere_name: Option<String>,
}

/// Every violation found in one request, in the order found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Violations(pub Vec<Violation>);

impl Violations {
    /// Just one violation.
    #[must_use]
    pub fn one(field: impl Into<String>, rule: impl Into<String>) -> Self {
        let mut v = Self::default();
        v.add(field, rule);
        v
    }

    /// Records that `field` breaks `rule`.
    pub fn add(&mut self, field: impl Into<String>, rule: impl Into<String>) {
        self.0.push(Violation {
            field: field.into(),
            rule: rule.into(),
            elsewhere: None,
            elsewhere_name: None,
        });
    }

    /// Records that `field` breaks `rule` only because this process keeps
    /// another partition than `province`'s: the request as it is belongs
    /// to `province`'s (a report about a commune of another province),
    /// whose name is `name` when known.
    pub fn add_elsewhere(
        &mut self,
        field: impl Into<String>,
        rule: impl Into<String>,
        province: impl Into<String>,
        name: Option<String>,
    ) {
        self.0.push(Violation {
            field: field.into(),
            rule: rule.into(),
            elsewhere: Some(province.into()),
            elsewhere_name: name,
        });
    }

    /// The province whose partition takes the request when that is all
    /// that is wrong with it (one violation, [`Self::add_elsewhere`]'s): a
    /// client that knows that province's processes may send it there
    /// unchanged. `None` when anything else must be fixed first.
    #[must_use]
    pub fn only_elsewhere(&self) -> Option<&str> {
        match self.0.as_slice() {
            [only] => only.elsewhere.as_deref(),
            _ => None,
        }
    }

    /// The name of [`Self::only_elsewhere`]'s province, when known.
    #[must_use]
    pub fn only_elsewhere_name(&self) -> Option<&str> {
        self.only_elsewhere()?;
        self.0[0].elsewhere_name.as_deref()
    }

    /// Keeps `result`'s value, or records its error against `field`.
    pub fn check<T>(&mut self, field: impl Into<String>, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(rule) => {
                self.add(field, rule);
                None
            }
        }
    }

    /// True when nothing was found.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was found.
    ///
    /// # Errors
    /// `self` when anything was found.
    pub fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", v.field, v.rule)?;
        }
        Ok(())
    }
}
