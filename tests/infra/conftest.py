"""Shared fixtures for the infrastructure tests: the SAM template transformed into plain
CloudFormation (offline, with samtranslator) and resolved for the dev and prod settings
of samconfig.toml."""

from __future__ import annotations

import copy
import json
import os
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
ASL = ROOT / "statemachine" / "jobnet.asl.json"
ASL_FIXTURE = Path(__file__).parent / "fixtures" / "jobnet.asl.json"

REGION = "ap-northeast-1"
ACCOUNT = "123456789012"
PARTITION = "aws"


def load_template() -> dict:
    from samcli.yamlhelper import yaml_parse  # handles !Ref, !Sub, … short forms

    return yaml_parse(TEMPLATE.read_text())


def transformed_template() -> dict:
    """template.yaml after the SAM transform (AWS::Serverless::* expanded)."""
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    from samtranslator.translator.transform import transform

    template = load_template()
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        # The translator wants S3 locations where `sam package` would put them.
        if resource["Type"] == "AWS::Serverless::Function":
            props["CodeUri"] = "s3://example-bucket/code.zip"
        if resource["Type"] == "AWS::Serverless::StateMachine":
            props["DefinitionUri"] = "s3://example-bucket/jobnet.asl.json"

    class NoManagedPolicies:  # only consulted for policy names that are not ARNs
        def load(self):
            return {}

    return transform(template, {}, NoManagedPolicies())


def samconfig() -> dict:
    return tomllib.loads(SAMCONFIG.read_text())


def overrides(env: str) -> dict[str, str]:
    """parameter_overrides of samconfig.toml's [<env>.deploy.parameters] as a dict."""
    text = samconfig()[env]["deploy"]["parameters"]["parameter_overrides"]
    out = {}
    for item in shlex.split(text):
        key, _, value = item.partition("=")
        out[key] = value
    return out


class Resolver:
    """Evaluates the intrinsic functions of a transformed template for one set of
    parameter values. References to resources become markers: {"Ref": X} -> "ref:X",
    {"Fn::GetAtt": [X, A]} -> "getatt:X.A". Conditions are evaluated; AWS::NoValue
    entries are dropped."""

    NOVALUE = object()

    def __init__(self, template: dict, params: dict[str, str]):
        self.t = template
        self.params = {}
        for name, spec in template.get("Parameters", {}).items():
            if name in params:
                value = params[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise KeyError(f"parameter {name} has no default and no value")
            if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
                value = [v for v in value.split(",")] if value else [""]
            self.params[name] = value
        self.params.update(
            {
                "AWS::Region": REGION,
                "AWS::AccountId": ACCOUNT,
                "AWS::Partition": PARTITION,
                "AWS::StackName": f"ichiba-collector-{self.params.get('Env', 'x')}",
            }
        )
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.resolve(self.t["Conditions"][name]))
        return self._conditions[name]

    def ref(self, name: str):
        if name == "AWS::NoValue":
            return self.NOVALUE
        if name in self.params:
            return self.params[name]
        if name in self.t["Resources"]:
            return f"ref:{name}"
        raise KeyError(f"Ref to unknown {name}")

    def sub(self, text: str, extra: dict) -> str:
        out, i = [], 0
        while i < len(text):
            j = text.find("${", i)
            if j < 0:
                out.append(text[i:])
                break
            out.append(text[i:j])
            if text.startswith("${!", j):
                k = text.index("}", j)
                out.append("${" + text[j + 3 : k] + "}")
                i = k + 1
                continue
            k = text.index("}", j)
            name = text[j + 2 : k]
            if name in extra:
                value = extra[name]
            elif "." in name and name.split(".")[0] in self.t["Resources"]:
                value = "getatt:" + name
            else:
                value = self.ref(name)
            out.append(str(value))
            i = k + 1
        return "".join(out)

    def resolve(self, node):
        if isinstance(node, list):
            items = [self.resolve(v) for v in node]
            return [v for v in items if v is not self.NOVALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                parts = arg if isinstance(arg, list) else arg.split(".", 1)
                return f"getatt:{parts[0]}.{parts[1]}"
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    return self.sub(arg, {})
                text, variables = arg
                return self.sub(text, {k: self.resolve(v) for k, v in variables.items()})
            if key == "Fn::If":
                cond, yes, no = arg
                return self.resolve(yes if self.condition(cond) else no)
            if key == "Fn::Equals":
                a, b = (self.resolve(v) for v in arg)
                return a == b
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(v) for v in arg)
            if key == "Fn::Or":
                return any(self.resolve(v) for v in arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Join":
                sep, values = arg
                values = self.resolve(values)
                return sep.join(str(v) for v in values)
            if key == "Fn::FindInMap":
                m, k1, k2 = (self.resolve(v) for v in arg)
                return self.t["Mappings"][m][k1][k2]
            if key == "Fn::Select":
                index, values = self.resolve(arg[0]), self.resolve(arg[1])
                return values[int(index)]
        out = {}
        for k, v in node.items():
            r = self.resolve(v)
            if r is not self.NOVALUE:
                out[k] = r
        return out

    def resources(self) -> dict:
        """Resources that exist under these parameters, resolved."""
        out = {}
        for name, res in self.t["Resources"].items():
            if "Condition" in res and not self.condition(res["Condition"]):
                continue
            out[name] = {
                "Type": res["Type"],
                "Properties": self.resolve(copy.deepcopy(res.get("Properties", {}))),
            }
        return out


@pytest.fixture(scope="session")
def transformed() -> dict:
    return transformed_template()


ENV_SETTINGS = {
    "dev": lambda: overrides("dev"),
    "prod": lambda: overrides("prod"),
    # Everything optional switched on: VPC, webhook, SNS notify, affiliate ID, KMS key, e-mail.
    "prod-all-options": lambda: {
        **overrides("prod"),
        "ScheduleEnabled": "true",
        "SubnetIds": "subnet-0123456789abcdef0,subnet-0fedcba9876543210",
        "SecurityGroupIds": "sg-0123456789abcdef0",
        "NotifyWebhookUrlParameterName": "/ichiba-collector/prod/notify-webhook-url",
        "NotifyViaSns": "true",
        "RakutenAffiliateIdParameterName": "/ichiba-collector/prod/rakuten-affiliate-id",
        "SsmKmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555",
        "AlarmEmail": "ops@example.com",
        "DetailedMonitoring": "true",
    },
}


@pytest.fixture(scope="session", params=sorted(ENV_SETTINGS))
def resolved(request, transformed) -> tuple[str, dict]:
    """(settings name, resolved resources) for each of dev, prod and prod-all-options."""
    params = ENV_SETTINGS[request.param]()
    return request.param, Resolver(transformed, params).resources()


def asl_path() -> Path:
    return ASL if ASL.exists() else ASL_FIXTURE


def dump(obj) -> str:
    return json.dumps(obj, indent=1, sort_keys=True, default=str)
