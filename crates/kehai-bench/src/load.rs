//! Load for the benchmarks: notification bodies prepared ahead (msemu encrypts them as Graph
//! does), posted as fast as kehai takes them or at a fixed rate, and the figures made of it.

use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::time::MissedTickBehavior;

use crate::rig::Rig;

/// Statuses the prepared changes cycle through (availability, activity).
const STATUSES: [(&str, &str); 5] = [
    ("Busy", "Busy"),
    ("DoNotDisturb", "Presenting"),
    ("Busy", "InAMeeting"),
    ("Away", "Away"),
    ("BeRightBack", "BeRightBack"),
];

/// One prepared POST: whose presence it changes (an index into the rig's members) and its body.
#[derive(Debug, Clone)]
pub struct Post {
    pub member: usize,
    /// The activity it announces (what the avatar frame will carry).
    pub activity: &'static str,
    pub body: String,
}

/// `rounds` presence changes of every member, one notification per POST, member after member
/// (so that a member's changes are far apart and arrive in order). Rich unless `basic`: then the
/// bodies carry no resource data, as Graph's basic notifications, and kehai reads each presence.
pub fn prepare(rig: &Rig, rounds: usize, basic: bool) -> anyhow::Result<Vec<Post>> {
    let first = rig.members.first().ok_or_else(|| anyhow::anyhow!("no members"))?;
    let token = msemu::notify::validation_token_for(&rig.emu.emulator, first.subscription)?;
    let mut posts = Vec::with_capacity(rounds * rig.members.len());
    for round in 0..rounds {
        for (i, m) in rig.members.iter().enumerate() {
            let status = STATUSES[(round + i) % STATUSES.len()];
            let mut body =
                msemu::notify::prepared_change(&rig.emu.emulator, m.subscription, m.ms_user, status, &token)?;
            if basic {
                if let Some(obj) = body.as_object_mut() {
                    obj.remove("validationTokens");
                }
                if let Some(item) = body["value"][0].as_object_mut() {
                    item.remove("encryptedContent");
                }
            }
            posts.push(Post { member: i, activity: status.1, body: body.to_string() });
        }
    }
    Ok(posts)
}

/// The same notifications `per_post` to a POST, as Graph batches them when many arrive at once
/// (their validation tokens are the same).
pub fn batched(posts: &[Post], per_post: usize) -> Vec<String> {
    posts
        .chunks(per_post.max(1))
        .filter_map(|chunk| {
            let mut bodies = chunk.iter().filter_map(|p| serde_json::from_str::<serde_json::Value>(&p.body).ok());
            let mut first = bodies.next()?;
            let rest: Vec<serde_json::Value> =
                bodies.flat_map(|b| b["value"].as_array().cloned().unwrap_or_default()).collect();
            first["value"].as_array_mut()?.extend(rest);
            Some(first.to_string())
        })
        .collect()
}

/// An HTTP client for load: many connections, no redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// One POST of a notification body.
async fn send(http: &reqwest::Client, url: &str, body: &str) -> reqwest::Result<reqwest::Response> {
    http.post(url).header("content-type", "application/json").body(body.to_owned()).send().await
}

/// POSTs `body` to `url` until it is taken. A full queue answers 503: again after a wait that
/// doubles each time (from 5 ms to a second), as Graph backs off.
async fn post(http: &reqwest::Client, url: &str, body: String) -> anyhow::Result<()> {
    let mut refused = 0;
    let mut wait = Duration::from_millis(5);
    loop {
        let answer = match send(http, url, &body).await {
            Ok(answer) => answer,
            // Out of local ports, or a kept-alive connection closed under us, in an open-loop
            // burst: again, on another connection (the notification was not taken).
            Err(e) if (e.is_connect() || e.is_request()) && refused < 100 => {
                refused += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        match answer.status().as_u16() {
            200..=299 => return Ok(()),
            503 => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
            }
            other => anyhow::bail!("{url} answered {other}"),
        }
    }
}

/// Posts everything `concurrency` at a time; returns how long until every POST was answered.
pub async fn flood(url: &str, posts: Vec<String>, concurrency: usize) -> anyhow::Result<Duration> {
    let http = client();
    let started = Instant::now();
    let results: Vec<anyhow::Result<()>> =
        futures::stream::iter(posts).map(|b| post(&http, url, b)).buffer_unordered(concurrency).collect().await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(started.elapsed())
}

/// Waits until `done()` reaches `target` (at most `within`); returns when it did.
pub async fn until(done: impl Fn() -> u64, target: u64, within: Duration) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + within;
    while done() < target {
        anyhow::ensure!(Instant::now() < deadline, "only {} of {target} done in {within:?}", done());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(Instant::now())
}

/// One paced POST: when it was sent, how long its (first) answer took, and whether that answer
/// took it (a 503 asks to come again, as Graph does; the POST is then repeated until taken).
#[derive(Debug, Clone, Copy)]
pub struct Timed {
    pub sent: Instant,
    pub answer: Duration,
    /// Answered at all (else the connection failed: `answer` is the time to the error).
    pub answered: bool,
    pub taken: bool,
}

/// Posts `posts` at `per_second` (open loop: a late answer does not delay the next POST).
pub async fn paced(url: &str, posts: Vec<String>, per_second: u32) -> anyhow::Result<Vec<Timed>> {
    paced_with(url, posts, per_second, true).await
}

/// [`paced`]; a POST refused with 503 is posted again until taken only with `again` (else it
/// is left, as if Graph would send it later).
pub async fn paced_with(url: &str, posts: Vec<String>, per_second: u32, again: bool) -> anyhow::Result<Vec<Timed>> {
    let http = client();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut sent = Vec::with_capacity(posts.len());
    for body in posts {
        tick.tick().await;
        let (http, url) = (http.clone(), url.to_owned());
        let at = Instant::now();
        sent.push(tokio::spawn(async move {
            let first = send(&http, &url, &body).await;
            let answer = at.elapsed();
            let answered = first.is_ok();
            let taken = first.as_ref().is_ok_and(|a| a.status().is_success());
            if !taken && again {
                post(&http, &url, body).await?;
            }
            anyhow::Ok(Timed { sent: at, answer, answered, taken })
        }));
    }
    let mut timed = Vec::with_capacity(sent.len());
    for answer in sent {
        timed.push(answer.await??);
    }
    Ok(timed)
}

/// The `p`-th percentile (0–100) of `samples`, which it sorts.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

/// CPU time this process has used so far (user and system), from /proc.
pub fn cpu_time() -> Duration {
    cpu_time_of("/proc/self/stat")
}

/// The CPU time of the process whose `/proc/<pid>/stat` is `stat`.
pub fn cpu_time_of(stat: &str) -> Duration {
    let stat = std::fs::read_to_string(stat).unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks: u64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<u64>().ok()).sum();
    // Linux counts in clock ticks of 1/100 s (USER_HZ) on every mainstream architecture.
    Duration::from_millis(ticks * 10)
}
