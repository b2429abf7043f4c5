"""The official Judge0 Python SDK (PyPI `judge0`, pinned) against runbox's /judge0 routes: `judge0.run` for each
kind of verdict, a batch of test cases, and a `wait=true` submission."""

import judge0
import pytest
from judge0 import Status


@pytest.fixture(scope="module")
def client(runbox_url):
    # The constructor reads /languages and /config_info (all keys, or the SDK refuses the server).
    return judge0.Client(f"{runbox_url}/judge0", retry_strategy=judge0.MaxWaitTime(60))


def test_the_sdk_accepts_the_server_and_resolves_its_language_aliases(client):
    assert client.version == "1.13.1"
    assert client.get_language_id(judge0.PYTHON) == 71
    assert client.is_language_supported(judge0.PYTHON)
    assert client.is_language_supported(judge0.C)
    assert client.config.max_submission_batch_size == 20


def test_accepted(client):
    s = judge0.run(client=client, source_code="print(6*7)", language=judge0.PYTHON)
    assert s.status == Status.ACCEPTED
    assert s.stdout == "42\n"
    assert s.time is not None and s.memory is not None


def test_wrong_answer(client):
    s = judge0.run(
        client=client, source_code="print(41)", language=judge0.PYTHON, test_cases=judge0.TestCase("", "42")
    )
    assert s.status == Status.WRONG_ANSWER
    assert s.stdout == "41\n"


def test_compilation_error(client):
    s = judge0.run(client=client, source_code="int main( {", language=judge0.C)
    assert s.status == Status.COMPILATION_ERROR
    assert "error" in s.compile_output
    assert s.stdout is None


def test_time_limit_exceeded(client):
    s = judge0.run(client=client, source_code="while True: pass", language=judge0.PYTHON, cpu_time_limit=0.5)
    assert s.status == Status.TIME_LIMIT_EXCEEDED


def test_runtime_errors(client):
    s = judge0.run(client=client, source_code="import sys\nprint('x')\nsys.exit(3)", language=judge0.PYTHON)
    assert s.status == Status.RUNTIME_ERROR_NZEC
    assert (s.stdout, s.exit_code) == ("x\n", 3)
    s = judge0.run(client=client, source_code="int main(void){volatile int *p = 0; return *p;}", language=judge0.C)
    assert s.status == Status.RUNTIME_ERROR_SIGSEGV
    assert s.exit_signal == 11


def test_a_batch_of_test_cases(client):
    # Several test cases: the SDK creates them with POST /submissions/batch and polls GET /submissions/batch.
    cases = [("1", "2"), ("2", "4"), ("3", "7"), ("5", "10")]
    results = judge0.run(
        client=client,
        source_code="print(int(input()) * 2)",
        language=judge0.PYTHON,
        test_cases=cases,
        memory_limit=128000.0,
        cpu_time_limit=2.0,
    )
    assert [r.status for r in results] == [
        Status.ACCEPTED,
        Status.ACCEPTED,
        Status.WRONG_ANSWER,
        Status.ACCEPTED,
    ]
    assert [r.stdout for r in results] == ["2\n", "4\n", "6\n", "10\n"]


def test_wait_true_answers_with_the_finished_record(client):
    # The SDK itself always polls; wait=true is sent through its own HTTP client and read by its own model.
    body = judge0.Submission(source_code="print(input()[::-1])", language=judge0.PYTHON, stdin="abc").as_body(client)
    response = client.client.post(
        "/submissions",
        params={"base64_encoded": "true", "wait": "true", "fields": "*"},
        json=body,
        headers=client.headers,
    )
    assert response.status_code == 201
    s = judge0.Submission()
    s.set_attributes(response.json())
    assert s.status == Status.ACCEPTED
    assert s.stdout == "cba\n"
    # It is kept, and can be fetched again by its token.
    again = client.get_submission(judge0.Submission(token=s.token))
    assert again.stdout == "cba\n"


def test_the_sdk_authenticates_with_judge0s_x_auth_token(keyed_runbox):
    from conftest import KEY

    with pytest.raises(RuntimeError, match="Authentication failed"):
        judge0.Client(f"{keyed_runbox}/judge0")
    client = judge0.Client(f"{keyed_runbox}/judge0", headers={"X-Auth-Token": KEY})
    s = judge0.run(client=client, source_code="print('keyed')", language=judge0.PYTHON)
    assert (s.status, s.stdout) == (Status.ACCEPTED, "keyed\n")
