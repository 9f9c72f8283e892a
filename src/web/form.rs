//! Submitted HTML forms: the fields of an
//! `application/x-www-form-urlencoded` body, read only once its CSRF token
//! matched the session's. Every page that posts (security info, the admin
//! console) reads its forms here.

use super::error::PageError;
use crate::ids::secrets_equal;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use std::collections::HashMap;

/// A submitted form's fields.
pub struct Form {
    fields: HashMap<String, Vec<String>>,
}

impl Form {
    /// Parses a form body and checks its `csrf` field against `csrf` (the
    /// session's token), in constant time; a mismatch is a 403 page.
    pub fn checked(
        headers: &HeaderMap,
        body: &Result<Bytes, axum::extract::rejection::BytesRejection>,
        csrf: &str,
    ) -> Result<Form, PageError> {
        let Ok(body) = body else {
            return Err(PageError::bad_request(
                "The form is too large or unreadable.",
            ));
        };
        if !super::is_form(headers) {
            return Err(PageError::bad_request("Expected a form submission."));
        }
        let form = Form::parse(body);
        form.check_csrf(csrf)?;
        Ok(form)
    }

    /// The fields of a urlencoded body (or query string), unchecked.
    pub fn parse(body: &[u8]) -> Form {
        let mut fields: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(body).into_owned() {
            fields.entry(k).or_default().push(v);
        }
        Form { fields }
    }

    /// `self` with the fields of `other` added.
    pub fn merged(mut self, other: Form) -> Form {
        for (k, mut v) in other.fields {
            self.fields.entry(k).or_default().append(&mut v);
        }
        self
    }

    /// Whether the `csrf` field is the session's token.
    pub fn check_csrf(&self, csrf: &str) -> Result<(), PageError> {
        let ok = self
            .get("csrf")
            .is_some_and(|c| !csrf.is_empty() && secrets_equal(c, csrf));
        if ok {
            Ok(())
        } else {
            Err(PageError::new(
                StatusCode::FORBIDDEN,
                "Please try again",
                "The form could not be verified. Reload the page and try again.",
            ))
        }
    }

    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .and_then(|v| v.first())
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    /// Every value of a repeated field (checkboxes of one name).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .get(name)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Whether a checkbox named `name` was ticked.
    pub fn checked_box(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}
