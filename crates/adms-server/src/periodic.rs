//! The tick of every periodic background loop, stoppable: the loops run under the one
//! cancellation token of [`crate::app`]'s background work.

use tokio_util::sync::CancellationToken;

/// Ticks until `stop` is cancelled; `false` once it is. A tick already due when the token is
/// cancelled does not start another pass.
pub async fn next_tick(tick: &mut tokio::time::Interval, stop: &CancellationToken) -> bool {
    tokio::select! {
        biased;
        () = stop.cancelled() => false,
        _ = tick.tick() => true,
    }
}
