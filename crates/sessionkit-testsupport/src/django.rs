//! A real Django process answering the interop commands of `crates/sessionkit/tests/django/matrix.py`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::Value;

/// The path of the matrix driver script (see its docstring for the commands).
pub fn matrix_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sessionkit/tests/django/matrix.py")
}

/// One Django process, configured for one store by a JSON config, serving one command per call.
pub struct DjangoProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl DjangoProcess {
    /// Starts `python matrix.py CONFIG`.
    ///
    /// # Panics
    /// When Python cannot be started.
    pub fn start(python: &Path, config: &Value) -> DjangoProcess {
        let mut child = Command::new(python)
            .arg(matrix_script())
            .arg(config.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", python.display()));
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            panic!("python started without piped stdin/stdout");
        };
        let stdout = BufReader::new(stdout);
        DjangoProcess { child, stdin, stdout }
    }

    /// Sends one command and returns the reply, or the error Django reported (with its traceback).
    ///
    /// Blocks the thread; inside a multi-threaded Tokio runtime it runs under `block_in_place`.
    pub fn call(&mut self, command: Value) -> Result<Value, String> {
        let mut run = || {
            writeln!(self.stdin, "{command}").map_err(|e| format!("write to Django: {e}"))?;
            let mut line = String::new();
            self.stdout.read_line(&mut line).map_err(|e| format!("read from Django: {e}"))?;
            if line.is_empty() {
                return Err("Django exited".to_owned());
            }
            let reply: Value = serde_json::from_str(&line).map_err(|e| format!("Django printed {line:?}: {e}"))?;
            match reply.get("error") {
                Some(error) => Err(format!(
                    "Django: {} {}",
                    error.as_str().unwrap_or_default(),
                    reply["traceback"].as_str().unwrap_or_default()
                )),
                None => Ok(reply),
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(run)
            }
            _ => run(),
        }
    }
}

impl Drop for DjangoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
