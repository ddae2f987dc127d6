//! `redis.conf` files and `--directive value` options, read the way `redis-server` reads them.
//!
//! The command-line options are turned into configuration lines appended after the file (so
//! they win), each value quoted; the whole text is then read line by line. A bad line stops
//! start-up with Redis's report: the line number, the line, and the reason.

use super::directives::{self, os_reason};
use super::Config;
use crate::resp::split_args;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why the configuration could not be loaded, printed as Redis prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The line number and text, when a line is at fault.
    pub line: Option<(usize, String)>,
    /// What is wrong, in Redis's words.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f)?;
        writeln!(
            f,
            "*** FATAL CONFIG FILE ERROR (Redis {}) ***",
            crate::REDIS_VERSION
        )?;
        if let Some((number, text)) = &self.line {
            writeln!(f, "Reading the configuration file, at line {number}")?;
            writeln!(f, ">>> '{text}'")?;
        }
        write!(f, "{}", self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Loads `file` (if any), then `stdin` text (if any), then the command-line `options`, over
/// Redis's defaults.
/// Changes the working directory on `dir`, as Redis does (later relative paths, includes and
/// the snapshot file are resolved against it).
pub fn load(
    file: Option<&Path>,
    stdin: Option<&str>,
    options: &[String],
) -> Result<Config, ConfigError> {
    let mut text = match file {
        Some(path) => read(path).map_err(|reason| ConfigError { line: None, reason })?,
        None => String::new(),
    };
    text.push_str(stdin.unwrap_or_default());
    // `--sentinel` is a mode, not a directive: the node monitors and keeps no data.
    let sentinel = options.iter().any(|o| o == "--sentinel");
    let options: Vec<String> = options
        .iter()
        .filter(|o| *o != "--sentinel")
        .cloned()
        .collect();
    if !options.is_empty() {
        text.push('\n');
        text.push_str(&options_text(&options));
    }
    let mut config = Config::server_defaults();
    if sentinel {
        config.sentinel = Some(Vec::new());
        config.port = 26379;
        config.persistence = false;
    }
    config.config_file = file.map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()));
    Loader {
        config: &mut config,
        save_seen: false,
        chdir: true,
    }
    .load_text(&text)?;
    check_loaded(&config)?;
    Ok(config)
}

/// Applies configuration text (no file, no side effects on the process): what CONFIG SET
/// and tests use to build a configuration from lines.
pub fn apply_text(config: &mut Config, text: &str) -> Result<(), ConfigError> {
    Loader {
        config,
        save_seen: false,
        chdir: false,
    }
    .load_text(text)
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .map_err(|e| {
            format!(
                "Fatal error, can't open config file '{}': {}",
                path.display(),
                os_reason(&e)
            )
        })
}

/// Redis's quoting of a value (`sdscatrepr`): in double quotes, with `\\`, `\"`, `\n`,
/// `\r`, `\t`, `\a`, `\b` escaped and other unprintable bytes as `\xhh`.
pub fn quote(value: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in value {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

/// `--name value ...` options as configuration lines: a `--` word starts a directive (when
/// the previous one has a value), the words after it are its quoted values; a bare `--save`
/// with nothing after it means `save ""`.
pub fn options_text(args: &[String]) -> String {
    let mut text = String::new();
    let mut expecting_value = false;
    for (i, arg) in args.iter().enumerate() {
        let is_name = !expecting_value && arg.starts_with("--");
        if is_name {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&arg[2..]);
            text.push(' ');
            // A bare name waits for its value; "--port 6380" as one word carries it.
            expecting_value = split_args(arg.as_bytes()).is_some_and(|words| words.len() == 1);
            let next_is_option = args.get(i + 1).is_none_or(|n| n.starts_with("--"));
            if expecting_value && arg.eq_ignore_ascii_case("--save") && next_is_option {
                text.push_str("\"\"");
                expecting_value = false;
            }
        } else {
            text.push_str(&quote(arg.as_bytes()));
            text.push(' ');
            expecting_value = false;
        }
    }
    text
}

struct Loader<'a> {
    config: &'a mut Config,
    /// The first `save` line replaces the default points; later ones add to them.
    save_seen: bool,
    /// Whether `dir` changes the process's working directory (start-up of `shoal-server`).
    chdir: bool,
}

impl Loader<'_> {
    fn load_text(&mut self, text: &str) -> Result<(), ConfigError> {
        for (index, raw) in text.split('\n').enumerate() {
            let line = raw.trim_matches([' ', '\t', '\r', '\n']);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            self.load_line(line).map_err(|reason| ConfigError {
                line: Some((index + 1, line.to_string())),
                reason,
            })?;
        }
        Ok(())
    }

    fn load_line(&mut self, line: &str) -> Result<(), String> {
        let words = split_args(line.as_bytes())
            .ok_or_else(|| "Unbalanced quotes in configuration line".to_string())?;
        let Some((name, args)) = words.split_first() else {
            return Ok(());
        };
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        if let Some((spec, _)) = directives::lookup(name.as_bytes()) {
            let multi = directives::is_multi_arg(spec);
            if !multi && args.len() != 1 {
                return Err("wrong number of arguments".into());
            }
            // A multi-argument directive may come as one quoted string: `save "900 1"`.
            let resplit;
            let args: Vec<&[u8]> = match args.as_slice() {
                [one] if multi && !one.is_empty() => {
                    resplit = split_args(one).ok_or("Unbalanced quotes in configuration line")?;
                    resplit.iter().map(Vec::as_slice).collect()
                }
                _ => args,
            };
            return self.apply(spec, &args);
        }
        match (name.as_str(), args.len()) {
            (
                "list-max-ziplist-entries" | "list-max-ziplist-value" | "lua-replicate-commands",
                1,
            ) => Ok(()),
            ("include", 1) => self.include(&String::from_utf8_lossy(args[0])),
            ("rename-command", 2) => {
                let old = String::from_utf8_lossy(args[0]).to_ascii_lowercase();
                let new = String::from_utf8_lossy(args[1]).to_ascii_lowercase();
                self.config.renamed_commands.push((old, new));
                crate::cmd::CommandTable::with_renames(&self.config.renamed_commands).map(drop)
            }
            ("user", n) if n >= 1 => Err("ACL users are not supported".into()),
            ("loadmodule", n) if n >= 1 => Err("modules are not supported".into()),
            (name, 0) if name.contains('.') => Err("Module config specified without value".into()),
            (name, _) if name.contains('.') => Err("modules are not supported".into()),
            ("sentinel", 0) => Ok(()),
            ("sentinel", _) => match self.config.sentinel.as_mut() {
                Some(directives) => {
                    let words = args.iter().map(|a| String::from_utf8_lossy(a).into_owned());
                    directives.push(words.collect());
                    Ok(())
                }
                None => Err("sentinel directive while not in sentinel mode".into()),
            },
            _ => Err("Bad directive or wrong number of arguments".into()),
        }
    }

    fn apply(&mut self, spec: &'static super::catalog::Spec, args: &[&[u8]]) -> Result<(), String> {
        match spec.name {
            "save" => {
                let points = directives::parse_save(args)?;
                let clear = matches!(args, [only] if only.is_empty());
                if !self.save_seen || clear {
                    self.config.save.clear();
                }
                self.save_seen = true;
                self.config.save.extend(points);
                Ok(())
            }
            "dir" => {
                directives::set(self.config, spec, args)?;
                if self.chdir {
                    std::env::set_current_dir(&self.config.dir).map_err(|e| os_reason(&e))?;
                }
                Ok(())
            }
            _ => directives::set(self.config, spec, args),
        }
    }

    /// `include path`: a path with `*`, `?` or `[` is a pattern over one directory (matching
    /// nothing is fine); a plain path must be readable. Relative paths are relative to the
    /// working directory, as in Redis.
    fn include(&mut self, path: &str) -> Result<(), String> {
        let text = if path.contains(['*', '?', '[']) {
            let pattern = PathBuf::from(path);
            let dir = pattern
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            let file_pattern = pattern
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok())
                        .map(|e| e.path())
                        .filter(|p| {
                            p.file_name().is_some_and(|n| {
                                crate::glob::matches(
                                    file_pattern.as_bytes(),
                                    n.to_string_lossy().as_bytes(),
                                    false,
                                )
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            let mut text = String::new();
            for file in files {
                text.push_str(&read(&file)?);
            }
            text
        } else {
            read(Path::new(path))?
        };
        self.load_text(&text).map_err(|e| match e.line {
            Some((n, line)) => format!("{} (in included text, line {n}: '{line}')", e.reason),
            None => e.reason,
        })
    }
}

/// The line CONFIG REWRITE writes for a directive: its name and current value (several words
/// for a multi-argument directive, otherwise one, quoted unless it is a plain word).
fn directive_line(spec: &directives::Spec, config: &Config) -> String {
    let value = directives::get(config, spec);
    let plain = |v: &str| {
        !v.is_empty()
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-/:+".contains(&b))
    };
    if value.is_empty() {
        format!("{} \"\"", spec.name)
    } else if directives::is_multi_arg(spec) || plain(&value) {
        format!("{} {value}", spec.name)
    } else {
        format!("{} {}", spec.name, quote(value.as_bytes()))
    }
}

const REWRITE_SIGNATURE: &str = "# Generated by CONFIG REWRITE";

/// CONFIG REWRITE: the file's lines are kept in order, with each directive's first line
/// replaced by its current value and its later lines dropped; directives that differ from
/// their default and have no line yet are appended. The new file replaces the old one
/// atomically (written beside it, synced, renamed).
pub fn rewrite(path: &Path, config: &Config) -> std::io::Result<()> {
    let old = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut written = std::collections::HashSet::new();
    let mut lines: Vec<String> = Vec::new();
    for line in old.lines() {
        let words = split_args(line.trim().as_bytes()).unwrap_or_default();
        let spec = words.first().and_then(|name| directives::lookup(name));
        match spec {
            None => lines.push(line.to_string()),
            Some((spec, _)) if written.insert(spec.name) => {
                lines.push(directive_line(spec, config))
            }
            Some(_) => {}
        }
    }
    let defaults = Config::server_defaults();
    let appended: Vec<String> = directives::names()
        .filter(|(name, spec)| *name == spec.name && !written.contains(spec.name))
        .filter(|(_, spec)| directives::get(config, spec) != directives::get(&defaults, spec))
        .map(|(_, spec)| directive_line(spec, config))
        .collect();
    if !appended.is_empty() && !lines.iter().any(|l| l.trim() == REWRITE_SIGNATURE) {
        lines.push(REWRITE_SIGNATURE.to_string());
    }
    lines.extend(appended);
    let mut text = lines.join("\n");
    text.push('\n');
    let temp = path.with_extension(format!("rewrite-{}", std::process::id()));
    let result = (|| {
        use std::io::Write;
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// The checks Redis makes once everything is read.
fn check_loaded(config: &Config) -> Result<(), ConfigError> {
    let fail = |reason: String| Err(ConfigError { line: None, reason });
    if !config.logfile.is_empty() {
        if let Err(e) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.logfile)
        {
            return fail(format!("Can't open the log file: {}", os_reason(&e)));
        }
    }
    if config.cluster_enabled && config.other.get("replicaof").is_some_and(|r| !r.is_empty()) {
        return fail("replicaof directive not allowed in cluster mode".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(args: &[&str]) -> String {
        options_text(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn command_line_as_redis_writes_it() {
        assert_eq!(options(&["--port", "6380"]), "port \"6380\" ");
        assert_eq!(
            options(&["--bind", "127.0.0.1", "::1", "--save", "--appendonly", "no"]),
            "bind \"127.0.0.1\" \"::1\" \nsave \"\"\nappendonly \"no\" "
        );
        assert_eq!(options(&["--save", ""]), "save \"\" ");
        assert_eq!(options(&["--save"]), "save \"\"");
        assert_eq!(
            options(&["--port", "--loglevel", "verbose"]),
            "port \"--loglevel\" \"verbose\" "
        );
    }

    #[test]
    fn lines_and_errors() {
        let mut c = Config::server_defaults();
        apply_text(
            &mut c,
            "# comment\n\nPORT 7000\r\nsave 900 1\nsave 300 10\n",
        )
        .unwrap();
        assert_eq!(c.port, 7000);
        assert_eq!(c.save, vec![(900, 1), (300, 10)]);
        let e = apply_text(&mut c, "port 1\nport 6379 # comment\n").unwrap_err();
        assert_eq!(e.line, Some((2, "port 6379 # comment".to_string())));
        assert_eq!(e.reason, "wrong number of arguments");
        assert_eq!(
            e.to_string(),
            "\n*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\nReading the configuration file, at line 2\n>>> 'port 6379 # comment'\nwrong number of arguments"
        );
        let e = apply_text(&mut c, "nosuch 1").unwrap_err();
        assert_eq!(e.reason, "Bad directive or wrong number of arguments");
        let e = apply_text(&mut c, "port 7000\"x").unwrap_err();
        assert_eq!(e.reason, "Unbalanced quotes in configuration line");
        apply_text(
            &mut c,
            "bind \"127.0.0.1 ::1\"\nclient-output-buffer-limit pubsub 1mb 0 0",
        )
        .unwrap();
        assert_eq!(c.bind, vec!["127.0.0.1", "::1"]);
        assert_eq!(c.output_limits.pubsub.hard_bytes, 1024 * 1024);
        apply_text(&mut c, "list-max-ziplist-entries 512\nsentinel").unwrap();
    }

    #[test]
    fn includes_and_save_reset() {
        let dir = std::env::temp_dir().join(format!("shoal-include-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(dir.join("conf.d/a.conf"), "maxclients 77\n").unwrap();
        std::fs::write(dir.join("conf.d/b.conf"), "timeout 9\n").unwrap();
        let main = dir.join("main.conf");
        std::fs::write(
            &main,
            format!(
                "include {}/conf.d/*.conf\ninclude {}/nothing/*.conf\nsave \"\"\n",
                dir.display(),
                dir.display()
            ),
        )
        .unwrap();
        let mut c = Config::server_defaults();
        let text = std::fs::read_to_string(&main).unwrap();
        apply_text(&mut c, &text).unwrap();
        assert_eq!((c.maxclients, c.timeout_secs), (77, 9));
        assert!(c.save.is_empty());
        let e = apply_text(&mut c, "include /nonexistent/shoal.conf").unwrap_err();
        assert!(e.reason.contains("can't open config file"), "{}", e.reason);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
