"""The DynamoDB table, shaped by ``handler.schema`` so the store and the stack cannot drift."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pulumi
import pulumi_aws as aws

from handler import schema


def _key(key_schema: Iterable[Mapping[str, str]], key_type: str) -> str:
    return next(k["AttributeName"] for k in key_schema if k["KeyType"] == key_type)


def table_attributes() -> list[aws.dynamodb.TableAttributeArgs]:
    return [
        aws.dynamodb.TableAttributeArgs(name=a["AttributeName"], type=a["AttributeType"])
        for a in schema.ATTRIBUTE_DEFINITIONS
    ]


def global_secondary_indexes() -> list[aws.dynamodb.TableGlobalSecondaryIndexArgs]:
    return [
        aws.dynamodb.TableGlobalSecondaryIndexArgs(
            name=index["IndexName"],
            key_schemas=[
                aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(
                    attribute_name=k["AttributeName"], key_type=k["KeyType"]
                )
                for k in index["KeySchema"]
            ],
            projection_type=index["Projection"]["ProjectionType"],
            non_key_attributes=index["Projection"].get("NonKeyAttributes"),
        )
        for index in schema.GLOBAL_SECONDARY_INDEXES
    ]


def create_table(
    resource_name: str, table_name: str, protect: bool, parent: pulumi.Resource
) -> aws.dynamodb.Table:
    """On-demand, encrypted, recoverable; ``protect`` guards it in Pulumi and in AWS."""
    return aws.dynamodb.Table(
        resource_name,
        name=table_name,
        billing_mode="PAY_PER_REQUEST",
        attributes=table_attributes(),
        hash_key=_key(schema.KEY_SCHEMA, "HASH"),
        range_key=_key(schema.KEY_SCHEMA, "RANGE"),
        global_secondary_indexes=global_secondary_indexes(),
        ttl=aws.dynamodb.TableTtlArgs(attribute_name=schema.TTL_ATTRIBUTE, enabled=True),
        point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
        server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(enabled=True),
        deletion_protection_enabled=protect,
        opts=pulumi.ResourceOptions(parent=parent, protect=protect),
    )
