//! Store-URL options a store does not know are refused, never ignored: `?layot=hash` would otherwise open the
//! default layout and find none of the sessions written with `layout=hash`.

use crate::ConfigError;

/// The options every store URL takes besides its own: they configure wrappers around the store
/// ([`open_store`](crate::open_store)).
pub(crate) const WRAPPER_OPTIONS: &[&str] = &["failure_policy", "merge"];

/// The error for option `name`, which the store `store` does not know: names the closest known option when one is
/// close, and lists the known ones (`known` and the wrapper options).
pub(crate) fn unknown_option(redacted_url: &str, store: &str, name: &str, known: &[&str]) -> ConfigError {
    let all: Vec<&str> = known.iter().chain(WRAPPER_OPTIONS).copied().collect();
    let closest = all
        .iter()
        .map(|candidate| (strsim::damerau_levenshtein(name, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 4))
        .min();
    let hint = match closest {
        Some((_, candidate)) => format!(" (did you mean {candidate:?}?)"),
        None => String::new(),
    };
    ConfigError::InvalidStoreUrl {
        url: redacted_url.to_owned(),
        reason: format!(
            "unknown option {name:?}{hint}; the {store} store knows: {}",
            all.iter()
                .map(|k| if k.ends_with('[') { format!("{k}NAME]") } else { (*k).to_owned() })
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The error for a wrapper option (`failure_policy`, `merge`) given to a store opened directly, which cannot apply
/// it: only [`open_store`](crate::open_store) wraps the store.
#[cfg(feature = "redis")]
pub(crate) fn wrapper_option_here(redacted_url: &str, name: &str) -> ConfigError {
    ConfigError::InvalidStoreUrl {
        url: redacted_url.to_owned(),
        reason: format!(
            "{name} is an option of open_store (it wraps the store), not of a store opened directly; open the URL \
             with open_store, or in Django set SESSIONKIT['FAILURE_POLICY'] / SESSIONKIT['MERGE'] instead"
        ),
    }
}

/// Checks the query of `url` (after `?`, before `#`) against `known` (and the wrapper options): the first unknown
/// name is an error (see [`unknown_option`]).
pub(crate) fn refuse_unknown(url: &str, store: &str, known: &[&str]) -> Result<(), ConfigError> {
    let Some((_, query)) = url.split_once('?') else { return Ok(()) };
    let query = query.split_once('#').map_or(query, |(query, _)| query);
    for (name, _) in url::form_urlencoded::parse(query.as_bytes()) {
        // A known name ending in `[` stands for a family: `options[` is PostgreSQL's `options[NAME]=VALUE`.
        let is_known = |k: &&str| *k == name.as_ref() || (k.ends_with('[') && name.starts_with(*k));
        if !known.iter().any(is_known) && !WRAPPER_OPTIONS.contains(&name.as_ref()) {
            return Err(unknown_option(&crate::store::redact_url(url), store, &name, known));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_names_the_option_meant_and_lists_the_known_ones() {
        let err = refuse_unknown("redis://h?layot=hash", "Redis", &["layout", "buckets"]).unwrap_err().to_string();
        assert!(err.contains("unknown option \"layot\" (did you mean \"layout\"?)"), "{err}");
        assert!(err.contains("layout, buckets, failure_policy, merge"), "{err}");
        let err = refuse_unknown("sqlite:///x?zzzzzzzz=1", "SQLite", &["mode"]).unwrap_err().to_string();
        assert!(!err.contains("did you mean"), "{err}");
    }

    #[test]
    fn known_options_and_wrapper_options_pass_and_passwords_stay_out() {
        assert!(refuse_unknown("redis://h?layout=hash&merge=false#insecure", "Redis", &["layout"]).is_ok());
        assert!(refuse_unknown("redis://h", "Redis", &[]).is_ok());
        assert!(refuse_unknown("postgres://h/db?options[search_path]=app", "PostgreSQL", &["options["]).is_ok());
        assert!(refuse_unknown("postgres://h/db?optionsx=1", "PostgreSQL", &["options["]).is_err());
        let err = refuse_unknown("redis://:hunter2@h?pasword=x", "Redis", &["layout"]).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
