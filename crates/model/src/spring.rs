//! Typed Spring Cloud Gateway predicates and filters.
use crate::route::RouteDefinition;
use crate::validate::ValidationError;

/// Checks one route's predicates and filters, pushing every problem with its path.
pub fn validate_route(_route: &RouteDefinition, _path: &str, _errs: &mut Vec<ValidationError>) {}
