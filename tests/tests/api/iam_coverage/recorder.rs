//! An AWS SDK interceptor that records, for one function, every request its clients put on
//! the wire: the operation (from the SDK's own `Metadata`) and, read from the serialised
//! request, the resource and the condition keys IAM would see. Each operation becomes the
//! IAM request(s) it is authorised as: a DynamoDB transaction item as its own
//! `PutItem`/`UpdateItem`/`DeleteItem`/`ConditionCheckItem`, an SQS batch as its single
//! action, S3 multipart parts as `s3:PutObject`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use serde_json::Value;

use super::policy::Request;

/// The moto configuration's region, so the ARNs this test writes name the one its clients use.
pub use e2e_tests::moto::REGION;
/// moto's default account, so its queue URLs and key ARNs name the same account.
pub const ACCOUNT: &str = "123456789012";

/// One recorded request, attributed to the function whose clients made it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Recorded {
    pub function: String,
    /// The tenant whose session of the tenant-data role signed it (decision 0037); None for
    /// the function's own role.
    pub session: Option<String>,
    /// The SDK operation, e.g. `DynamoDB.TransactWriteItems`.
    pub operation: String,
    pub request: Request,
}

/// Every function's recorder appends to one log.
pub type Log = Arc<Mutex<Vec<Recorded>>>;

#[derive(Debug)]
pub struct Recorder {
    pub function: String,
    /// Set on the clients of a tenant's session.
    pub session: Option<String>,
    pub log: Log,
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "IamCoverageRecorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let metadata = cfg
            .load::<Metadata>()
            .expect("the SDK stores operation metadata");
        let request = context.request();
        // What signed it, from the wire: a session's temporary credentials carry a token,
        // the test's own long-term credentials (the function's role) none.
        // (a presigned URL carries it in its query).
        let has_token = request.headers().get("x-amz-security-token").is_some()
            || request.uri().contains("X-Amz-Security-Token=");
        assert_eq!(
            has_token,
            self.session.is_some(),
            "{}: a request of {:?} signed with the wrong credentials",
            self.function,
            self.session
        );
        let body: Value = request
            .body()
            .bytes()
            .filter(|b| !b.is_empty())
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let form = request
            .body()
            .bytes()
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default();
        let requests = if metadata.service().eq_ignore_ascii_case("sts") {
            sts(metadata.name(), form)
        } else {
            iam_requests(metadata.service(), metadata.name(), request.uri(), &body)
        };
        let operation = format!("{}.{}", metadata.service(), metadata.name());
        let mut log = self.log.lock().unwrap();
        for request in requests {
            log.push(Recorded {
                function: self.function.clone(),
                session: self.session.clone(),
                operation: operation.clone(),
                request,
            });
        }
        Ok(())
    }
}

fn request(action: String, resource: String) -> Request {
    Request {
        action,
        resource,
        context: BTreeMap::new(),
    }
}

/// The IAM requests one SDK operation is authorised as.
pub fn iam_requests(service: &str, operation: &str, uri: &str, body: &Value) -> Vec<Request> {
    match service.to_ascii_lowercase().as_str() {
        "dynamodb" => dynamodb(operation, body),
        "kms" => vec![kms(operation, body)],
        "sqs" => vec![sqs(operation, body)],
        "s3" => vec![s3(operation, uri)],
        "sesv2" => vec![ses(operation, body)],
        "secrets manager" | "secretsmanager" => secrets(operation, body),
        other => panic!("{other}.{operation}: a service this test does not know"),
    }
}

/// A secret is authorised on its ARN (the cold start reads each by ARN). A batch read is
/// `BatchGetSecretValue`, which has no resource, and `GetSecretValue` on every secret it
/// names (the Secrets Manager API reference, "Required permissions").
fn secrets(operation: &str, body: &Value) -> Vec<Request> {
    match operation {
        "BatchGetSecretValue" => {
            let ids = body["SecretIdList"]
                .as_array()
                .unwrap_or_else(|| panic!("BatchGetSecretValue without SecretIdList: {body}"));
            std::iter::once(request(
                "secretsmanager:BatchGetSecretValue".into(),
                "*".into(),
            ))
            .chain(ids.iter().map(|id| {
                request(
                    "secretsmanager:GetSecretValue".into(),
                    string(id, "SecretIdList[]"),
                )
            }))
            .collect()
        }
        _ => vec![request(
            format!("secretsmanager:{operation}"),
            string(&body["SecretId"], "SecretId"),
        )],
    }
}

fn table_arn(name: &str) -> String {
    format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}")
}

fn string(v: &Value, what: &str) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"))
        .to_owned()
}

/// The partition key value of a key, an item, or a key condition `#pk = :v AND ...`.
fn leading_key(part: &Value) -> Option<String> {
    for field in ["Key", "Item"] {
        if let Some(pk) = part[field]["pk"]["S"].as_str() {
            return Some(pk.to_owned());
        }
    }
    let condition = part["KeyConditionExpression"].as_str()?;
    let first = condition.split(" AND ").next()?;
    let (name, value) = first.split_once(" = ")?;
    let name = part["ExpressionAttributeNames"][name.trim()]
        .as_str()
        .unwrap_or(name.trim());
    assert_eq!(name, "pk", "a query keyed by {name}");
    part["ExpressionAttributeValues"][value.trim()]["S"]
        .as_str()
        .map(str::to_owned)
}

fn dynamodb_item(action: &str, part: &Value) -> Request {
    let mut r = request(
        format!("dynamodb:{action}"),
        table_arn(&string(&part["TableName"], "TableName")),
    );
    if let Some(pk) = leading_key(part) {
        r.context.insert("dynamodb:LeadingKeys".into(), vec![pk]);
    }
    r
}

fn dynamodb(operation: &str, body: &Value) -> Vec<Request> {
    match operation {
        // Each item of a transaction is authorised as its own action.
        "TransactWriteItems" | "TransactGetItems" => body["TransactItems"]
            .as_array()
            .expect("TransactItems")
            .iter()
            .map(|item| {
                let (kind, part) = item
                    .as_object()
                    .and_then(|o| o.iter().next())
                    .expect("one action per transaction item");
                let action = match kind.as_str() {
                    "Put" => "PutItem",
                    "Update" => "UpdateItem",
                    "Delete" => "DeleteItem",
                    "ConditionCheck" => "ConditionCheckItem",
                    "Get" => "GetItem",
                    other => panic!("transaction item {other}"),
                };
                dynamodb_item(action, part)
            })
            .collect(),
        // One authorisation per table, whose leading keys are the partition keys of every
        // item the batch names in it ("Using IAM policy conditions for fine-grained access
        // control", DynamoDB Developer Guide: dynamodb:LeadingKeys applies to BatchWriteItem).
        "BatchWriteItem" => body["RequestItems"]
            .as_object()
            .expect("RequestItems")
            .iter()
            .map(|(table, writes)| {
                let mut r = request(format!("dynamodb:{operation}"), table_arn(table));
                let keys: Vec<String> = writes
                    .as_array()
                    .expect("write requests")
                    .iter()
                    .filter_map(|w| {
                        leading_key(&w["DeleteRequest"]).or_else(|| leading_key(&w["PutRequest"]))
                    })
                    .collect();
                r.context.insert("dynamodb:LeadingKeys".into(), keys);
                r
            })
            .collect(),
        "BatchGetItem" => body["RequestItems"]
            .as_object()
            .expect("RequestItems")
            .keys()
            .map(|table| request(format!("dynamodb:{operation}"), table_arn(table)))
            .collect(),
        _ => vec![dynamodb_item(operation, body)],
    }
}

fn kms(operation: &str, body: &Value) -> Request {
    let key = body["KeyId"]
        .as_str()
        .unwrap_or_else(|| panic!("KMS {operation} without a KeyId: the key could not be checked"));
    let resource = if key.starts_with("arn:") {
        key.to_owned()
    } else if key.starts_with("alias/") {
        format!("arn:aws:kms:{REGION}:{ACCOUNT}:{key}")
    } else {
        format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{key}")
    };
    let mut r = request(format!("kms:{operation}"), resource);
    if let Some(context) = body["EncryptionContext"].as_object() {
        r.context.insert(
            "kms:EncryptionContextKeys".into(),
            context.keys().cloned().collect(),
        );
        for (k, v) in context {
            r.context.insert(
                format!("kms:EncryptionContext:{k}"),
                vec![string(v, "an encryption context value")],
            );
        }
    }
    r
}

fn sqs(operation: &str, body: &Value) -> Request {
    // The batch actions are authorised as their single actions.
    let action = match operation {
        "SendMessageBatch" => "SendMessage",
        "DeleteMessageBatch" => "DeleteMessage",
        "ChangeMessageVisibilityBatch" => "ChangeMessageVisibility",
        other => other,
    };
    let url = string(&body["QueueUrl"], "QueueUrl");
    let mut parts = url.trim_end_matches('/').rsplit('/');
    let name = parts.next().expect("a queue name");
    let account = parts.next().expect("an account");
    request(
        format!("sqs:{action}"),
        format!("arn:aws:sqs:{REGION}:{account}:{name}"),
    )
}

/// STS's query protocol: a form body. `AssumeRole` with tags is authorised as
/// `sts:AssumeRole` and `sts:TagSession`, both with the request's tags as
/// `aws:RequestTag/<key>` and their keys as `aws:TagKeys`.
fn sts(operation: &str, form: &str) -> Vec<Request> {
    let fields: BTreeMap<String, String> = form
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(&v.replace('+', " "))))
        .collect();
    assert_eq!(
        operation, "AssumeRole",
        "STS {operation}: not mapped by this test"
    );
    let role = fields["RoleArn"].clone();
    let mut context = BTreeMap::new();
    let mut keys = Vec::new();
    for n in 1.. {
        let Some(key) = fields.get(&format!("Tags.member.{n}.Key")) else {
            break;
        };
        let value = fields[&format!("Tags.member.{n}.Value")].clone();
        context.insert(format!("aws:RequestTag/{key}"), vec![value]);
        keys.push(key.clone());
    }
    let mut out = vec![Request {
        action: "sts:AssumeRole".into(),
        resource: role.clone(),
        context: context.clone(),
    }];
    if !keys.is_empty() {
        context.insert("aws:TagKeys".into(), keys);
        out[0].context = context.clone();
        out.push(Request {
            action: "sts:TagSession".into(),
            resource: role,
            context,
        });
    }
    out
}

fn s3(operation: &str, uri: &str) -> Request {
    // Path-style addressing: <endpoint>/<bucket>/<key>?<query>.
    let path = uri
        .split_once("://")
        .map_or(uri, |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let prefix = query
        .split('&')
        .find_map(|p| p.strip_prefix("prefix="))
        .map(percent_decode);
    let path = percent_decode(path.trim_start_matches('/'));
    let (bucket, key) = path.split_once('/').unwrap_or((path.as_str(), ""));
    let object = format!("arn:aws:s3:::{bucket}/{key}");
    let (action, resource) = match operation {
        "ListObjectsV2" | "ListObjects" => ("ListBucket", format!("arn:aws:s3:::{bucket}")),
        "GetObject" | "HeadObject" => ("GetObject", object),
        "PutObject" | "CreateMultipartUpload" | "UploadPart" | "CompleteMultipartUpload" => {
            ("PutObject", object)
        }
        "AbortMultipartUpload" => ("AbortMultipartUpload", object),
        "ListParts" => ("ListMultipartUploadParts", object),
        "DeleteObject" => ("DeleteObject", object),
        other => panic!("S3 {other}: an operation this test does not map to its IAM action"),
    };
    let mut r = request(format!("s3:{action}"), resource);
    if let (Some(prefix), "ListBucket") = (prefix, action) {
        r.context.insert("s3:prefix".into(), vec![prefix]);
    }
    r
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("UTF-8 object keys")
}

fn ses(operation: &str, body: &Value) -> Request {
    let from = string(&body["FromEmailAddress"], "FromEmailAddress");
    // "Name <address>" or a bare address.
    let address = from
        .rsplit_once('<')
        .map_or(from.as_str(), |(_, a)| a.trim_end_matches('>'))
        .to_owned();
    let mut r = request(
        format!("ses:{operation}"),
        format!("arn:aws:ses:{REGION}:{ACCOUNT}:identity/{address}"),
    );
    r.context.insert("ses:FromAddress".into(), vec![address]);
    r
}
