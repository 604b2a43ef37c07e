//! `INFO commandstats` and `INFO cpu`: how much server time the requests cost.

use std::collections::BTreeMap;

/// One command's line of `INFO commandstats`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CommandStat {
    /// `calls=`.
    pub calls: u64,
    /// `usec=`: time spent executing it (a script's time includes the commands it calls).
    pub usec: u64,
}

impl CommandStat {
    /// µs per call.
    pub fn usec_per_call(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.usec as f64 / self.calls as f64
        }
    }
}

/// Reads `INFO commandstats` (`cmdstat_get:calls=3,usec=12,usec_per_call=4.00,...`), by lower-case command name
/// (`get`, `evalsha`, `client|setinfo`).
pub fn parse_commandstats(info: &str) -> BTreeMap<String, CommandStat> {
    let mut stats = BTreeMap::new();
    for line in info.lines() {
        let Some((name, fields)) = line.trim().strip_prefix("cmdstat_").and_then(|rest| rest.split_once(':')) else {
            continue;
        };
        let mut stat = CommandStat::default();
        for field in fields.split(',') {
            match field.split_once('=') {
                Some(("calls", value)) => stat.calls = value.parse().unwrap_or(0),
                Some(("usec", value)) => stat.usec = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        stats.insert(name.to_ascii_lowercase(), stat);
    }
    stats
}

/// `used_cpu_user + used_cpu_sys` of an `INFO cpu` reply, in seconds.
pub fn parse_cpu_seconds(info: &str) -> f64 {
    info.lines()
        .filter_map(|line| line.trim().split_once(':'))
        .filter(|(name, _)| *name == "used_cpu_user" || *name == "used_cpu_sys")
        .filter_map(|(_, value)| value.parse::<f64>().ok())
        .sum()
}

/// Commands that run a script: their time includes every command the script calls.
const SCRIPT_COMMANDS: &[&str] = &["eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"];

/// Commands the benchmark itself (or a client library on connect) sends, not the requests.
const HOUSEKEEPING: &[&str] = &["info", "config", "ping", "client", "hello", "command", "select", "script", "auth"];

/// Reads of the session (a load). Every update script also reads the session once first (`GET` or `HGET`).
const SESSION_READS: &[&str] = &["get", "hget"];

/// Server execution time of the commands the clients sent, in µs, counting a script's inner commands once.
///
/// commandstats counts a script's inner commands on their own lines as well as inside the script's time, and
/// does not say which calls came from a script. The rule: when scripts ran, every script call read the session
/// once (`GET`/`HGET`: all of sessionkit's update scripts start that way), so that many `GET`/`HGET` calls are
/// left out (at their mean cost); every other command except `PTTL` (the `django-cache` load's second command)
/// was a script's inner command. Without scripts every command counts.
pub fn client_usec(stats: &BTreeMap<String, CommandStat>) -> f64 {
    let script_calls: u64 =
        stats.iter().filter(|(name, _)| SCRIPT_COMMANDS.contains(&name.as_str())).map(|(_, s)| s.calls).sum();
    let mut usec = 0.0;
    for (name, stat) in stats {
        let name = name.as_str();
        if HOUSEKEEPING.contains(&name.split('|').next().unwrap_or(name)) {
            continue;
        }
        usec += if script_calls == 0 || SCRIPT_COMMANDS.contains(&name) || name == "pttl" {
            stat.usec as f64
        } else if SESSION_READS.contains(&name) {
            stat.usec_per_call() * stat.calls.saturating_sub(script_calls) as f64
        } else {
            0.0
        };
    }
    usec
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPTED: &str = "# Commandstats\r\n\
        cmdstat_get:calls=200,usec=400,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_set:calls=100,usec=300,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_evalsha:calls=100,usec=1000,usec_per_call=10.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_config|resetstat:calls=1,usec=50,usec_per_call=50.00,rejected_calls=0,failed_calls=0\r\n";

    #[test]
    fn commandstats_lines_are_read_by_command() {
        let stats = parse_commandstats(SCRIPTED);
        assert_eq!(stats.len(), 4);
        assert_eq!(stats["get"], CommandStat { calls: 200, usec: 400 });
        assert_eq!(stats["evalsha"].usec_per_call(), 10.0);
        assert!(stats.contains_key("config|resetstat"));
    }

    #[test]
    fn a_script_s_inner_commands_count_once() {
        // 100 loads (GET, 2 µs) + 100 scripts (10 µs, including their GET and SET): 1 200 µs.
        assert_eq!(client_usec(&parse_commandstats(SCRIPTED)), 1200.0);
        // No scripts: GET + SET, housekeeping left out.
        let plain =
            "cmdstat_get:calls=100,usec=150\r\ncmdstat_set:calls=100,usec=250\r\ncmdstat_info:calls=3,usec=90\r\n";
        assert_eq!(client_usec(&parse_commandstats(plain)), 400.0);
    }

    #[test]
    fn cpu_seconds_add_user_and_system_time() {
        let info = "# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\nused_cpu_sys_children:9.0\r\n";
        assert_eq!(parse_cpu_seconds(info), 3.75);
    }
}
