//! c. Graph cost: Graph requests per connected member and hour in steady state, counted at
//! msemu. Time is accelerated by shortening everything Microsoft's clock decides — subscription
//! life, access-token life, the reauthorization lead — by one factor; kehai's schedule is the
//! production one, which derives its leads, sweeps and claims from the subscription life. The
//! reconciliation's timer (`reconcile_seconds`, five minutes by default) is its own and not
//! shrunk with the rest: its share at the default (one batch read per 650 members each time) is
//! added from its schedule.

use std::time::Duration;

use crate::{
    Sizes,
    report::{Report, Row},
    rig::{Plan, Rig},
};

/// Production: 59-minute subscriptions, one-hour tokens, reauthorization asked five minutes
/// ahead.
const LIFE_S: f64 = 3540.0;
const TOKEN_S: f64 = 3599.0;
const REAUTHORIZATION_S: f64 = 300.0;
/// Members read per batch by a reconciliation.
const PRESENCE_BATCH: f64 = 650.0;

pub async fn run(sizes: &Sizes, report: &mut Report) -> anyhow::Result<()> {
    let life_s = sizes.simulated_life.as_secs_f64();
    let speed = LIFE_S / life_s;
    let mut plan = Plan::new(sizes.cost_members);
    plan.subscription_seconds = sizes.simulated_life.as_secs();
    plan.token_lifetime = Duration::from_secs_f64(TOKEN_S / speed);
    let rig =
        Rig::start_with(&plan, |emu| emu.reauthorization_lead = Duration::from_secs_f64(REAUTHORIZATION_S / speed))
            .await?;
    // Steady state: every subscription renewed once since the connections were made.
    tokio::time::sleep(sizes.simulated_life).await;
    let before = rig.graph_requests();
    let window = sizes.simulated_life * sizes.cost_lives;
    tokio::time::sleep(window).await;
    let requests = (rig.graph_requests() - before) as f64;
    let members = rig.members.len() as f64;
    let simulated_hours = window.as_secs_f64() * speed / 3600.0;
    let measured = requests / members / simulated_hours;
    let reconciles_per_hour = 3600.0 / kehai_server::Config::default().reconcile_seconds() as f64;
    let reconcile = reconciles_per_hour * (members / PRESENCE_BATCH).ceil() / members;
    report.push(Row::value("c. Graph cost", "requests per member-hour (renewals etc.)", measured, None));
    report.push(Row::value("c. Graph cost", "+ reconciliation share", reconcile, None));
    report.push(Row::value("c. Graph cost", "requests per member-hour", measured + reconcile, Some(1.5)));
    report.note(format!(
        "c. {members} members, time ×{speed:.0} ({life_s:.0} s subscriptions), {requests} Graph requests in {:.1} simulated hours",
        simulated_hours
    ));
    rig.stop().await
}
