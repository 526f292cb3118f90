//! Secrets from standard input or a terminal prompt without echo.

use std::io::{IsTerminal, Read, Write};

use anyhow::{anyhow, Context};

use super::args::PasswordArgs;

impl PasswordArgs {
    pub fn read(&self) -> anyhow::Result<Option<String>> {
        if self.password_stdin {
            return read_secret_stdin("Password").map(Some);
        }
        Ok(self.password.clone())
    }
}

/// A secret from standard input: the first line when it is piped; typed
/// twice at a prompt without echo when it is a terminal.
pub fn read_secret_stdin(what: &str) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        return read_stdin_line();
    }
    let first = zeroize::Zeroizing::new(prompt_no_echo(&format!("{what}: "))?);
    if first.is_empty() {
        return Err(anyhow!("no {} given; nothing changed", what.to_lowercase()));
    }
    let again = zeroize::Zeroizing::new(prompt_no_echo(&format!("{what} (again): "))?);
    if *first != *again {
        return Err(anyhow!(
            "the two {} entries differ; nothing changed",
            what.to_lowercase()
        ));
    }
    Ok(first.to_string())
}

/// Reads one line from the terminal on standard input with echo off (the
/// newline still echoes), restoring the terminal afterwards.
pub fn prompt_no_echo(prompt: &str) -> anyhow::Result<String> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions, Termios};
    struct Restore(Termios);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &self.0);
        }
    }
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("cannot read the terminal settings")?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    // Echo off before the prompt shows: what is typed (or pasted) at once
    // must not appear.
    tcsetattr(&stdin, OptionalActions::Now, &quiet).context("cannot turn off echo")?;
    let restore = Restore(saved);
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    stdin
        .read_line(&mut line)
        .context("cannot read standard input")?;
    drop(restore);
    let trimmed = line.trim_end_matches(['\r', '\n']).to_string();
    zeroize::Zeroize::zeroize(&mut line);
    Ok(trimmed)
}

pub fn read_stdin_line() -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("cannot read standard input")?;
    let line = s.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        return Err(anyhow!("standard input was empty"));
    }
    Ok(line)
}
