//! hello-lambda: the smallest `lambda_runtime` function, built with the workspace's release
//! profile. The cold-start bench (`scripts/bench/cold_start.py`) runs it next to every function
//! as the baseline: its init is what the runtime and the process cost before any of our code.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn hello(event: LambdaEvent<Value>) -> Result<Value, Error> {
    // Answers something that depends on the event, so the invoke really parses it.
    let keys = event.payload.as_object().map_or(0, |o| o.len());
    Ok(json!({ "statusCode": 200, "body": format!("hello ({keys} keys)") }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(hello)).await
}
