"""Black-box tests of `ferrite rules check|eval|test`: the built binary, run as a user would."""

import json
import os
import subprocess

from conftest import ROOT, ferrite_bin

CORPUS = os.path.join(ROOT, "rules-lang", "tests", "corpus", "cases.json")


def ferrite(*args, stdin=None):
    return subprocess.run([ferrite_bin(), *args], capture_output=True, text=True, input=stdin, timeout=60)


def eval_sql(sql, topic, payload, *extra):
    r = ferrite("rules", "eval", "--sql", sql, "--topic", topic, "--payload", payload, *extra)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_eval_prints_the_output_document_as_one_json_line():
    out = eval_sql("SELECT topic(2) AS id, temperature * 1.8 + 32 AS f FROM 'device/+/data' WHERE temperature > 30",
                   "device/7/data", '{"temperature": 31}')
    assert json.loads(out) == {"id": "7", "f": 87.8}
    assert "\n" not in out


def test_eval_prints_null_when_where_filters_the_message_out():
    assert eval_sql("SELECT * FROM 'a' WHERE t > 30", "a", '{"t": 3}') == "null"


def test_eval_prints_null_when_the_topic_does_not_match():
    assert eval_sql("SELECT * FROM 'a/+'", "b/c", '{"t": 3}') == "null"


def test_eval_reads_client_id_and_sql_version():
    assert json.loads(eval_sql("SELECT clientid() AS c FROM '#'", "x", "{}", "--client-id", "dev-1")) == {"c": "dev-1"}
    assert eval_sql("SELECT 10.0 AS r FROM '#'", "x", "{}", "--sql-version", "2015-10-08") == '{"r":10.0}'
    assert eval_sql("SELECT 10.0 AS r FROM '#'", "x", "{}") == '{"r":10}'


def test_eval_passes_binary_payloads_through_and_encodes_them(tmp_path):
    raw = tmp_path / "payload.bin"
    raw.write_bytes(b"\x01\x02binary")
    r = subprocess.run([ferrite_bin(), "rules", "eval", "--sql", "SELECT encode(*, 'base64') AS b FROM '#'",
                        "--topic", "x", "--payload-file", str(raw)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"b": "AQJiaW5hcnk="}


def test_eval_reports_sql_errors_with_line_column_and_caret():
    r = ferrite("rules", "eval", "--sql", "SELECT lenght(a) FROM 't'", "--topic", "t", "--payload", "{}")
    assert r.returncode == 1
    assert "error: unknown function `lenght`" in r.stderr
    assert "--sql:1:8" in r.stderr
    assert "^^^^^^" in r.stderr
    assert "did you mean `length`?" in r.stderr


def test_check_accepts_the_shipped_examples():
    r = ferrite("rules", "check", os.path.join(ROOT, "examples", "rules"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("5 rules in 3 files: ok")


def test_check_rejects_a_bad_file_with_rustc_style_errors(tmp_path):
    good = tmp_path / "good.sql"
    good.write_text("CREATE RULE fine AS SELECT * FROM 'a' DO log();\n")
    bad = tmp_path / "nested" / "bad.sql"
    bad.parent.mkdir()
    bad.write_text("CREATE RULE r\nAS SELECT * FROM 'a'\nDO republish(topic = 'x/${topc(2)}');\n")
    r = ferrite("rules", "check", str(tmp_path))
    assert r.returncode == 1
    assert f"{bad}:3:27" in r.stderr
    assert "unknown function `topc`" in r.stderr
    assert "1 error in 1 file; nothing would be loaded" in r.stderr


def test_check_names_missing_paths():
    r = ferrite("rules", "check", "/nonexistent/rules")
    assert r.returncode == 1
    assert "/nonexistent/rules: no such file or directory" in r.stderr


def test_test_runs_the_corpus_and_ends_with_the_summary_line():
    r = ferrite("rules", "test", CORPUS)
    assert r.returncode == 0, r.stdout
    last = r.stdout.strip().splitlines()[-1]
    with open(CORPUS) as f:
        total = len(json.load(f))
    assert last == f"{total} passed, 0 failed"


def test_test_exits_1_and_counts_failures(tmp_path):
    cases = [
        {"id": "ok", "sql": "SELECT 1 + 1 AS r FROM 't'", "sql_version": "2016-03-23", "topic": "t",
         "payload": {}, "expected": {"r": 2}},
        {"id": "wrong", "sql": "SELECT 1 + 1 AS r FROM 't'", "sql_version": "2016-03-23", "topic": "t",
         "payload": {}, "expected": {"r": 3}},
    ]
    f = tmp_path / "cases.json"
    f.write_text(json.dumps(cases))
    r = ferrite("rules", "test", str(f))
    assert r.returncode == 1
    assert "FAIL  wrong: expected {\"r\":3}, got {\"r\":2}" in r.stdout
    assert r.stdout.strip().splitlines()[-1] == "1 passed, 1 failed"


def test_rules_help_teaches_the_subcommands():
    r = ferrite("rules", "--help")
    assert r.returncode == 0
    for word in ("check", "eval", "test"):
        assert word in r.stdout


def test_test_runs_every_engine_and_both_is_the_default():
    with open(CORPUS) as f:
        total = len(json.load(f))
    for engine in ("jit", "interp", "both"):
        r = ferrite("rules", "test", CORPUS, "--engine", engine)
        assert r.returncode == 0, r.stdout
        assert r.stdout.strip().splitlines()[-1] == f"{total} passed, 0 failed"
    r = ferrite("rules", "test", CORPUS, "--engine", "cranelift")
    assert r.returncode == 2
    assert "jit, interp, both" in r.stderr


def test_check_explain_says_how_each_rule_runs(tmp_path):
    f = tmp_path / "r.sql"
    f.write_text("CREATE RULE hot AS SELECT temp, deviceId FROM 'sensors/+/data' WHERE temp > 50 DO log();\n"
                 "CREATE RULE nested AS SELECT (SELECT VALUE v FROM vs WHERE v > 1) AS big FROM 'a' DO log();\n")
    r = ferrite("rules", "check", "--explain", str(f))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == f"hot ({f}:1): fully compiled"
    assert lines[1] == f"nested ({f}:2): fully compiled"
    assert lines[-1] == "2 rules in 1 file: ok"


def test_bench_prints_messages_per_second_for_each_engine():
    for engine in ("jit", "interp"):
        r = ferrite("rules", "bench", "--sql", "SELECT temp, deviceId FROM 'sensors/+/data' WHERE temp > 50",
                    "--payload", '{"temp": 61.5, "deviceId": "d1"}', "--engine", engine, "--seconds", "0.2")
        assert r.returncode == 0, r.stderr
        rate, rest = r.stdout.split(" messages/s ", 1)
        assert int(rate) > 0
        assert f"engine {engine}, 1 thread" in rest
        assert "WHERE passes" in rest
