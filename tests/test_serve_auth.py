"""API keys, the binding rule and `featpipe serve`'s start-up errors."""

import pytest
from click.testing import CliRunner

from featpipe.cli import cli
from featpipe.serve.auth import KeyChecker, check_binding, is_loopback, read_api_keys, KeyFileError
from serve_support import make_service, run_async, running_client, write_image_files

KEY = "s3cret-key-for-tests"


def test_keys_guard_everything_but_the_health_probes(runs, tmp_path):
    image = write_image_files(tmp_path, n=2)[1]

    async def scenario():
        service = make_service([runs["raw+svm"]], keys=[KEY, "another-key"])
        async with running_client(service) as client:
            answers = {path: (await client.get(path)).status_code
                       for path in ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready",
                                    "/metrics", "/docs", "/openapi.json", "/v1/models", "/v2/models/raw+svm")}
            page = await client.get("/")
            wrong = await client.get("/v1/models", headers={"Authorization": "Bearer nope"})
            right = await client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"})
            second = await client.post("/v1/models/raw+svm/predict", content=image.read_bytes(),
                                       headers={"Authorization": "Bearer another-key", "Content-Type": "image/jpeg"})
            refused_sign_in = await client.post("/login", data={"key": "nope"})
            signed_in = await client.post("/login", data={"key": KEY})
            cookie = signed_in.headers["set-cookie"]
            with_cookie = await client.get("/docs")
        return answers, page, wrong, right, second, refused_sign_in, signed_in, cookie, with_cookie

    answers, page, wrong, right, second, refused_sign_in, signed_in, cookie, with_cookie = run_async(scenario)
    assert answers == {"/healthz": 200, "/readyz": 200, "/v2/health/live": 200, "/v2/health/ready": 200,
                       "/metrics": 401, "/docs": 401, "/openapi.json": 401, "/v1/models": 401,
                       "/v2/models/raw+svm": 401}
    assert page.status_code == 401 and 'name="key"' in page.text and "raw+svm" not in page.text
    assert wrong.status_code == 401 and wrong.json()["error"].startswith("missing or wrong API key")
    assert right.status_code == 200 and second.status_code == 200
    assert refused_sign_in.status_code == 401
    assert signed_in.status_code == 303
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    assert with_cookie.status_code == 200


def test_key_checker_compares_every_key_in_constant_time(monkeypatch):
    import hmac

    compared = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: compared.append((a, b)) or real(a, b))
    checker = KeyChecker(["first", "second", "third"])
    assert checker.matches("first")
    assert len(compared) == 3, "stopped at the first match"
    assert not checker.matches("firs") and not checker.matches("") and not checker.matches(None)
    assert KeyChecker([]).allows({}, {})
    assert not checker.allows({"authorization": "Basic first"}, {})
    assert checker.allows({"authorization": "bearer second"}, {})


def test_key_file_and_binding_rules(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# operators\nalpha\n\n  beta  \n")
    assert read_api_keys(keys) == ["alpha", "beta"]
    (tmp_path / "empty").write_text("# nothing\n")
    with pytest.raises(KeyFileError, match="holds no key"):
        read_api_keys(tmp_path / "empty")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    with pytest.raises(KeyFileError, match="--api-key-file"):
        check_binding("0.0.0.0", [], insecure=False)
    check_binding("0.0.0.0", [], insecure=True)
    check_binding("0.0.0.0", ["alpha"], insecure=False)


@pytest.mark.parametrize("case", ["missing", "duplicate", "exposed", "bad_size", "not_a_run"])
def test_start_up_errors_are_one_line_and_status_2(runs, tmp_path, case):
    arguments = {
        "missing": [str(tmp_path / "nowhere")],
        "duplicate": [str(runs["raw+svm"]), f"raw+svm={runs['hog+color+softmax']}"],
        "exposed": [str(runs["raw+svm"]), "--host", "0.0.0.0"],
        "bad_size": [str(runs["raw+svm"]), "--max-image-bytes", "lots"],
        "not_a_run": [str(tmp_path)],
    }[case]
    result = CliRunner().invoke(cli, ["serve", *arguments, "--port", "1"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("featpipe: error:"), result.output
    assert "Traceback" not in result.output
