//! Errors from loading a config file: every problem, each with the file and the path inside it, so
//! an operator can fix a whole file in one round instead of one error per restart.

use std::fmt;

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or directory) as the caller named it.
    pub file: String,
    /// Where in the file, in the file's own terms (`spring.cloud.gateway.routes[0].uri`,
    /// `selectors[2].handle`); empty when the problem is the file as a whole.
    pub path: String,
    pub message: String,
    /// 1-based line and column, when the parser knows them.
    pub location: Option<(usize, usize)>,
}

impl ConfigError {
    pub(crate) fn new(file: impl Into<String>, path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { file: file.into(), path: path.into(), message: message.into(), location: None }
    }

    pub(crate) fn at(mut self, location: Option<(usize, usize)>) -> Self {
        self.location = location;
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.message)?;
        if let Some((line, column)) = self.location {
            write!(f, " at line {line} column {column}")?;
        }
        Ok(())
    }
}

/// Everything wrong with a config source. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub errors: Vec<ConfigError>,
}

impl LoadError {
    pub(crate) fn one(error: ConfigError) -> Self {
        LoadError { errors: vec![error] }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// Collects errors while a file is converted, so conversion can go on past the first problem.
pub(crate) type Errors = Vec<ConfigError>;
