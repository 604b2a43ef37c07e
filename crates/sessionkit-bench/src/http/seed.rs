//! Creating the sessions wrk replays: one first visit per session (`GET /?user=N`, no cookie), its `Set-Cookie`
//! kept as the `Cookie` header to send later.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rand::distributions::{Alphanumeric, DistString};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::workload::FIRST_USER_ID;
use crate::BenchError;

/// Whose sessions the first visits create (what the per-user index holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserMix {
    /// Every session its own user.
    OnePerSession,
    /// Most users with 1–3 sessions, a few with hundreds: see [`user_ids`].
    Realistic,
}

/// Sessions of each heavy user in the realistic mix.
const HEAVY_USER_SESSIONS: usize = 300;

/// The `_auth_user_id` of each session to create.
///
/// [`UserMix::Realistic`]: 15 % of the sessions belong to heavy users with [`HEAVY_USER_SESSIONS`] sessions each
/// (5 users for 10 000 sessions: shared accounts, API clients, people who never log out), the rest to users with
/// 1, 2 or 3 sessions (taken in turn). Users are interleaved, so consecutive sessions rarely share a user.
pub fn user_ids(mix: UserMix, sessions: usize) -> Vec<u64> {
    match mix {
        UserMix::OnePerSession => (0..sessions as u64).map(|i| FIRST_USER_ID + i).collect(),
        UserMix::Realistic => {
            let heavy_users = sessions * 15 / 100 / HEAVY_USER_SESSIONS;
            let mut ids = Vec::with_capacity(sessions);
            for user in 0..heavy_users as u64 {
                ids.extend(std::iter::repeat_n(FIRST_USER_ID + user, HEAVY_USER_SESSIONS));
            }
            let mut user = FIRST_USER_ID + heavy_users as u64;
            let mut size = 1;
            while ids.len() < sessions {
                let take = size.min(sessions - ids.len());
                ids.extend(std::iter::repeat_n(user, take));
                user += 1;
                size = size % 3 + 1;
            }
            // A fixed interleaving: a stride near n / golden ratio, coprime with n, visits every index once and
            // spreads neighbours apart (deterministic, unlike a shuffle).
            let n = ids.len();
            let stride = (n * 618 / 1000..).find(|s| gcd(*s, n.max(1)) == 1).unwrap_or(1);
            (0..n).map(|i| ids[(i * stride) % n.max(1)]).collect()
        }
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The `name=value` of the first `Set-Cookie` in an HTTP response head, if any.
pub fn set_cookie_pair(response_head: &str) -> Option<&str> {
    response_head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if !name.trim().eq_ignore_ascii_case("set-cookie") {
            return None;
        }
        let pair = value.trim().split(';').next()?.trim();
        pair.contains('=').then_some(pair)
    })
}

/// One first visit per entry of `users`, from `concurrency` tasks; returns each visit's `Cookie` header value.
/// An app that sets no cookie (the ceiling) gets a made-up `sessionid` of the usual length, so its requests carry
/// the same header.
pub async fn first_visits(port: u16, users: &[u64], concurrency: usize) -> Result<Vec<String>, BenchError> {
    let users: Arc<Vec<u64>> = Arc::new(users.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (users, next) = (Arc::clone(&users), Arc::clone(&next));
        tasks.spawn(async move {
            let mut cookies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(user) = users.get(i) else { return Ok::<_, BenchError>(cookies) };
                cookies.push(first_visit(port, *user).await?);
            }
        });
    }
    let mut cookies = Vec::with_capacity(users.len());
    while let Some(joined) = tasks.join_next().await {
        cookies.extend(joined.map_err(|e| BenchError(format!("a first-visit task failed: {e}")))??);
    }
    Ok(cookies)
}

async fn first_visit(port: u16, user: u64) -> Result<String, BenchError> {
    let failed = |e: std::io::Error| BenchError(format!("first visit to 127.0.0.1:{port} failed: {e}"));
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.map_err(failed)?;
    let request = format!("GET /?user={user} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(failed)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.map_err(failed)?;
    let text = String::from_utf8_lossy(&response);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    if !head.starts_with("HTTP/1.1 200") {
        return Err(BenchError(format!("first visit answered {:?}", head.lines().next().unwrap_or(""))));
    }
    Ok(match set_cookie_pair(head) {
        Some(pair) => pair.to_owned(),
        None => format!("sessionid={}", Alphanumeric.sample_string(&mut rand::thread_rng(), 32).to_lowercase()),
    })
}

/// Writes the cookies, one a line.
pub fn write_cookie_file(path: &Path, cookies: &[String]) -> Result<(), BenchError> {
    let mut text = cookies.join("\n");
    text.push('\n');
    std::fs::write(path, text).map_err(|e| BenchError(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn the_realistic_mix_has_a_few_heavy_users_and_many_with_one_to_three_sessions() {
        let ids = user_ids(UserMix::Realistic, 10_000);
        assert_eq!(ids.len(), 10_000);
        let mut per_user: HashMap<u64, usize> = HashMap::new();
        for id in &ids {
            *per_user.entry(*id).or_default() += 1;
        }
        let heavy = per_user.values().filter(|n| **n == HEAVY_USER_SESSIONS).count();
        assert_eq!(heavy, 5);
        assert!(per_user.values().all(|n| *n == HEAVY_USER_SESSIONS || (1..=3).contains(n)));
        assert!(per_user.len() > 4000, "{}", per_user.len());
        // Interleaved: the first sessions are not all one heavy user's.
        assert!(ids[..10].iter().collect::<std::collections::HashSet<_>>().len() > 5, "{:?}", &ids[..10]);
        assert_eq!(user_ids(UserMix::Realistic, 10_000), ids, "deterministic");
        assert_eq!(user_ids(UserMix::OnePerSession, 3), [FIRST_USER_ID, FIRST_USER_ID + 1, FIRST_USER_ID + 2]);
        assert_eq!(user_ids(UserMix::Realistic, 0), Vec::<u64>::new());
    }

    #[test]
    fn the_session_cookie_is_the_first_set_cookie_without_attributes() {
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nset-cookie: sessionid=abc123; expires=Wed, 16 Dec 2026 \
                    01:00:00 GMT; HttpOnly; Max-Age=1209600; Path=/; SameSite=Lax\r\nSet-Cookie: other=1\r\n";
        assert_eq!(set_cookie_pair(head), Some("sessionid=abc123"));
        assert_eq!(set_cookie_pair("HTTP/1.1 200 OK\r\ncontent-length: 3\r\n"), None);
    }
}
