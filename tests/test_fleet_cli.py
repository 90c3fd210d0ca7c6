"""Every operation of the fleet indexing issue through the AWS CLI, as an operator types
them: indexing configuration, indices, search and aggregations, dynamic groups, groups for
a thing, fleet metrics, v2 logging and tags. Each answer is checked, not just the exit."""

import json
import os
import shutil
import subprocess

import pytest

from test_jobs import iot


def cli(node, tmp_path, *args):
    """`aws iot ARGS --endpoint-url ...`: its JSON answer ({} when it prints nothing)."""
    env = dict(os.environ, AWS_SHARED_CREDENTIALS_FILE=os.path.join(node.data_dir, "credentials"),
               AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=str(tmp_path / "none"))
    out = subprocess.run(["aws", "iot", *args, "--endpoint-url", f"http://{node.host}:{node.http_port}"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"aws iot {' '.join(args)}: {out.stderr}"
    return json.loads(out.stdout) if out.stdout.strip() else {}


def test_every_fleet_operation_works_from_the_aws_cli(node, tmp_path):
    if shutil.which("aws") is None:
        pytest.skip("the aws CLI is not installed")
    c = iot(node)
    for n in range(4):
        c.create_thing(thingName=f"cli-{n}", attributePayload={"attributes": {"fw": "1.0" if n % 2 else "2.0",
                                                                           "floor": str(n)}})
    c.create_thing_group(thingGroupName="cli-static")
    run = lambda *a: cli(node, tmp_path, *a)  # noqa: E731
    run("update-indexing-configuration", "--thing-indexing-configuration",
        json.dumps({"thingIndexingMode": "REGISTRY", "customFields": [{"name": "attributes.floor", "type": "Number"}]}),
        "--thing-group-indexing-configuration", json.dumps({"thingGroupIndexingMode": "ON"}))
    got = run("get-indexing-configuration")
    assert got["thingIndexingConfiguration"]["thingIndexingMode"] == "REGISTRY"
    assert run("list-indices")["indexNames"] == ["AWS_Things", "AWS_ThingGroups"]
    assert run("describe-index", "--index-name", "AWS_Things")["schema"] == "REGISTRY"
    found = run("search-index", "--query-string", "attributes.fw:1.0")["things"]
    assert sorted(t["thingName"] for t in found) == ["cli-1", "cli-3"]
    stats = run("get-statistics", "--query-string", "thingName:cli-*", "--aggregation-field", "attributes.floor")
    assert (stats["statistics"]["count"], stats["statistics"]["sum"]) == (4, 6)
    card = run("get-cardinality", "--query-string", "thingName:cli-*", "--aggregation-field", "attributes.fw")
    assert card["cardinality"] == 2
    pct = run("get-percentiles", "--query-string", "thingName:cli-*", "--aggregation-field", "attributes.floor",
              "--percents", "50")
    assert pct["percentiles"] == [{"percent": 50.0, "value": 1.5}]
    buckets = run("get-buckets-aggregation", "--query-string", "thingName:cli-*", "--aggregation-field",
                  "attributes.fw", "--buckets-aggregation-type", json.dumps({"termsAggregation": {"maxBuckets": 5}}))
    assert sorted((b["keyValue"], b["count"]) for b in buckets["buckets"]) == [("1.0", 2), ("2.0", 2)]
    made = run("create-dynamic-thing-group", "--thing-group-name", "cli-dynamic", "--query-string", "attributes.fw:2.0")
    assert made["queryString"] == "attributes.fw:2.0"
    assert run("update-dynamic-thing-group", "--thing-group-name", "cli-dynamic", "--thing-group-properties", "{}",
               "--query-string", "attributes.fw:1.0")["version"] == 2
    run("update-thing-groups-for-thing", "--thing-name", "cli-0", "--thing-groups-to-add", "cli-static")
    assert c.list_things_in_thing_group(thingGroupName="cli-static")["things"] == ["cli-0"]
    run("delete-dynamic-thing-group", "--thing-group-name", "cli-dynamic")
    metric = run("create-fleet-metric", "--metric-name", "cli-floor", "--query-string", "thingName:cli-*",
                 "--aggregation-type", json.dumps({"name": "Statistics", "values": ["average"]}), "--period", "60",
                 "--aggregation-field", "attributes.floor")
    assert metric["metricName"] == "cli-floor"
    assert run("describe-fleet-metric", "--metric-name", "cli-floor")["version"] == 1
    assert [m["metricName"] for m in run("list-fleet-metrics")["fleetMetrics"]] == ["cli-floor"]
    run("update-fleet-metric", "--metric-name", "cli-floor", "--index-name", "AWS_Things", "--period", "120")
    assert run("describe-fleet-metric", "--metric-name", "cli-floor")["period"] == 120
    run("set-v2-logging-options", "--default-log-level", "ERROR", "--role-arn", "arn:aws:iam::000000000000:role/l")
    assert run("get-v2-logging-options")["defaultLogLevel"] == "ERROR"
    run("set-v2-logging-level", "--log-target", "targetType=CLIENT_ID,targetName=cli-0", "--log-level", "DEBUG")
    levels = run("list-v2-logging-levels")["logTargetConfigurations"]
    assert {"logTarget": {"targetType": "CLIENT_ID", "targetName": "cli-0"}, "logLevel": "DEBUG"} in levels
    run("delete-v2-logging-level", "--target-type", "CLIENT_ID", "--target-name", "cli-0")
    assert run("list-v2-logging-levels")["logTargetConfigurations"] == []
    group_arn = c.describe_thing_group(thingGroupName="cli-static")["thingGroupArn"]
    run("tag-resource", "--resource-arn", group_arn, "--tags", "Key=env,Value=prod", "Key=team,Value=a")
    run("untag-resource", "--resource-arn", group_arn, "--tag-keys", "team")
    assert run("list-tags-for-resource", "--resource-arn", group_arn)["tags"] == [{"Key": "env", "Value": "prod"}]
    run("delete-fleet-metric", "--metric-name", "cli-floor")
    assert run("list-fleet-metrics")["fleetMetrics"] == []
