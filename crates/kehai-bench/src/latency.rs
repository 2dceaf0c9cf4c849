//! b. Latency: from a notification's POST to the avatar frame at a page holding the space's
//! event stream, at 500 notifications/s.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use futures::StreamExt;

use crate::{
    Sizes,
    load::{self, percentile},
    report::{Report, Row},
    rig::{Rig, SPACE},
};

const RATE: u32 = 500;

pub async fn run(rig: &Rig, sizes: &Sizes, report: &mut Report) -> anyhow::Result<()> {
    let page = rig.log_in(0).await?;
    let stream = page
        .get(format!("{}/s/{SPACE}/events", rig.base))
        .header("accept", "text/event-stream")
        .send()
        .await?
        .error_for_status()?;
    // Frames as they arrive: the avatar's name and activity, and when.
    let (frames, mut arrivals) = tokio::sync::mpsc::unbounded_channel::<((String, String), Instant)>();
    tokio::spawn(async move {
        let mut body = stream.bytes_stream();
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            let at = Instant::now();
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                if !frame.lines().any(|l| l == "event: avatar") {
                    continue;
                }
                let data: String = frame.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim).collect();
                let Ok(avatar) = serde_json::from_str::<serde_json::Value>(&data) else { continue };
                let (Some(name), Some(activity)) =
                    (avatar["display_name"].as_str(), avatar["presence"]["activity"].as_str())
                else {
                    continue;
                };
                if frames.send(((name.to_owned(), activity.to_owned()), at)).is_err() {
                    return;
                }
            }
        }
    });
    // The page's own arrival is announced first: not a notification's.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while arrivals.try_recv().is_ok() {}

    let posts = load::prepare(rig, sizes.paced_rounds(RATE, rig.members.len()), false)?;
    let whose: Vec<(String, String)> =
        posts.iter().map(|p| (rig.members[p.member].name.clone(), p.activity.to_owned())).collect();
    let url = format!("{}/webhooks/msgraph", rig.base);
    let (before, stale_before) =
        (rig.notifications_done(), rig.state.metrics.notifications_dropped("msteams", "stale"));
    let timed = load::paced(&url, posts.into_iter().map(|p| p.body).collect(), RATE).await?;
    load::until(|| rig.notifications_done(), before + timed.len() as u64, Duration::from_secs(60)).await?;
    // A frame is matched to the earliest unmatched POST of the same member and activity; a
    // notification overtaken by a newer one of the same member is dropped as stale (no frame).
    let stale = rig.state.metrics.notifications_dropped("msteams", "stale") - stale_before;
    let expected = timed.len() - usize::try_from(stale).unwrap_or(0);
    let mut sent: HashMap<&(String, String), VecDeque<Instant>> = HashMap::new();
    for (key, t) in whose.iter().zip(&timed) {
        sent.entry(key).or_default().push_back(t.sent);
    }
    let mut latencies = Vec::with_capacity(expected);
    let deadline = Instant::now() + Duration::from_secs(10);
    while latencies.len() < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some((key, at))) = tokio::time::timeout(left, arrivals.recv()).await else {
            anyhow::bail!("only {} of {expected} frames arrived", latencies.len());
        };
        if let Some(posted) = sent.get_mut(&key).and_then(VecDeque::pop_front) {
            latencies.push(at - posted);
        }
    }
    report.push(Row::time("b. latency", "POST to frame p50 at 500/s", percentile(&mut latencies, 50.0), None));
    report.push(Row::time("b. latency", "POST to frame p99 at 500/s", percentile(&mut latencies, 99.0), Some(10.0)));
    report.note(format!("b. {} notifications paced, {} frames matched, {stale} stale", timed.len(), latencies.len()));
    Ok(())
}
