//! AWS list prices the cost model multiplies by, in one place, with their date and sources.
//!
//! Date: 2026-12. Region: us-east-1 (N. Virginia), on-demand, no free tier, first pricing
//! tier of each service. These are the published list prices as recorded for this file;
//! re-check them against the pages below before quoting a figure, and change the date when
//! a value changes.
//!
//! - API Gateway HTTP APIs, US$1.00 per million requests (up to 512 KB, first 300 million):
//!   <https://aws.amazon.com/api-gateway/pricing/>
//! - Lambda on Arm (Graviton2), US$0.0000133334 per GB-second and US$0.20 per million
//!   requests: <https://aws.amazon.com/lambda/pricing/>
//! - SQS FIFO queues, US$0.50 per million requests; each 64 KB chunk of a payload is billed
//!   as one request: <https://aws.amazon.com/sqs/pricing/>
//! - DynamoDB on-demand (standard table class), US$0.625 per million write request units and
//!   US$0.125 per million read request units (one read request unit is one strongly
//!   consistent read of up to 4 KB, or two eventually consistent ones; a transactional
//!   write takes two write units per KB): <https://aws.amazon.com/dynamodb/pricing/on-demand/>
//! - DynamoDB provisioned capacity (standard table class), US$0.00065 per write capacity
//!   unit-hour and US$0.00013 per read capacity unit-hour; one unit serves one write of 1 KB
//!   (one strongly consistent read of 4 KB) a second, transactions two:
//!   <https://aws.amazon.com/dynamodb/pricing/provisioned/>
//! - Lambda function URLs: no charge beyond the function's requests and duration:
//!   <https://aws.amazon.com/lambda/pricing/>
//! - KMS, US$0.03 per 10,000 requests (symmetric keys): <https://aws.amazon.com/kms/pricing/>
//! - STS AssumeRole: no charge (<https://docs.aws.amazon.com/STS/latest/APIReference/welcome.html>,
//!   "AWS STS is a global service ... no additional charge").
//! - Secrets Manager, US$0.05 per 10,000 API calls: <https://aws.amazon.com/secrets-manager/pricing/>
//! - S3 Standard, US$0.005 per 1,000 PUT/LIST and US$0.0004 per 1,000 GET/HEAD requests:
//!   <https://aws.amazon.com/s3/pricing/>

/// The date these prices were recorded (year and month).
pub const PRICES_DATE: &str = "2026-12";

pub const API_GATEWAY_HTTP_REQUEST: f64 = 1.00 / 1e6;
pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
pub const LAMBDA_ARM_GB_SECOND: f64 = 0.000_013_333_4;
pub const SQS_FIFO_REQUEST: f64 = 0.50 / 1e6;
pub const DYNAMODB_WRITE_REQUEST_UNIT: f64 = 0.625 / 1e6;
pub const DYNAMODB_READ_REQUEST_UNIT: f64 = 0.125 / 1e6;
pub const DYNAMODB_WCU_HOUR: f64 = 0.000_65;
pub const DYNAMODB_RCU_HOUR: f64 = 0.000_13;
pub const KMS_REQUEST: f64 = 0.03 / 1e4;
pub const STS_REQUEST: f64 = 0.0;
pub const SECRETS_MANAGER_CALL: f64 = 0.05 / 1e4;
pub const S3_PUT_REQUEST: f64 = 0.005 / 1e3;
pub const S3_GET_REQUEST: f64 = 0.0004 / 1e3;

/// The price of one billed unit of `service` `operation` (units as the
/// [`Meter`](super::Meter) counts them).
pub fn unit_price(service: &str, operation: &str) -> f64 {
    match (service, operation) {
        ("API Gateway", _) => API_GATEWAY_HTTP_REQUEST,
        ("Lambda", "GB-seconds") => LAMBDA_ARM_GB_SECOND,
        ("Lambda", _) => LAMBDA_REQUEST,
        ("SQS", _) => SQS_FIFO_REQUEST,
        ("DynamoDB", "GetItem" | "Query" | "Scan") => DYNAMODB_READ_REQUEST_UNIT,
        ("DynamoDB", _) => DYNAMODB_WRITE_REQUEST_UNIT,
        ("KMS", _) => KMS_REQUEST,
        ("STS", _) => STS_REQUEST,
        ("Secrets Manager", _) => SECRETS_MANAGER_CALL,
        ("S3", "GetObject" | "HeadObject") => S3_GET_REQUEST,
        ("S3", _) => S3_PUT_REQUEST,
        _ => 0.0,
    }
}
