"""Checks over the SAM template after the SAM transform, resolved for the dev and prod
settings of samconfig.toml (and for prod with every optional feature switched on)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import (
    ACCOUNT,
    REGION,
    ROOT,
    Resolver,
    asl_path,
    dump,
    load_template,
    overrides,
    samconfig,
)

FUNCTIONS = {
    # logical id: cargo binary (= BuildProperties.Binary = functions/<crate>)
    "GuardFunction": "guard",
    "RankingFunction": "ranking",
    "ItemFunction": "item",
    "GenreFunction": "genre",
    "TagFunction": "tag",
    "IsActiveFunction": "is-active",
    "NotifyFunction": "notify",
}
JOB_FAILURE_THRESHOLDS = {"ranking": 0.01, "item": 0.05, "genre": 0.01, "tag": 0.01}
RAW_WRITERS = {"RankingFunction", "ItemFunction", "GenreFunction", "TagFunction"}
RAW_READERS = {"IsActiveFunction"}

# Allowed `Resource: "*"` (Allow statements), each with the reason AWS requires it.
# Keyed by (role or policy logical id, statement Sid). Mirrored in docs/architecture.md.
WILDCARD_RESOURCE_EXCEPTIONS = {
    ("JobnetStateMachineRole", "ExecutionLogDelivery"): (
        "Step Functions execution logging uses the CloudWatch Logs log-delivery APIs "
        "(CreateLogDelivery, …, DescribeLogGroups), which do not support resource-level "
        "permissions; AWS documents Resource \"*\" for them."
    ),
}
# AWS-managed policies a role may carry, each with the reason.
ALLOWED_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": (
        "attached by SAM to every function role it generates: logs:CreateLogGroup, "
        "CreateLogStream, PutLogEvents (Resource \"*\"); the log groups themselves are "
        "created by the stack with 30-day retention."
    ),
    "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole": (
        "only with SubnetIds (test_no_ec2_actions_without_subnets): the ENI actions Lambda "
        "needs for VPC placement (ec2:CreateNetworkInterface, DescribeNetworkInterfaces, …) "
        "require Resource \"*\"."
    ),
}
OWN_MANAGED_POLICIES = {
    "DatabaseUrlReadPolicy",
    "RakutenSecretsReadPolicy",
    "RawStoreWritePolicy",
    "RawStoreReadPolicy",
}
# Functions that call Rakuten; only these may read the Rakuten credentials.
RAKUTEN_CALLERS = {"RankingFunction", "ItemFunction", "GenreFunction", "TagFunction"}


def of_type(resources: dict, type_: str) -> dict:
    return {k: v for k, v in resources.items() if v["Type"] == type_}


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def statements(doc: dict) -> list[dict]:
    return as_list(doc.get("Statement", []))


def role_documents(resources: dict, role: str) -> list[tuple[str, dict]]:
    """(origin, statement) of every Allow statement a role gets: inline policies and
    the stack's own managed policies it attaches."""
    props = resources[role]["Properties"]
    out = []
    for policy in props.get("Policies", []):
        for st in statements(policy["PolicyDocument"]):
            out.append((role, st))
    for arn in props.get("ManagedPolicyArns", []):
        if isinstance(arn, str) and arn.startswith("ref:"):
            name = arn[4:]
            for st in statements(resources[name]["Properties"]["PolicyDocument"]):
                out.append((name, st))
    return out


def function_role(resources: dict, function: str) -> str:
    role = resources[function]["Properties"]["Role"]
    assert role.startswith("getatt:") and role.endswith(".Arn"), role
    return role[len("getatt:") : -len(".Arn")]


def bucket_name(env: str) -> str:
    return f"ichiba-collector-{env}-raw-{ACCOUNT}-{REGION}"


def env_of(resources: dict) -> str:
    return resources["GuardFunction"]["Properties"]["Environment"]["Variables"]["APP_ENV"]


def detailed(resources: dict) -> bool:
    """DetailedMonitoring=true (it also switches the metrics' EMF block on)."""
    return resources["GuardFunction"]["Properties"]["Environment"]["Variables"]["EMIT_METRICS"] == "true"


# ------------------------------------------------------------------ functions


def test_every_function_is_declared_for_cargo_lambda():
    template = load_template()
    functions = {
        k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"
    }
    assert set(functions) == set(FUNCTIONS)
    for name, res in functions.items():
        meta = res["Metadata"]
        assert meta["BuildMethod"] == "rust-cargolambda", name
        assert meta["BuildProperties"]["Binary"] == FUNCTIONS[name], name
        assert res["Properties"]["CodeUri"] == f"functions/{FUNCTIONS[name]}", name
    glob = template["Globals"]["Function"]
    assert glob["Runtime"] == "provided.al2023"
    assert glob["Handler"] == "bootstrap"
    assert template["Parameters"]["Architecture"]["Default"] == "arm64"


def test_functions_runtime_architecture_logging(resolved):
    name, resources = resolved
    lambdas = of_type(resources, "AWS::Lambda::Function")
    assert set(lambdas) == set(FUNCTIONS), name
    for fn, res in lambdas.items():
        p = res["Properties"]
        assert p["Runtime"] == "provided.al2023", fn
        assert p["Architectures"] == ["arm64"], fn
        assert p["LoggingConfig"]["LogFormat"] == "JSON", fn
        assert 128 <= p["MemorySize"] <= 1024, fn
        assert 1 <= p["Timeout"] <= 900, fn


def test_every_function_has_a_30_day_log_group(resolved):
    name, resources = resolved
    groups = {
        r["Properties"]["LogGroupName"]: r["Properties"]
        for r in of_type(resources, "AWS::Logs::LogGroup").values()
    }
    for fn, res in of_type(resources, "AWS::Lambda::Function").items():
        fname = res["Properties"]["FunctionName"]
        group = res["Properties"]["LoggingConfig"].get("LogGroup", f"/aws/lambda/{fname}")
        assert group in groups, f"{name}: {fn} logs to {group}, which the stack does not create"
        assert groups[group].get("RetentionInDays") == 30, f"{name}: {group}"
    # The state machine's execution log group too.
    sm = resources["JobnetStateMachine"]["Properties"]
    dest = sm["LoggingConfiguration"]["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]
    assert dest == "getatt:JobnetLogGroup.Arn"
    assert resources["JobnetLogGroup"]["Properties"]["RetentionInDays"] == 30


def test_function_environment(resolved):
    name, resources = resolved
    env = env_of(resources)
    expected_store = f"s3://{bucket_name(env)}/raw"
    assert resources["RawBucket"]["Properties"]["BucketName"] == bucket_name(env)
    rates = set()
    for fn, res in of_type(resources, "AWS::Lambda::Function").items():
        v = res["Properties"]["Environment"]["Variables"]
        assert v["APP_ENV"] == env, fn
        assert v["RAW_STORE"] == expected_store, fn
        for var in (
            "DATABASE_URL_SSM_PARAMETER",
            "RAKUTEN_APPLICATION_ID_SSM_PARAMETER",
            "RAKUTEN_ACCESS_KEY_SSM_PARAMETER",
        ):
            assert v[var].startswith(f"/ichiba-collector/{env}/"), (fn, var, v[var])
        assert 0 < float(v["RAKUTEN_REQUESTS_PER_SECOND"]) <= 1.0, fn
        assert v["RANKING_TARGETS"], fn
        # Secrets are never passed as values.
        for secret in ("DATABASE_URL", "RAKUTEN_APPLICATION_ID", "RAKUTEN_ACCESS_KEY"):
            assert secret not in v, (fn, secret)
        rates.add(v["RAKUTEN_REQUESTS_PER_SECOND"])
        # Genre and Tag run at the same time on one application ID: they stay within the
        # rate together only through the budget shared in PostgreSQL, which must stay on.
        assert v.get("RAKUTEN_SHARED_BUDGET", "postgres") == "postgres", fn
    assert len(rates) == 1, rates
    notify = resources["NotifyFunction"]["Properties"]["Environment"]["Variables"]
    assert "NOTIFY_WEBHOOK_URL_SSM_PARAMETER" in notify and "NOTIFY_SNS_TOPIC_ARN" in notify


# ------------------------------------------------------------------ alarms


def alarm_function_dims(alarm: dict) -> list[tuple[str, str]]:
    """(metric name, FunctionName) pairs an alarm watches, metric math included."""
    props = alarm["Properties"]
    metrics = []
    if "MetricName" in props:
        metrics.append((props["MetricName"], props.get("Dimensions", [])))
    for m in props.get("Metrics", []):
        if "MetricStat" in m:
            metric = m["MetricStat"]["Metric"]
            metrics.append((metric["MetricName"], metric.get("Dimensions", [])))
    out = []
    for metric, dims in metrics:
        for d in dims:
            if d["Name"] == "FunctionName":
                out.append((metric, d["Value"]))
    return out


def test_every_function_has_an_error_alarm(resolved):
    name, resources = resolved
    alarms = of_type(resources, "AWS::CloudWatch::Alarm")
    if not detailed(resources):
        assert not [a for a in alarms.values() if alarm_function_dims(a)], f"{name}: per-function alarms are detailed"
        return
    for fn in FUNCTIONS:
        error_alarms = [
            a for a in alarms.values() if ("Errors", f"ref:{fn}") in alarm_function_dims(a)
        ]
        assert error_alarms, f"{name}: no Errors alarm for {fn}"
        # Error rate >= 5 %, computed as 100 * errors / invocations.
        assert any(
            a["Properties"].get("Threshold") == 5
            and a["Properties"]["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
            and ("Invocations", f"ref:{fn}") in alarm_function_dims(a)
            for a in error_alarms
        ), f"{name}: {fn} has no 5 % error-rate alarm"
        for metric in ("Throttles", "Duration"):
            assert any(
                (metric, f"ref:{fn}") in alarm_function_dims(a) for a in alarms.values()
            ), f"{name}: no {metric} alarm for {fn}"


def test_duration_alarms_fire_before_the_timeout(resolved):
    _, resources = resolved
    for alarm in of_type(resources, "AWS::CloudWatch::Alarm").values():
        for metric, fn in alarm_function_dims(alarm):
            if metric != "Duration":
                continue
            timeout_ms = resources[fn[4:]]["Properties"]["Timeout"] * 1000
            threshold = alarm["Properties"]["Threshold"]
            assert 0.8 * timeout_ms <= threshold < timeout_ms, (fn, threshold, timeout_ms)


def test_every_alarm_notifies_the_sns_topic(resolved):
    name, resources = resolved
    alarms = of_type(resources, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= (7 * 3 + 4 + 4 if detailed(resources) else 3), len(alarms)
    assert resources["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    for alarm_name, alarm in alarms.items():
        assert alarm["Properties"].get("AlarmActions") == ["ref:AlarmTopic"], (name, alarm_name)
        assert alarm["Properties"].get("ActionsEnabled", True) is True


def test_state_machine_alarms(resolved):
    name, resources = resolved
    alarms = of_type(resources, "AWS::CloudWatch::Alarm").values()
    watched = {
        a["Properties"]["MetricName"]
        for a in alarms
        if a["Properties"].get("Namespace") == "AWS/States"
        and a["Properties"]["Dimensions"] == [{"Name": "StateMachineArn", "Value": "ref:JobnetStateMachine"}]
    }
    for metric in ("ExecutionsFailed", "ExecutionsTimedOut"):
        assert metric in watched, (name, metric)
    assert ("ExecutionsAborted" in watched) == detailed(resources), name
    schedule_on = resources["JobnetStateMachineDailySchedule"]["Properties"]["State"] == "ENABLED"
    no_success = [
        a for a in alarms if a["Properties"].get("MetricName") == "ExecutionsSucceeded"
    ]
    if schedule_on:
        assert len(no_success) == 1, name
        p = no_success[0]["Properties"]
        assert p["Period"] * p["EvaluationPeriods"] == 26 * 3600
        assert p["DatapointsToAlarm"] == p["EvaluationPeriods"]
        assert p["ComparisonOperator"] == "LessThanThreshold" and p["Threshold"] == 1
        assert p["TreatMissingData"] == "breaching"
    else:
        assert no_success == [], f"{name}: the 26-hour alarm must not exist while the schedule is off"


def test_failure_rate_alarms(resolved):
    name, resources = resolved
    env = env_of(resources)
    found = {}
    for a in of_type(resources, "AWS::CloudWatch::Alarm").values():
        p = a["Properties"]
        if p.get("Namespace") == "IchibaCollector" and p.get("MetricName") == "FailureRate":
            dims = {d["Name"]: d["Value"] for d in p["Dimensions"]}
            assert set(dims) == {"Env", "Job"}
            assert dims["Env"] == env
            assert p["ComparisonOperator"] == "GreaterThanThreshold"
            found[dims["Job"]] = p["Threshold"]
    assert found == (JOB_FAILURE_THRESHOLDS if detailed(resources) else {}), (name, found)


def test_dead_letter_queue_and_alarm(resolved):
    name, resources = resolved
    env = env_of(resources)
    rule = resources["JobnetStateMachineDailySchedule"]["Properties"]
    target = rule["Targets"][0]
    assert target["DeadLetterConfig"]["Arn"] == "getatt:ScheduleDeadLetterQueue.Arn"
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert rule["Name"] == f"ichiba-collector-{env}-daily"
    queue_policy = resources["ScheduleDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]
    allow = [s for s in statements(queue_policy) if s["Effect"] == "Allow"][0]
    assert allow["Principal"] == {"Service": "events.amazonaws.com"}
    assert allow["Condition"]["ArnEquals"]["aws:SourceArn"].endswith(f":rule/{rule['Name']}")
    assert any(
        a["Properties"].get("Namespace") == "AWS/SQS"
        and a["Properties"]["Dimensions"][0]["Value"] == "getatt:ScheduleDeadLetterQueue.QueueName"
        for a in of_type(resources, "AWS::CloudWatch::Alarm").values()
    ), name


def test_dashboard_body_is_json(resolved):
    _, resources = resolved
    if not detailed(resources):
        assert "Dashboard" not in resources
        return
    body = json.loads(resources["Dashboard"]["Properties"]["DashboardBody"])
    titles = [w["properties"]["title"] for w in body["widgets"]]
    assert any("executions" in t.lower() for t in titles)
    assert any("failure rate" in t.lower() for t in titles)
    assert any("rows" in t.lower() for t in titles)


# ------------------------------------------------------------------ schedules


def cron_to_jst(expr: str) -> tuple[str, str]:
    """cron(M H * * ? *) in UTC -> ("HH:MM" in JST, day offset note)."""
    m = re.fullmatch(r"cron\((\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\)", expr)
    assert m, expr
    minute, hour, dom, month, dow, year = m.groups()
    assert minute.isdigit() and hour.isdigit(), f"{expr}: not a single daily time"
    assert (dom, month, year) == ("*", "*", "*") and dow == "?", f"{expr}: not daily"
    total = (int(hour) * 60 + int(minute) + 9 * 60) % (24 * 60)
    return f"{total // 60:02d}:{total % 60:02d}", expr


@pytest.mark.parametrize(
    "env, jst, enabled", [("dev", "00:30", "true"), ("prod", "17:00", "false")]
)
def test_schedules_mean_jst_times(env, jst, enabled, transformed):
    params = overrides(env)
    assert cron_to_jst(params["ScheduleExpression"])[0] == jst
    assert params["ScheduleEnabled"] == enabled
    resources = Resolver(transformed, params).resources()
    rule = resources["JobnetStateMachineDailySchedule"]["Properties"]
    assert rule["ScheduleExpression"] == params["ScheduleExpression"]
    assert rule["State"] == ("ENABLED" if enabled == "true" else "DISABLED")
    assert rule["Targets"][0]["Arn"] == "ref:JobnetStateMachine"


def test_cron_conversion_itself():
    assert cron_to_jst("cron(30 15 * * ? *)")[0] == "00:30"
    assert cron_to_jst("cron(0 8 * * ? *)")[0] == "17:00"
    assert cron_to_jst("cron(0 0 * * ? *)")[0] == "09:00"


def test_samconfig_shape():
    cfg = samconfig()
    for env in ("dev", "prod"):
        deploy = cfg[env]["deploy"]["parameters"]
        assert deploy["stack_name"] == f"ichiba-collector-{env}"
        assert deploy["region"] == "ap-northeast-1"
        assert "CAPABILITY_IAM" in deploy["capabilities"]
        assert cfg[env]["validate"]["parameters"]["lint"] is True
        assert cfg[env]["build"]["parameters"]["parallel"] is True
        assert overrides(env)["Env"] == env
    assert cfg["default"]["global"]["parameters"]["region"] == "ap-northeast-1"


# ------------------------------------------------------------------ IAM


def all_allow_statements(resources: dict):
    """(owner, statement) for every Allow statement of every IAM role and policy."""
    for name, res in resources.items():
        p = res["Properties"]
        if res["Type"] == "AWS::IAM::Role":
            for policy in p.get("Policies", []):
                for st in statements(policy["PolicyDocument"]):
                    yield name, st
        elif res["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            for st in statements(p["PolicyDocument"]):
                yield name, st


def test_no_wildcard_actions_or_unscoped_resources(resolved):
    name, resources = resolved
    seen_exceptions = set()
    for owner, st in all_allow_statements(resources):
        if st.get("Effect") != "Allow":
            continue
        assert "NotAction" not in st and "NotResource" not in st, (owner, st)
        for action in as_list(st["Action"]):
            assert action != "*" and not action.endswith(":*"), f"{name}: {owner} allows {action}"
        if "*" in as_list(st["Resource"]):
            key = (owner, st.get("Sid"))
            assert key in WILDCARD_RESOURCE_EXCEPTIONS, f"{name}: unscoped Resource * in {owner}: {dump(st)}"
            seen_exceptions.add(key)
    assert seen_exceptions == set(WILDCARD_RESOURCE_EXCEPTIONS), "stale exception list"


def test_managed_policies_are_listed_exceptions(resolved):
    name, resources = resolved
    for role, res in of_type(resources, "AWS::IAM::Role").items():
        for arn in res["Properties"].get("ManagedPolicyArns", []):
            if arn.startswith("ref:"):
                assert arn[4:] in OWN_MANAGED_POLICIES, (role, arn)
            else:
                assert arn in ALLOWED_MANAGED_POLICIES, f"{name}: {role} attaches {arn}"


def resources_for(resources: dict, role: str, action: str) -> set[str]:
    out = set()
    for _, st in role_documents(resources, role):
        if st["Effect"] == "Allow" and action in as_list(st["Action"]):
            out.update(as_list(st["Resource"]))
    return out


def test_guard_lists_only_its_own_state_machine(resolved):
    name, resources = resolved
    env = env_of(resources)
    role = function_role(resources, "GuardFunction")
    assert resources_for(resources, role, "states:ListExecutions") == {
        f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:ichiba-collector-{env}-jobnet"
    }
    assert resources["JobnetStateMachine"]["Properties"]["StateMachineName"] == f"ichiba-collector-{env}-jobnet"
    for fn in FUNCTIONS:
        if fn != "GuardFunction":
            r = function_role(resources, fn)
            assert not resources_for(resources, r, "states:ListExecutions"), fn


def test_ssm_and_kms_scoping(resolved):
    name, resources = resolved
    params = {
        "db": resources["GuardFunction"]["Properties"]["Environment"]["Variables"]["DATABASE_URL_SSM_PARAMETER"],
    }
    prefix = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter"
    for fn in FUNCTIONS:
        role = function_role(resources, fn)
        got = resources_for(resources, role, "ssm:GetParameter")
        v = resources[fn]["Properties"]["Environment"]["Variables"]
        rakuten = (
            ("RAKUTEN_APPLICATION_ID_SSM_PARAMETER", "RAKUTEN_ACCESS_KEY_SSM_PARAMETER", "RAKUTEN_AFFILIATE_ID_SSM_PARAMETER")
            if fn in RAKUTEN_CALLERS
            else ()
        )
        expected = {
            prefix + v[var]
            for var in ("DATABASE_URL_SSM_PARAMETER", "NOTIFY_WEBHOOK_URL_SSM_PARAMETER", *rakuten)
            if v.get(var)
        }
        assert got == expected, (name, fn, got, expected)
        assert prefix + params["db"] in got
        for _, st in role_documents(resources, role):
            if "kms:Decrypt" in as_list(st["Action"]):
                cond = st["Condition"]["StringEquals"]["kms:ViaService"]
                assert cond == f"ssm.{REGION}.amazonaws.com"
                for r in as_list(st["Resource"]):
                    assert r.startswith(f"arn:aws:kms:{REGION}:{ACCOUNT}:key/"), r


def test_raw_store_access_is_per_prefix(resolved):
    name, resources = resolved
    env = env_of(resources)
    objects = f"arn:aws:s3:::{bucket_name(env)}/raw/{env}/*"
    for fn in FUNCTIONS:
        role = function_role(resources, fn)
        put = resources_for(resources, role, "s3:PutObject")
        get = resources_for(resources, role, "s3:GetObject")
        if fn in RAW_WRITERS:
            assert put == {objects} and get == {objects}, fn
        elif fn in RAW_READERS:
            assert put == set() and get == {objects}, fn
        else:
            assert put == set() and get == set(), fn
        for _, st in role_documents(resources, role):
            if "s3:ListBucket" in as_list(st["Action"]):
                assert st["Condition"]["StringLike"]["s3:prefix"] == f"raw/{env}/*"


def test_notify_publishes_only_when_configured(resolved):
    name, resources = resolved
    role = function_role(resources, "NotifyFunction")
    publish = resources_for(resources, role, "sns:Publish")
    topic = resources["NotifyFunction"]["Properties"]["Environment"]["Variables"]["NOTIFY_SNS_TOPIC_ARN"]
    if topic:
        assert publish == {"ref:AlarmTopic"} and topic == "ref:AlarmTopic"
    else:
        assert publish == set()
    for fn in FUNCTIONS:
        if fn != "NotifyFunction":
            assert not resources_for(resources, function_role(resources, fn), "sns:Publish")


def test_state_machine_invokes_only_its_functions(resolved):
    name, resources = resolved
    role = resources["JobnetStateMachine"]["Properties"]["RoleArn"][len("getatt:") : -len(".Arn")]
    invoke = resources_for(resources, role, "lambda:InvokeFunction")
    assert invoke == {
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ref:{fn}*" for fn in FUNCTIONS
    }, invoke
    actions = {a for _, st in role_documents(resources, role) for a in as_list(st["Action"])}
    assert {a for a in actions if not a.startswith("logs:")} == {"lambda:InvokeFunction"}


# ------------------------------------------------------------------ bucket


def test_bucket_blocks_public_access_encrypts_and_denies_plain_http(resolved):
    name, resources = resolved
    bucket = resources["RawBucket"]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    sse = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert bucket["OwnershipControls"]["Rules"][0]["ObjectOwnership"] == "BucketOwnerEnforced"
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    days = int(overrides(name.split("-")[0])["RawObjectExpirationDays"])
    assert int(rules["expire-raw"]["ExpirationInDays"]) == days and rules["expire-raw"]["Prefix"] == "raw/"

    env = env_of(resources)
    policies = [
        r["Properties"]
        for r in of_type(resources, "AWS::S3::BucketPolicy").values()
        if r["Properties"]["Bucket"] == bucket_name(env)
    ]
    assert len(policies) == 1
    deny = [
        st
        for st in statements(policies[0]["PolicyDocument"])
        if st["Effect"] == "Deny"
        and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") in ("false", False)
    ]
    assert deny, "no TLS-only statement"
    st = deny[0]
    assert st["Principal"] in ("*", {"AWS": "*"})
    assert as_list(st["Action"]) in (["s3:*"], ["*"])
    arn = f"arn:aws:s3:::{bucket_name(env)}"
    assert set(as_list(st["Resource"])) == {arn, arn + "/*"}
    assert resources["RawBucket"]["Properties"]["BucketName"] == bucket_name(env)


# ------------------------------------------------------------------ state machine


# The one list of substitution names (the local runner, the Rust tests and the scripts read it too).
EXPECTED_SUBSTITUTIONS = set(
    json.loads((Path(__file__).resolve().parents[2] / "statemachine" / "substitutions.json").read_text())
)


def test_definition_substitutions_cover_the_asl():
    template = load_template()
    sm = template["Resources"]["JobnetStateMachine"]["Properties"]
    assert sm["DefinitionUri"] == "statemachine/jobnet.asl.json"
    subs = sm["DefinitionSubstitutions"]
    assert set(subs) == EXPECTED_SUBSTITUTIONS
    for key, value in subs.items():
        if key.endswith("FunctionArn"):
            assert value == {"Fn::GetAtt": [key[: -len("Arn")], "Arn"]}, key
    text = asl_path().read_text()
    used = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text))
    assert used <= EXPECTED_SUBSTITUTIONS, f"{asl_path()}: unknown substitutions {used - EXPECTED_SUBSTITUTIONS}"
    assert {k for k in EXPECTED_SUBSTITUTIONS if k.endswith("FunctionArn")} <= used, (
        f"{asl_path()} does not use every function: {EXPECTED_SUBSTITUTIONS - used}"
    )


# ------------------------------------------------------------------ secrets

SECRET_PATTERNS = {
    "AWS access key ID": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret key assignment": re.compile(r"(?i)aws_secret_access_key\s*[:=]\s*['\"]?[A-Za-z0-9/+=]{40}"),
    "Rakuten access key": re.compile(r"\bpk_[A-Za-z0-9_\-]{16,}"),
    "Rakuten application ID (19 digits)": re.compile(r"(?<![0-9])[0-9]{19}(?![0-9])"),
    "URL with a password": re.compile(r"\b[a-z][a-z0-9+.\-]*://[^/\s:@<>\"'$]+:[^@\s<>\"'$*]+@"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "Slack webhook": re.compile(r"hooks\.slack\.com/services/T[A-Z0-9]+/"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),
}


def infra_files() -> list[Path]:
    files = [ROOT / "template.yaml", ROOT / "samconfig.toml", ROOT / "env.json"]
    files += sorted((ROOT / "events").glob("*.json"))
    files += sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    files += [ROOT / "docs" / n for n in ("deployment-guide.md", "runbook.md", "architecture.md", "cost.md")]
    return [f for f in files if f.exists()]


def test_no_secret_looking_literals():
    files = infra_files()
    assert ROOT / "template.yaml" in files and ROOT / "samconfig.toml" in files
    problems = []
    for f in files:
        for lineno, line in enumerate(f.read_text().splitlines(), 1):
            for what, pattern in SECRET_PATTERNS.items():
                if pattern.search(line):
                    problems.append(f"{f.relative_to(ROOT)}:{lineno}: {what}: {line.strip()[:120]}")
    assert not problems, "\n".join(problems)


def test_secret_scanner_catches_examples():
    bad = [
        "AKIAIOSFODNN7EXAMPL1",
        "RAKUTEN_ACCESS_KEY=pk_abcdefghijklmnopqrstuvwxyz",
        "applicationId=1234567890123456789",
        "postgresql://postgres.abcd:hunter2@aws-0-ap-northeast-1.pooler.supabase.com:5432/postgres",
    ]
    for line in bad:
        assert any(p.search(line) for p in SECRET_PATTERNS.values()), line
    fine = [
        "postgresql://postgres@127.0.0.1:5432/postgres",
        "postgresql://postgres.<project-ref>:<password>@<host>:5432/postgres",
        "DatabaseUrlParameterName=/ichiba-collector/dev/database-url",
    ]
    for line in fine:
        assert not any(p.search(line) for p in SECRET_PATTERNS.values()), line


# ------------------------------------------------------------------ issue 12: least privilege, alarms, cost


def rakuten_parameter_arns(resources: dict) -> set[str]:
    v = resources["RankingFunction"]["Properties"]["Environment"]["Variables"]
    prefix = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter"
    return {
        prefix + v[var]
        for var in ("RAKUTEN_APPLICATION_ID_SSM_PARAMETER", "RAKUTEN_ACCESS_KEY_SSM_PARAMETER", "RAKUTEN_AFFILIATE_ID_SSM_PARAMETER")
        if v.get(var)
    }


def test_guard_is_active_notify_cannot_read_rakuten_secrets(resolved):
    name, resources = resolved
    secrets = rakuten_parameter_arns(resources)
    assert len(secrets) >= 2
    for fn in FUNCTIONS:
        role = function_role(resources, fn)
        readable = set()
        for action in ("ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"):
            readable |= resources_for(resources, role, action)
        if fn in RAKUTEN_CALLERS:
            assert secrets <= readable, (name, fn)
        else:
            assert not (secrets & readable), (name, fn, secrets & readable)
            assert not any("*" in r for r in readable), (name, fn, readable)
        # No AWS-managed policy reads SSM either.
        for arn in resources[role]["Properties"].get("ManagedPolicyArns", []):
            assert "SSM" not in arn, (fn, arn)


def test_no_ec2_actions_without_subnets(resolved):
    name, resources = resolved
    has_subnets = bool(resources["GuardFunction"]["Properties"].get("VpcConfig"))
    vpc_policy = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
    for fn in FUNCTIONS:
        role = function_role(resources, fn)
        managed = resources[role]["Properties"].get("ManagedPolicyArns", [])
        ec2 = [a for _, st in role_documents(resources, role) for a in as_list(st["Action"]) if a.startswith("ec2:")]
        if has_subnets:
            assert vpc_policy in managed, (name, fn)
        else:
            assert vpc_policy not in managed and not ec2, (name, fn, managed, ec2)


def test_metrics_survive_every_log_level(resolved):
    """Lambda filters JSON log lines by their "level" (missing = INFO). The metrics line
    carries the function's own ApplicationLogLevel (collector_core::metrics, tested there
    at ERROR), so every function must log JSON with a level the code knows, and carry
    EMIT_METRICS. Levels mirrored from metrics::LEVELS."""
    name, resources = resolved
    levels = set(re.search(r"LEVELS: \[&str; 6\] = \[([^\]]+)\]", (ROOT / "functions/collector-core/src/metrics.rs").read_text()).group(1).replace('"', "").replace(" ", "").split(","))
    assert levels == {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}
    assert set(load_template()["Parameters"]["LogLevel"]["AllowedValues"]) <= levels
    for fn in FUNCTIONS:
        p = resources[fn]["Properties"]
        assert p["LoggingConfig"]["LogFormat"] == "JSON", fn
        assert p["LoggingConfig"]["ApplicationLogLevel"] in levels, fn
        assert p["Environment"]["Variables"]["EMIT_METRICS"] in ("true", "false"), fn


def alarm_metric_count(alarm: dict) -> int:
    p = alarm["Properties"]
    if "Metrics" in p:
        return sum(1 for m in p["Metrics"] if "MetricStat" in m)
    return 1


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_default_monitoring_costs_under_a_dollar(env, transformed):
    """samconfig settings (DetailedMonitoring default false): essential alarms only, no
    dashboard, no custom metrics. Prices as in docs/cost.md."""
    params = overrides(env)
    assert "DetailedMonitoring" not in params or params["DetailedMonitoring"] == "false"
    resources = Resolver(transformed, params).resources()
    alarms = of_type(resources, "AWS::CloudWatch::Alarm")
    alarm_cost = 0.10 * sum(alarm_metric_count(a) for a in alarms.values())
    assert not of_type(resources, "AWS::CloudWatch::Dashboard")
    assert not detailed(resources)
    other = 0.05 + 0.02 + 0.06 + 0.03 + 0.05  # compute, Step Functions, S3 PUT, storage, logs
    assert alarm_cost + other <= 1.00, (env, alarm_cost)
    names = {a["Properties"]["MetricName"] for a in alarms.values()}
    essential = {"ExecutionsFailed", "ExecutionsTimedOut", "ApproximateNumberOfMessagesVisible"}
    schedule_on = params.get("ScheduleEnabled") == "true"
    assert names == essential | ({"ExecutionsSucceeded"} if schedule_on else set()), (env, names)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_heartbeat_whenever_a_schedule_is_on(env, transformed):
    for schedule in ("true", "false"):
        resources = Resolver(transformed, {**overrides(env), "ScheduleEnabled": schedule}).resources()
        beats = [
            a for a in of_type(resources, "AWS::CloudWatch::Alarm").values()
            if a["Properties"]["MetricName"] == "ExecutionsSucceeded"
        ]
        assert len(beats) == (1 if schedule == "true" else 0), (env, schedule)
        for a in beats:
            assert a["Properties"]["AlarmActions"] == ["ref:AlarmTopic"]


def test_alarm_email_set_per_environment():
    pattern = load_template()["Parameters"]["AlarmEmail"]["AllowedPattern"]
    for env in ("dev", "prod"):
        email = overrides(env).get("AlarmEmail", "")
        assert re.fullmatch(pattern, email), (env, email)
    template = load_template()
    assert "Default" not in template["Parameters"]["AlarmEmail"], "no deploy without an address"
    assert "Condition" not in template["Resources"]["AlarmEmailSubscription"]


def test_every_role_carries_the_boundary(resolved):
    name, resources = resolved
    boundary = f"arn:aws:iam::{ACCOUNT}:policy/{overrides(name.split('-')[0])['PermissionsBoundaryPolicyName']}"
    for role, res in of_type(resources, "AWS::IAM::Role").items():
        assert res["Properties"].get("PermissionsBoundary") == boundary, (name, role)


def test_re_creating_the_stack_uses_the_kept_bucket(transformed):
    resources = Resolver(transformed, {**overrides("dev"), "RawBucketAlreadyExists": "true"}).resources()
    assert "RawBucket" not in resources
    policy = of_type(resources, "AWS::S3::BucketPolicy")
    assert [p["Properties"]["Bucket"] for p in policy.values()] == [bucket_name("dev")]
