"""template.yaml and `oauthctl init` must create the same table: key schema, attribute types,
billing mode and TTL attribute (SPEC §7). The table here was made by `oauthctl init` against
moto when the stack started."""

from pathlib import Path

import yaml

from conftest import ROOT, TABLE_NAME


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that accepts CloudFormation's short-form intrinsics (!Ref, !Sub, …)."""


def _intrinsic(loader, tag_suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return {tag_suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {tag_suffix: loader.construct_sequence(node)}
    return {tag_suffix: loader.construct_mapping(node)}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def template_table() -> dict:
    template = yaml.load(Path(ROOT, "template.yaml").read_text(), Loader=_CfnLoader)
    tables = [r for r in template["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table"]
    assert len(tables) == 1, "exactly one table"
    return tables[0]["Properties"]


def test_oauthctl_init_and_the_template_create_the_same_table(stack):
    # GIVEN the table oauthctl init created, and the template's table
    dynamodb = stack.backend.client("dynamodb", via_proxy=False)
    created = dynamodb.describe_table(TableName=TABLE_NAME)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=TABLE_NAME)["TimeToLiveDescription"]
    declared = template_table()

    # THEN the key schema and attribute types agree
    def keys(schema):
        return sorted((k["AttributeName"], k["KeyType"]) for k in schema)

    def attributes(definitions):
        return sorted((a["AttributeName"], a["AttributeType"]) for a in definitions)

    assert keys(created["KeySchema"]) == keys(declared["KeySchema"]) == [("pk", "HASH")]
    assert attributes(created["AttributeDefinitions"]) == attributes(declared["AttributeDefinitions"])
    # AND neither has indexes
    assert not created.get("GlobalSecondaryIndexes") and not declared.get("GlobalSecondaryIndexes")
    assert not created.get("LocalSecondaryIndexes") and not declared.get("LocalSecondaryIndexes")
    # AND both bill on demand
    assert created["BillingModeSummary"]["BillingMode"] == declared["BillingMode"] == "PAY_PER_REQUEST"
    # AND both expire items by the same TTL attribute
    assert ttl["TimeToLiveStatus"] in ("ENABLED", "ENABLING")
    assert ttl["AttributeName"] == declared["TimeToLiveSpecification"]["AttributeName"] == "ttl"
    assert declared["TimeToLiveSpecification"]["Enabled"] is True
