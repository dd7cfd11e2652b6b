"""The four secrets as SSM SecureString parameters, encrypted with the stack's KMS key, and
the free texts of the settings (system prompt, privacy page, welcome, ice breakers) as String
parameters beside them.

The function gets only the parameter names; it reads the values with one
``ssm:GetParameters`` call at cold start (see ``handler/secrets.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from .naming import Names


@dataclass(frozen=True)
class SecretStore:
    key_arn: pulumi.Output[str]
    parameters: dict[str, aws.ssm.Parameter]  # by handler secret name

    @property
    def parameter_names(self) -> dict[str, pulumi.Output[str]]:
        return {secret: p.name for secret, p in self.parameters.items()}


def key_policy(partition: str, account_id: str) -> dict:
    """The account administers the key (KMS's default policy), and CloudWatch may use it to
    publish alarms to the owner's topic, which it encrypts: an AWS managed key would not let
    it."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministers",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "AlarmsPublishToTheOwnersTopic",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            },
        ],
    }


def create_key(resource_name: str, names: Names, parent: pulumi.Resource) -> aws.kms.Key:
    """A customer-managed key, rotated yearly, for this stack's secrets and its owner's topic."""
    invoke = pulumi.InvokeOptions(parent=parent)
    policy = pulumi.Output.all(
        aws.get_partition_output(opts=invoke).partition,
        aws.get_caller_identity_output(opts=invoke).account_id,
    ).apply(lambda parts: json.dumps(key_policy(*parts)))
    key = aws.kms.Key(
        resource_name,
        description=f"Encrypts the secrets and the owner's topic of {names.prefix}",
        enable_key_rotation=True,
        policy=policy,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    aws.kms.Alias(
        f"{resource_name}-alias",
        name=names.key_alias,
        target_key_id=key.key_id,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return key


def create_secret_store(
    resource_name: str,
    names: Names,
    values: Mapping[str, pulumi.Input[str]],
    key_arn: pulumi.Input[str] | None,
    parent: pulumi.Resource,
) -> SecretStore:
    """One SecureString per secret; ``key_arn`` None creates the stack's own key."""
    if key_arn is None:
        key_arn = create_key(f"{resource_name}-key", names, parent).arn
    arn = pulumi.Output.from_input(key_arn)
    parameters = {
        secret: aws.ssm.Parameter(
            f"{resource_name}-{secret.replace('_', '-')}",
            name=names.parameter(secret),
            type="SecureString",
            key_id=arn,
            value=pulumi.Output.secret(value),
            description=f"{secret} of {names.prefix}",
            opts=pulumi.ResourceOptions(parent=parent),
        )
        for secret, value in values.items()
    }
    return SecretStore(key_arn=arn, parameters=parameters)


def create_text_parameter(
    resource_name: str, names: Names, text_name: str, text: str, parent: pulumi.Resource
) -> aws.ssm.Parameter:
    """A free text of the settings (the system prompt, the owner's privacy page, the welcome,
    the ice breakers as a JSON list), kept beside the secrets rather than in the environment
    (Lambda's 4 KB, which counts a non-Latin character as up to 12 JSON-escaped bytes): a
    plain String the handler reads in the same call as the secrets. ``text_name`` is its
    handler name (``system_prompt`` -> ``/<project>/<stack>/system-prompt``). Intelligent
    tiering makes a text over 4 KB an advanced parameter (up to 8 KB, $0.05 a month)."""
    return aws.ssm.Parameter(
        resource_name,
        name=names.parameter(text_name),
        type="String",
        tier="Intelligent-Tiering",
        value=text,
        description=f"{text_name.replace('_', ' ')} of {names.prefix}",
        opts=pulumi.ResourceOptions(parent=parent),
    )
