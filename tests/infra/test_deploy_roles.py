"""The deploy identity (deploy/github-deploy-roles.yaml), checked by evaluating its
checked-in policies the way IAM does (explicit Deny wins; Allow needs a matching action,
resource and condition): no deploy role can modify itself or another deploy role, read a
secret value, create a role without the workload boundary, or reach the other
environment; each role trusts exactly one GitHub environment on main."""

from __future__ import annotations

import fnmatch
import re

import pytest

from conftest import ACCOUNT, REGION, ROOT, Resolver, transformed_template

DEPLOY = ROOT / "deploy" / "github-deploy-roles.yaml"
REPO = "octo-org/ichiba-collector"
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/ichiba-collector-workload-boundary"
DEPLOY_POLICY = f"arn:aws:iam::{ACCOUNT}:policy/github-deploy-ichiba-collector"
PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
MARKERS = {
    "ref:WorkloadBoundary": BOUNDARY,
    "ref:DeployPolicy": DEPLOY_POLICY,
    "ref:GitHubOidcProvider": PROVIDER,
}
ROLES = {"DeployRoleDev": "dev", "DeployRoleProd": "prod", "PreviewRole": "preview"}


def role_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def load() -> dict:
    from samcli.yamlhelper import yaml_parse

    return yaml_parse(DEPLOY.read_text())


def unmark(node):
    if isinstance(node, list):
        return [unmark(v) for v in node]
    if isinstance(node, dict):
        return {k: unmark(v) for k, v in node.items()}
    return MARKERS.get(node, node) if isinstance(node, str) else node


@pytest.fixture(scope="module")
def resources() -> dict:
    return unmark(Resolver(load(), {"GitHubRepository": REPO}).resources())


def as_list(v):
    return v if isinstance(v, list) else [v]


class Principal:
    """One deploy role: its statements (managed + inline) with policy variables filled in."""

    def __init__(self, resources: dict, logical_id: str):
        props = resources[logical_id]["Properties"]
        self.name = props["RoleName"]
        self.arn = role_arn(self.name)
        self.tags = {t["Key"]: t["Value"] for t in props.get("Tags", [])}
        self.boundary = props.get("PermissionsBoundary")
        self.trust = props["AssumeRolePolicyDocument"]["Statement"]
        docs = []
        by_arn = {
            MARKERS[f"ref:{lid}"]: r["Properties"]["PolicyDocument"]
            for lid, r in resources.items()
            if r["Type"] == "AWS::IAM::ManagedPolicy" and f"ref:{lid}" in MARKERS
        }
        for arn in props.get("ManagedPolicyArns", []):
            assert arn in by_arn, f"{logical_id}: unknown managed policy {arn}"
            docs.append(by_arn[arn])
        docs += [p["PolicyDocument"] for p in props.get("Policies", [])]
        self.statements = []
        for doc in docs:
            for st in as_list(doc["Statement"]):
                self.statements.append(self._fill(st))

    def _fill(self, node):
        if isinstance(node, str):
            return re.sub(r"\$\{aws:PrincipalTag/([^}]+)\}", lambda m: self.tags[m.group(1)], node)
        if isinstance(node, list):
            return [self._fill(v) for v in node]
        if isinstance(node, dict):
            return {k: self._fill(v) for k, v in node.items()}
        return node

    def decision(self, action: str, resource: str, context: dict | None = None) -> str:
        """'deny' (explicit), 'allow' or 'implicit' (no statement allows)."""
        context = context or {}
        allowed = False
        for st in self.statements:
            if not applies(st, action, resource, context):
                continue
            if st["Effect"] == "Deny":
                return "deny"
            allowed = True
        return "allow" if allowed else "implicit"

    def can(self, action: str, resource: str, context: dict | None = None) -> bool:
        return self.decision(action, resource, context) == "allow"


def applies(st: dict, action: str, resource: str, context: dict) -> bool:
    if "Action" in st:
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in as_list(st["Action"])):
            return False
    elif any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in as_list(st["NotAction"])):
        return False
    if not any(fnmatch.fnmatchcase(resource, r) for r in as_list(st.get("Resource", "*"))):
        return False
    return conditions_hold(st.get("Condition", {}), context)


def conditions_hold(condition: dict, context: dict) -> bool:
    for op, pairs in condition.items():
        for key, wanted in pairs.items():
            if key not in context:
                return False  # IAM: a condition on an absent key does not match
            have = context[key]
            if op == "StringEquals":
                ok = any(have == w for w in as_list(wanted))
            elif op == "StringLike":
                ok = any(fnmatch.fnmatchcase(have, w) for w in as_list(wanted))
            else:
                raise AssertionError(f"condition operator {op} not modelled by this test")
            if not ok:
                return False
    return True


@pytest.fixture(scope="module")
def principals(resources) -> dict[str, Principal]:
    return {lid: Principal(resources, lid) for lid in ROLES if lid in resources}


def test_every_role_exists_and_none_has_an_application_name(principals):
    assert set(principals) == set(ROLES)
    for p in principals.values():
        # Application-stack roles are ichiba-collector-<env>-*; a deploy role must not be one.
        assert not fnmatch.fnmatchcase(p.name, "ichiba-collector-*"), p.name


IAM_SELF_ACTIONS = [
    "iam:PutRolePolicy",
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:UpdateAssumeRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:DeleteRolePermissionsBoundary",
    "iam:TagRole",
    "iam:UntagRole",
    "iam:DeleteRole",
    "iam:UpdateRole",
]


def test_no_deploy_role_can_modify_any_deploy_role(principals):
    targets = [p.arn for p in principals.values()]
    for p in principals.values():
        for target in targets:
            for action in IAM_SELF_ACTIONS:
                for ctx in ({}, {"iam:PermissionsBoundary": BOUNDARY}):
                    assert not p.can(action, target, ctx), (p.name, action, target, ctx)


def test_no_deploy_role_can_change_the_policies_that_bind_it(principals):
    for p in principals.values():
        for policy in (DEPLOY_POLICY, BOUNDARY):
            for action in ("iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion", "iam:DeletePolicy",
                           "iam:DeletePolicyVersion"):
                assert not p.can(action, policy), (p.name, action, policy)
        assert not p.can("iam:DeleteOpenIDConnectProvider", PROVIDER)
        assert not p.can("iam:UpdateOpenIDConnectProviderThumbprint", PROVIDER)


SECRET_READS = [
    ("ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/ichiba-collector/{{env}}/database-url"),
    ("ssm:GetParameters", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/ichiba-collector/{{env}}/rakuten-access-key"),
    ("ssm:GetParametersByPath", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/ichiba-collector/{{env}}"),
    ("ssm:GetParameterHistory", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/ichiba-collector/{{env}}/database-url"),
    ("secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:anything"),
    ("kms:Decrypt", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"),
]


def test_no_deploy_role_can_read_a_secret_value(principals):
    for p in principals.values():
        for env in ("dev", "prod"):
            for action, resource in SECRET_READS:
                assert p.decision(action, resource.format(env=env)) == "deny", (p.name, action)


def test_application_roles_only_with_the_boundary_and_only_in_own_env(principals):
    for lid, env in (("DeployRoleDev", "dev"), ("DeployRoleProd", "prod")):
        p = principals[lid]
        other = "prod" if env == "dev" else "dev"
        own = role_arn(f"ichiba-collector-{env}-GuardFunctionRole-ABC123")
        theirs = role_arn(f"ichiba-collector-{other}-GuardFunctionRole-ABC123")
        with_boundary = {"iam:PermissionsBoundary": BOUNDARY}
        for action in ("iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy"):
            assert p.can(action, own, with_boundary), (lid, action)
            assert not p.can(action, own), (lid, action, "without the boundary")
            assert not p.can(action, own, {"iam:PermissionsBoundary": DEPLOY_POLICY}), (lid, action)
            assert not p.can(action, theirs, with_boundary), (lid, action, other)
        # Roles may be passed only to the services the stack uses.
        assert p.can("iam:PassRole", own, {"iam:PassedToService": "lambda.amazonaws.com"})
        assert not p.can("iam:PassRole", own, {"iam:PassedToService": "ec2.amazonaws.com"})
        assert not p.can("iam:PassRole", p.arn, {"iam:PassedToService": "lambda.amazonaws.com"})
        # The other environment's stack and functions are out of reach.
        stack = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/ichiba-collector-{{}}/x"
        assert p.can("cloudformation:ExecuteChangeSet", stack.format(env))
        assert not p.can("cloudformation:ExecuteChangeSet", stack.format(other))
        fn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ichiba-collector-{{}}-guard"
        assert p.can("lambda:UpdateFunctionCode", fn.format(env))
        assert not p.can("lambda:UpdateFunctionCode", fn.format(other))
        # Deploying is not running the functions' code with their rights.
        assert not p.can("lambda:InvokeFunction", fn.format(env))


def test_preview_role_never_executes(principals):
    p = principals["PreviewRole"]
    stack = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/ichiba-collector-dev/x"
    for env_stack in (stack, stack.replace("-dev/", "-prod/")):
        assert p.can("cloudformation:CreateChangeSet", env_stack)
        assert p.decision("cloudformation:ExecuteChangeSet", env_stack) == "deny"
    assert not p.can("cloudformation:CreateChangeSet", stack.replace("ichiba-collector-dev", "other-app"))
    assert not p.can("iam:CreateRole", role_arn("ichiba-collector-dev-x"), {"iam:PermissionsBoundary": BOUNDARY})


def trusted(p: Principal, sub: str) -> bool:
    ctx = {"token.actions.githubusercontent.com:sub": sub, "token.actions.githubusercontent.com:aud": "sts.amazonaws.com"}
    return any(
        st["Effect"] == "Allow"
        and st["Action"] == "sts:AssumeRoleWithWebIdentity"
        and st["Principal"] == {"Federated": PROVIDER}
        and conditions_hold(st["Condition"], ctx)
        for st in p.trust
    )


def test_each_role_trusts_one_github_environment_on_main(principals):
    subs = {
        "dev-main": f"repo:{REPO}:environment:dev:ref:refs/heads/main",
        "prod-main": f"repo:{REPO}:environment:prod:ref:refs/heads/main",
        "dev-branch": f"repo:{REPO}:environment:dev:ref:refs/heads/feature",
        "prod-branch": f"repo:{REPO}:environment:prod:ref:refs/heads/feature",
        "default-claim-dev": f"repo:{REPO}:environment:dev",
        "branch": f"repo:{REPO}:ref:refs/heads/main",
        "pull-request": f"repo:{REPO}:pull_request",
        "preview-pr": f"repo:{REPO}:environment:preview:ref:refs/pull/7/merge",
        "preview-main": f"repo:{REPO}:environment:preview:ref:refs/heads/main",
        "preview-branch": f"repo:{REPO}:environment:preview:ref:refs/heads/feature",
        "other-repo": f"repo:someone/else:environment:prod:ref:refs/heads/main",
    }
    expected = {"DeployRoleDev": {"dev-main"}, "DeployRoleProd": {"prod-main"}, "PreviewRole": {"preview-pr", "preview-main"}}
    for lid, p in principals.items():
        assert {k for k, s in subs.items() if trusted(p, s)} == expected[lid], lid
        for st in p.trust:  # audience pinned in every statement
            assert st["Condition"]["StringEquals"]["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"


def test_workload_boundary_grants_no_identity_or_foreign_secret_power(resources):
    doc = resources["WorkloadBoundary"]["Properties"]["PolicyDocument"]
    for st in doc["Statement"]:
        for action in as_list(st["Action"]):
            assert not action.lower().startswith(("iam:", "sts:", "secretsmanager:", "organizations:")), action
            assert action != "*" and not action.endswith(":*"), action
    p = type("B", (), {})()
    p.statements = doc["Statement"]
    ssm = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/"
    assert Principal.decision(p, "ssm:GetParameter", ssm + "ichiba-collector/dev/database-url") == "allow"
    assert Principal.decision(p, "ssm:GetParameter", ssm + "other-app/secret") == "implicit"


def test_application_roles_fit_inside_the_boundary(resources):
    """Every action the application template grants is allowed by the boundary, so a
    deploy with the boundary does not break a function (and CloudFormation creates every
    role of the stack with it)."""
    boundary_actions = [a for st in resources["WorkloadBoundary"]["Properties"]["PolicyDocument"]["Statement"]
                        for a in as_list(st["Action"])]
    t = transformed_template()
    from conftest import overrides

    app = Resolver(t, {**overrides("prod"), "SubnetIds": "subnet-1", "SecurityGroupIds": "sg-1",
                       "NotifyViaSns": "true", "NotifyWebhookUrlParameterName": "/ichiba-collector/prod/hook",
                       "ScheduleEnabled": "true"}).resources()
    roles = {k: r for k, r in app.items() if r["Type"] == "AWS::IAM::Role"}
    assert roles
    for name, role in roles.items():
        assert role["Properties"].get("PermissionsBoundary") == BOUNDARY, name
    docs = [r["Properties"]["PolicyDocument"] for r in app.values() if r["Type"] == "AWS::IAM::ManagedPolicy"]
    docs += [p["PolicyDocument"] for r in roles.values() for p in r["Properties"].get("Policies", [])]
    for doc in docs:
        for st in as_list(doc["Statement"]):
            if st["Effect"] != "Allow":
                continue
            for action in as_list(st["Action"]):
                assert any(fnmatch.fnmatchcase(action.lower(), b.lower()) for b in boundary_actions), action
