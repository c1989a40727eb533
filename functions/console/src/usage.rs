//! The usage page: this month's messages against the plan's quota, with a chart of messages
//! per day drawn here as SVG (no script, no third party). The numbers are the admin API's
//! `/usage` report; the days are the per-day counters on the same month item.

use askama::Template;
use lambda_http::http::StatusCode;
use wappline::usage::{DayCount, UsageMonth};

use crate::web::{when, Chrome, Ctx, Fail, Reply};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 240;
const LEFT: u32 = 48;
const BOTTOM: u32 = 28;
const TOP: u32 = 12;

/// One day's two bars, in SVG units.
struct Bars {
    day: u32,
    x_in: u32,
    x_out: u32,
    width: u32,
    y_in: u32,
    h_in: u32,
    y_out: u32,
    h_out: u32,
    /// The day's number is written under every fifth day.
    label: bool,
    label_x: u32,
    inbound: u64,
    outbound: u64,
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    c: Chrome,
    month: String,
    inbound: u64,
    outbound: u64,
    quota: Option<u64>,
    resets: String,
    bars: Vec<Bars>,
    /// The y of the quota spread evenly over the month's days, when there is a quota.
    pace_y: Option<u32>,
    pace: u64,
    scale_max: u64,
    width: u32,
    height: u32,
    left: u32,
    base_y: u32,
    top: u32,
}

fn chart(days: &[DayCount], pace: Option<u64>) -> (Vec<Bars>, Option<u32>, u64) {
    let top = days
        .iter()
        .map(|d| d.inbound.max(d.outbound))
        .chain(pace)
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_h = HEIGHT - BOTTOM - TOP;
    let base = HEIGHT - BOTTOM;
    let slot = (WIDTH - LEFT) / u32::try_from(days.len().max(1)).unwrap_or(31);
    let bar = (slot.saturating_sub(2) / 2).max(1);
    let scale = |v: u64| -> u32 {
        u32::try_from(v.saturating_mul(u64::from(plot_h)) / top).unwrap_or(plot_h)
    };
    let bars = days
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let x = LEFT + slot * u32::try_from(i).unwrap_or(0) + 1;
            let (h_in, h_out) = (scale(d.inbound), scale(d.outbound));
            Bars {
                day: d.day,
                x_in: x,
                x_out: x + bar,
                width: bar,
                y_in: base - h_in,
                h_in,
                y_out: base - h_out,
                h_out,
                label: d.day == 1 || d.day % 5 == 0,
                label_x: x + bar,
                inbound: d.inbound,
                outbound: d.outbound,
            }
        })
        .collect();
    (bars, pace.map(|p| base - scale(p)), top)
}

pub(crate) async fn usage(ctx: &Ctx<'_>) -> Result<Reply, Fail> {
    let month = UsageMonth::current(wappline::clock::now_secs());
    let usage = &ctx.s.usage;
    let report = usage
        .report(&ctx.user.tenant, month)
        .await
        .map_err(|e| Fail::log("usage report", e))?;
    let days = usage
        .daily(&ctx.user.tenant, month)
        .await
        .map_err(|e| Fail::log("daily usage", e))?;
    let quota = report.plan.monthly_outbound;
    let pace = quota.map(|q| q.div_ceil(days.len().max(1) as u64));
    let (bars, pace_y, scale_max) = chart(&days, pace);
    let page = UsagePage {
        c: ctx.chrome("/app/usage"),
        month: month.to_string(),
        inbound: report.inbound.total,
        outbound: report.outbound.total,
        quota,
        resets: when(report.resets_at_unix),
        bars,
        pace_y,
        pace: pace.unwrap_or(0),
        scale_max,
        width: WIDTH,
        height: HEIGHT,
        left: LEFT,
        base_y: HEIGHT - BOTTOM,
        top: TOP,
    };
    Reply::html(StatusCode::OK, &page)
}
