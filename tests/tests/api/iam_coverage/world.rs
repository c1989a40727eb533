//! One test deployment of template.yaml on the moto server: its tables, queues, key and
//! bucket are created under a unique stack name, the template's `Ref`s and `GetAtt`s resolve
//! to them, and each function is composed the way its `main.rs` composes it, from the
//! environment the template gives it (resolved here), with a recorder labelled by its name on
//! every AWS client. The Graph API and Bitrix24 are loopback fakes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_sdk_dynamodb::config::SharedInterceptor;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use serde_json::Value;
use wappline::app::{
    AwsClientOptions, HttpFunction, SecretsManagerSource, Services, Settings, TenantInterceptors,
};
use wappline::consumer::RecordHandler;
use wappline::ids::TenantId;
use wappline::queue::platform;
use wappline::sqs_lambda::handle_sqs_event;
use wappline::store::dynamo::{provision_tables, TableNames};

use super::recorder::{Log, Recorder, ACCOUNT, REGION};
use super::template::{self, Node, Physical};
use e2e_tests::fake_bitrix::{FakeBitrix, FAKE_CLIENT_ID, FAKE_CLIENT_SECRET};
use e2e_tests::fake_graph::FakeGraph;
use e2e_tests::harness::{APP_SECRET, VERIFY};

/// SHA-256 (hex) of the harness's admin token, the `AdminTokenSha256` parameter.
const ADMIN_SHA256: &str = "bbb6a34ebe561f77928db4a633cac23fbb9e6a6f9eae0d03729bca2dbb237985";
const HEX_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

pub struct Deployment {
    pub template: Node,
    pub physical: Physical,
    pub sdk: aws_config::SdkConfig,
    pub log: Log,
    /// Each function's settings, read as its cold start reads them (secrets from Secrets
    /// Manager, with its recorder).
    settings: HashMap<String, Settings>,
    pub bitrix: FakeBitrix,
    pub graph: FakeGraph,
}

/// The template's parameters, as this deployment sets them.
fn parameters(mail_from: &str) -> BTreeMap<&'static str, String> {
    [
        ("AdminTokenSha256", ADMIN_SHA256.to_owned()),
        ("MetaAppSecret", APP_SECRET.to_owned()),
        ("MetaAppId", e2e_tests::fake_graph::FAKE_APP_ID.to_owned()),
        ("MetaVerifyToken", VERIFY.to_owned()),
        ("MetaEsConfigId", "1234567890123".to_owned()),
        (
            "InstagramAppId",
            e2e_tests::fake_graph::FAKE_IG_APP_ID.to_owned(),
        ),
        (
            "InstagramAppSecret",
            e2e_tests::fake_graph::FAKE_IG_APP_SECRET.to_owned(),
        ),
        ("BitrixClientId", FAKE_CLIENT_ID.to_owned()),
        ("BitrixClientSecret", FAKE_CLIENT_SECRET.to_owned()),
        ("PublicBaseUrl", "https://api.wappline.example".to_owned()),
        ("ExportLinkKey", HEX_KEY.to_owned()),
        ("SessionSigningKey", HEX_KEY.to_owned()),
        ("BcryptCost", "12".to_owned()),
        // Set, so the roles' `HasMailFrom` grants are in force and checked.
        ("MailFrom", mail_from.to_owned()),
        // Set, so the erasure worker's schedule mails the policy and the console shows it.
        ("PrivacyPolicyVersion", "2026-12-01".to_owned()),
        ("MediaLinkKey", HEX_KEY.to_owned()),
        ("LogLevel", "warn".to_owned()),
        (
            "KeyAdminArn",
            format!("arn:aws:iam::{ACCOUNT}:role/wappline-deployer"),
        ),
        ("SecretsRevision", "1".to_owned()),
        // Empty: the built-in default, as a deploy that does not set it.
        ("GraphApiVersion", String::new()),
        (
            "AlarmTopicArn",
            format!("arn:aws:sns:{REGION}:{ACCOUNT}:wappline-alarms"),
        ),
    ]
    .into_iter()
    .collect()
}

impl Deployment {
    pub async fn start() -> Deployment {
        let sdk = e2e_tests::moto::sdk_config().await;
        let stack = format!("iam{}", std::process::id() ^ now_nanos());
        let template = template::read();
        let mut physical = Physical::default();
        for (k, v) in [
            ("AWS::Region", REGION),
            ("AWS::AccountId", ACCOUNT),
            ("AWS::Partition", "aws"),
            ("AWS::URLSuffix", "amazonaws.com"),
            ("AWS::StackName", stack.as_str()),
        ] {
            physical.refs.insert(k.into(), v.into());
        }
        let mail_from = format!("no-reply@{stack}.wappline.example");
        for (k, v) in parameters(&mail_from) {
            physical.refs.insert(k.into(), v);
        }

        // Tables, queues, key, bucket and sender identity of this deployment.
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let names = TableNames::with_prefix(&stack);
        provision_tables(&dynamo, &names).await.unwrap();
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let urls = wappline::queue::sqs::provision_queues(&sqs, &stack, &platform::specs())
            .await
            .unwrap();
        let kms = aws_sdk_kms::Client::new(&sdk);
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        let bucket = format!("{stack}-exports");
        wappline::objects::s3::provision_bucket(&s3, &bucket)
            .await
            .unwrap();
        aws_sdk_sesv2::Client::new(&sdk)
            .create_email_identity()
            .email_identity(&mail_from)
            .send()
            .await
            .unwrap();

        let resources = template.get("Resources").expect("Resources");
        let mut tables: HashMap<&str, &str> = HashMap::new();
        tables.insert("DataTable", &names.data);
        tables.insert("RoutesTable", &names.routes);
        tables.insert("KeysTable", &names.keys);
        tables.insert("DedupeTable", &names.dedupe);
        for (logical, resource) in resources.entries() {
            let kind = resource.get("Type").and_then(Node::str).unwrap_or_default();
            let (reference, arn) = match kind {
                "AWS::DynamoDB::Table" => {
                    let name = tables
                        .get(logical.as_str())
                        .unwrap_or_else(|| panic!("{logical}: a table this test does not know"));
                    (
                        name.to_string(),
                        format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"),
                    )
                }
                "AWS::SQS::Queue" => {
                    // The queue the template names `<stack>-<platform name>`.
                    let name = physical
                        .resolve(
                            resource
                                .get("Properties")
                                .unwrap()
                                .get("QueueName")
                                .unwrap(),
                        )
                        .and_then(|n| n.str().map(str::to_owned))
                        .expect("a QueueName");
                    let base = name
                        .strip_prefix(&format!("{stack}-"))
                        .expect("stack prefix");
                    let url = urls
                        .get(&platform::name(base))
                        .unwrap_or_else(|| panic!("{logical}: no platform queue {base}"))
                        .clone();
                    (url, format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"))
                }
                // One key per key of the template (the tenant key, the platform key).
                "AWS::KMS::Key" => {
                    let key = kms.create_key().send().await.unwrap();
                    let key = key.key_metadata().unwrap();
                    (
                        key.key_id().to_owned(),
                        key.arn().expect("a key ARN").to_owned(),
                    )
                }
                // A secret holds what the template puts in it (its first version).
                "AWS::SecretsManager::Secret" => {
                    let value = physical
                        .resolve(
                            resource
                                .get("Properties")
                                .and_then(|p| p.get("SecretString"))
                                .expect("a SecretString"),
                        )
                        .and_then(|v| v.str().map(str::to_owned))
                        .expect("a resolvable SecretString");
                    let created = secrets
                        .create_secret()
                        .name(format!("{stack}-{logical}"))
                        .secret_string(value)
                        .send()
                        .await
                        .unwrap();
                    let arn = created.arn().expect("a secret ARN").to_owned();
                    (arn.clone(), arn)
                }
                "AWS::S3::Bucket" => (bucket.clone(), format!("arn:aws:s3:::{bucket}")),
                // A role's ARN: its RoleName when it has one, else a generated name.
                "AWS::IAM::Role" => {
                    let name = resource
                        .get("Properties")
                        .and_then(|p| p.get("RoleName"))
                        .and_then(|n| physical.resolve(n))
                        .and_then(|n| n.str().map(str::to_owned))
                        .unwrap_or_else(|| format!("{stack}-{logical}"));
                    (name.clone(), format!("arn:aws:iam::{ACCOUNT}:role/{name}"))
                }
                "AWS::Logs::LogGroup" => {
                    let name = format!("/aws/lambda/{stack}-{logical}");
                    let arn = format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*");
                    (name, arn)
                }
                _ => continue,
            };
            physical.refs.insert(logical.clone(), reference);
            physical.atts.insert(format!("{logical}.Arn"), arn);
        }
        // The media proxy's function URL (SAM's generated resource): where media links point.
        physical.atts.insert(
            "MediaProxyFunctionUrl.FunctionUrl".into(),
            format!("https://{stack}.lambda-url.{REGION}.on.aws/"),
        );
        let conditions = template
            .get("Conditions")
            .map(|c| c.entries().to_vec())
            .unwrap_or_default();
        for (name, expression) in conditions {
            let holds = physical.condition(&expression);
            physical.conditions.insert(name, holds);
        }
        let mut deployment = Deployment {
            template,
            physical,
            sdk,
            log: Log::default(),
            settings: HashMap::new(),
            bitrix: FakeBitrix::start().await,
            graph: FakeGraph::start().await,
        };
        // Every function's cold start: its settings, its secrets read with its own recorder.
        let functions: Vec<String> = deployment
            .template
            .get("Resources")
            .expect("Resources")
            .entries()
            .iter()
            .filter(|(_, r)| r.get("Type").and_then(Node::str) == Some("AWS::Serverless::Function"))
            .map(|(name, _)| name.clone())
            .collect();
        for function in functions {
            let env = deployment.environment(&function);
            let mut builder = aws_sdk_secretsmanager::config::Builder::from(&deployment.sdk);
            for interceptor in deployment.options(&function).interceptors {
                builder.push_interceptor(interceptor);
            }
            let source = SecretsManagerSource::new(aws_sdk_secretsmanager::Client::from_conf(
                builder.build(),
            ));
            let mut settings = Settings::load(|k| env.get(k).cloned(), Some(Arc::new(source)))
                .await
                .unwrap_or_else(|e| panic!("{function}: {e}"));
            // A contact erasure's second pass in the same delivery (decision 0137; one lease
            // later when deployed), so the scenario runs its requests under the role too.
            settings.erasure_sweep = Some(std::time::Duration::ZERO);
            deployment.settings.insert(function, settings);
        }
        deployment
    }

    /// The environment the template gives `function` (globals included), resolved, plus the
    /// loopback fakes' addresses (they change no AWS call).
    pub fn environment(&self, function: &str) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let resources = self.template.get("Resources").unwrap();
        let globals = self
            .template
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Environment"));
        let own = resources
            .get(function)
            .and_then(|f| f.get("Properties"))
            .and_then(|p| p.get("Environment"));
        for vars in [globals, own].into_iter().flatten() {
            let resolved = self.physical.resolve(vars).expect("an environment");
            for (k, v) in resolved.get("Variables").map(Node::entries).unwrap_or(&[]) {
                env.insert(k.clone(), v.str().expect("a string value").to_owned());
            }
        }
        let graph = self.graph.base_url();
        env.insert("GRAPH_API_BASE_URL".into(), graph.clone());
        env.insert("INSTAGRAM_API_BASE_URL".into(), graph.clone());
        env.insert(
            "INSTAGRAM_AUTHORIZE_URL".into(),
            format!("{graph}/oauth/authorize"),
        );
        env.insert("INSTAGRAM_OAUTH_BASE_URL".into(), graph);
        env.insert("WAPPLINE_BITRIX_OAUTH_URL".into(), self.bitrix.oauth_url());
        env.insert(
            "WAPPLINE_BITRIX_PORTAL_BASE_URL".into(),
            self.bitrix.base_url(),
        );
        env.insert("RETRY_BASE_MS".into(), "30".into());
        // A buffered media proxy answers a whole body, which a direct call can read.
        env.insert("MEDIA_PROXY_RESPONSE_MODE".into(), "buffered".into());
        env
    }

    /// `function` composed as its `main.rs` composes it, its AWS calls recorded under its name.
    pub fn services(&self, function: &str) -> Services {
        let settings = self.settings[function].clone();
        Services::aws_with(settings, &self.sdk, self.options(function))
            .unwrap_or_else(|e| panic!("{function}: {e}"))
    }

    /// The test's own setup access (not recorded): `function`'s composition without a
    /// mailer, so an invitation hands its token to the caller instead of emailing it.
    pub fn setup_services(&self, function: &str) -> Services {
        let mut settings = self.settings[function].clone();
        settings.mail_from = None;
        let options = AwsClientOptions {
            s3_path_style: true,
            ..AwsClientOptions::default()
        };
        Services::aws_with(settings, &self.sdk, options).unwrap()
    }

    fn options(&self, function: &str) -> AwsClientOptions {
        let (name, log) = (function.to_owned(), self.log.clone());
        let tenant_interceptors: TenantInterceptors = Arc::new(move |tenant: &TenantId| {
            vec![SharedInterceptor::new(Recorder {
                function: name.clone(),
                session: Some(tenant.as_str().to_owned()),
                log: log.clone(),
            })]
        });
        AwsClientOptions {
            interceptors: vec![SharedInterceptor::new(Recorder {
                function: function.to_owned(),
                session: None,
                log: self.log.clone(),
            })],
            s3_path_style: true,
            tenant_interceptors: Some(tenant_interceptors),
        }
    }

    /// What Lambda's SQS event source does for `function` (with its role): receive a batch of
    /// `queue`, hand it to the handler as the function's runner does, delete what succeeded.
    /// Until the queue gives nothing.
    pub async fn consume(
        &self,
        function: &str,
        services: &Services,
        handler: &dyn RecordHandler,
        queue: &str,
    ) -> usize {
        let mut builder = aws_sdk_sqs::config::Builder::from(&self.sdk);
        for i in self.options(function).interceptors {
            builder.push_interceptor(i);
        }
        let sqs = aws_sdk_sqs::Client::from_conf(builder.build());
        let url = services.settings.queue_urls[&platform::name(queue)].clone();
        let mut handled = 0;
        for _ in 0..20 {
            let out = sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap();
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            let mut event = SqsEvent::default();
            for m in &messages {
                let mut record = SqsMessage::default();
                record.message_id = m.message_id.clone();
                record.receipt_handle = m.receipt_handle.clone();
                record.body = m.body.clone();
                for (k, v) in m.attributes.clone().unwrap_or_default() {
                    record.attributes.insert(k.as_str().to_owned(), v);
                }
                event.records.push(record);
            }
            let answer = handle_sqs_event(
                handler,
                services.queue.as_ref(),
                &platform::name(queue),
                event,
            )
            .await;
            let failed: Vec<_> = answer
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.clone())
                .collect();
            for m in &messages {
                if failed.contains(m.message_id.as_ref().unwrap()) {
                    continue;
                }
                handled += 1;
                sqs.delete_message()
                    .queue_url(&url)
                    .receipt_handle(m.receipt_handle.clone().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        handled
    }
}

fn now_nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

/// An HTTP request as API Gateway hands it to a function; status and JSON answer.
pub async fn call(
    function: &dyn HttpFunction,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    let resp = call_raw(function, method, path, headers, body).await;
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_slice(resp.body().as_ref()).unwrap_or(Value::Null),
    )
}

/// The same request; the whole response (the console's pages, cookies and redirects).
pub async fn call_raw(
    function: &dyn HttpFunction,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> lambda_http::Response<Body> {
    let mut req = lambda_http::Request::new(match body {
        Some(b) => Body::Binary(b),
        None => Body::Empty,
    });
    *req.method_mut() = method.parse().unwrap();
    *req.uri_mut() = path.parse().unwrap();
    for (k, v) in headers {
        let name: lambda_http::http::HeaderName = k.parse().expect("a header name");
        req.headers_mut()
            .insert(name, v.parse().expect("a header value"));
    }
    let query: lambda_http::aws_lambda_events::query_map::QueryMap = req
        .uri()
        .query()
        .unwrap_or_default()
        .parse()
        .unwrap_or_default();
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.http.source_ip = Some("192.0.2.10".into());
    let req = req
        .with_query_string_parameters(query)
        .with_request_context(RequestContext::ApiGatewayV2(context));
    function.handle(req).await
}

pub fn json_body(v: &Value) -> (Vec<(&'static str, String)>, Option<Vec<u8>>) {
    (
        vec![("content-type", "application/json".to_owned())],
        Some(serde_json::to_vec(v).unwrap()),
    )
}
