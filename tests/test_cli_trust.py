"""The command line at the trust boundary: memory budget, --max-pixels, --strict with a cache, stage keys
that follow the code, stores made with other parameters, run folders that never replace each other,
spec checks before work, Ctrl-C while workers start, and a light --help."""

import json
import os
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from featpipe.cli import cli
from featpipe.memory_budget import MemoryBudgetError, default_budget, machine_memory, parse_size
from featpipe.metrics_schema import STAGE_NAMES
from featpipe.pipeline import stages


def invoke(*args):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def _one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("featpipe: error: ") and result.stderr.count("\n") == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def _folder(root, per_class=10, size=20, broken=False):
    rng = np.random.default_rng(3)
    for label in range(3):
        (root / f"class{label}").mkdir(parents=True)
        for index in range(per_class):
            pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
            pixels[..., label] = 255
            Image.fromarray(pixels).save(root / f"class{label}" / f"{index}.png")
    if broken:
        data = (root / "class0" / "0.png").read_bytes()
        (root / "class0" / "truncated.png").write_bytes(data[: len(data) // 2])
    return root


@pytest.mark.parametrize("text, expected", [("256M", 256 * 2**20), ("4G", 4 * 2**30), ("1.5T", int(1.5 * 2**40)),
                                            ("512MiB", 512 * 2**20), ("4g", 4 * 2**30), ("1000", 1000)])
def test_sizes_are_read_in_powers_of_1024(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["lots", "0", "-1G", "4 GB of it", ""])
def test_bad_sizes_are_refused(text):
    with pytest.raises(MemoryBudgetError):
        parse_size(text)


def test_default_budget_is_half_the_machine():
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < machine_memory() <= total
    assert default_budget() == machine_memory() // 2


def test_a_huge_image_size_is_refused_before_anything_is_allocated(tmp_path):
    started = time.perf_counter()
    result = invoke("run", "raw+svm", "--image-size", 100000, "--out", tmp_path / "run", "--cache-dir", tmp_path / "c")
    assert time.perf_counter() - started < 20
    _one_line_error(result, "2,000 images of 100000x100000", "over --memory-budget", "`featpipe extract` streams",
                    "0 images of that size")
    assert not (tmp_path / "run").exists()


def test_the_refusal_says_what_fits(tmp_path, small_npz):
    # 240 images of 32x32x3 = 737,280 bytes; 512K fits 170 of them, or --image-size 26 for all
    result = invoke("run", "raw+svm", "--data", small_npz, "--memory-budget", "512K", "--out", tmp_path / "run",
                    "--cache-dir", tmp_path / "cache")
    _one_line_error(result, "240 images of 32x32", "720 KiB, over --memory-budget 512 KiB",
                    "170 images of that size or --image-size 26 for all of them")
    fits = invoke("run", "raw+svm", "--data", small_npz, "--memory-budget", "1M", "--out", tmp_path / "run",
                  "--cache-dir", tmp_path / "cache", "--jobs", 1)
    assert fits.exit_code == 0, fits.output


def test_a_bad_memory_budget_is_one_line(tmp_path):
    _one_line_error(invoke("run", "raw+svm", "--memory-budget", "lots", "--out", tmp_path / "run"),
                    "is not a size like 256M")


def test_max_pixels_skips_large_files_in_a_run(tmp_path):
    folder = _folder(tmp_path / "images")
    Image.fromarray(np.zeros((200, 200, 3), np.uint8)).save(folder / "class1" / "large.png")
    result = invoke("run", "raw+svm", "--data", folder, "--max-pixels", 20 * 20, "--out", tmp_path / "run",
                    "--cache-dir", tmp_path / "cache", "--jobs", 1)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["dataset"]["skipped"] == 1
    again = invoke("run", "raw+svm", "--data", folder, "--out", tmp_path / "run2", "--cache-dir", tmp_path / "cache",
                   "--jobs", 1)
    assert json.loads((tmp_path / "run2" / "metrics.json").read_text())["dataset"]["skipped"] == 0
    assert "(cached)" not in again.stderr.split("load")[1].split(",")[0]  # another limit is another load


@pytest.mark.parametrize("second_spec", ["raw+svm", "raw+softmax"])
def test_strict_after_a_cached_load_fails_as_a_fresh_run_does(tmp_path, second_spec):
    folder = _folder(tmp_path / "images", broken=True)
    cache = tmp_path / "cache"
    fresh = invoke("run", "raw+svm", "--data", folder, "--strict", "--out", tmp_path / "fresh",
                   "--cache-dir", tmp_path / "other-cache", "--jobs", 1)
    _one_line_error(fresh, "cannot read image", "truncated.png")
    first = invoke("run", "raw+svm", "--data", folder, "--out", tmp_path / "first", "--cache-dir", cache, "--jobs", 1)
    assert first.exit_code == 0, first.output
    cached = invoke("run", second_spec, "--data", folder, "--strict", "--out", tmp_path / "second",
                    "--cache-dir", cache, "--jobs", 1)
    assert cached.exit_code == 2 and cached.stderr == fresh.stderr
    assert not (tmp_path / "second").exists()


def test_stage_keys_follow_the_code_version(tmp_path, small_npz, monkeypatch):
    args = ("run", "raw+svm", "--data", small_npz, "--cache-dir", tmp_path / "cache", "--jobs", 1)
    assert invoke(*args, "--out", tmp_path / "first").exit_code == 0
    assert invoke(*args, "--out", tmp_path / "second").stderr.count("(cached)") == len(STAGE_NAMES)
    monkeypatch.setitem(stages.STAGE_FORMATS, "load", stages.STAGE_FORMATS["load"] + 1)
    assert invoke(*args, "--out", tmp_path / "third").stderr.count("(cached)") == 0
    monkeypatch.setattr("featpipe.__version__", "99.0")
    assert invoke(*args, "--out", tmp_path / "fourth").stderr.count("(cached)") == 0


def test_a_store_made_with_other_parameters_is_refused_naming_the_first_difference(tmp_path, small_npz):
    store = tmp_path / "store"
    assert invoke("extract", "hog+color", "--data", small_npz, "--out", store, "--jobs", 1, "--quiet").exit_code == 0
    pipeline = os.path.join(os.path.dirname(__file__), "..", "pipelines", "hog+color+svm.toml")
    result = invoke("run", pipeline, "--data", store, "--out", tmp_path / "run", "--cache-dir", tmp_path / "c")
    _one_line_error(result, "feature store", "has hog pixels_per_cell=[8, 8]",
                    "asks for pixels_per_cell=[[4, 4], [8, 8]]")
    assert not (tmp_path / "run").exists()
    same = invoke("run", "hog+color+svm2", "--data", store, "--out", tmp_path / "run", "--cache-dir", tmp_path / "c")
    assert same.exit_code == 0, same.output


def test_an_existing_out_is_refused_and_left_as_it_was(tmp_path, small_npz):
    args = ("run", "raw+svm", "--data", small_npz, "--cache-dir", tmp_path / "cache", "--jobs", 1,
            "--out", tmp_path / "run")
    assert invoke(*args).exit_code == 0
    before = (tmp_path / "run" / "metrics.json").read_bytes()
    _one_line_error(invoke(*args), "exists", "choose another --out")
    assert (tmp_path / "run" / "metrics.json").read_bytes() == before
    (tmp_path / "writing").mkdir()  # what a run that is still writing holds: its reserved, empty folder
    _one_line_error(invoke(*args[:-1], tmp_path / "writing"), "exists")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o755), (0o077, 0o700), (0o002, 0o775)])
def test_run_folder_mode_follows_the_umask(tmp_path, small_npz, umask, mode):
    old = os.umask(umask)
    try:
        result = invoke("run", "raw+svm", "--data", small_npz, "--cache-dir", tmp_path / "cache", "--jobs", 1,
                        "--out", tmp_path / "run")
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == mode


def test_compare_checks_every_spec_before_running_any(tmp_path):
    result = invoke("compare", "raw+svm", "foo+svm", "--out", tmp_path / "report", "--cache-dir", tmp_path / "cache")
    _one_line_error(result, "unknown feature 'foo'")
    assert not (tmp_path / "report").exists() and not (tmp_path / "cache").exists()


def test_compare_refuses_an_existing_report_folder(tmp_path):
    (tmp_path / "report").mkdir()
    _one_line_error(invoke("compare", "raw+svm", "--out", tmp_path / "report"), "exists")


@pytest.mark.parametrize("jobs", [0, -2])
def test_extract_with_no_processes_is_one_clear_line(tmp_path, small_npz, jobs):
    result = invoke("extract", "raw", "--data", small_npz, "--out", tmp_path / "store", "--jobs", jobs)
    _one_line_error(result, f"{jobs} is not a number of processes: give -1 (every core) or 1 or more")
    assert not (tmp_path / "store").exists()


def test_run_help_shows_a_single_percent_sign():
    text = invoke("run", "--help").output
    assert "10%" in text and "%%" not in text


def _modules_after(arguments):
    code = ("import sys\nfrom featpipe.cli import cli\n"
            f"try:\n    cli.main({arguments!r}, standalone_mode=False)\nexcept BaseException:\n    pass\n"
            "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})))")
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(finished.stdout.splitlines()[-1].split())


@pytest.mark.parametrize("arguments", [["--help"], ["run", "nothing+svm"], ["compare", "raw+svm", "nothing+svm",
                                                                            "--out", "/nonexistent/report"]])
def test_help_and_spec_errors_import_neither_numpy_nor_sklearn(arguments):
    loaded = _modules_after(arguments)
    assert "click" in loaded and not loaded & {"numpy", "sklearn"}


def test_ctrl_c_while_workers_start_is_one_line(tmp_path, small_npz):
    job = subprocess.Popen(
        [sys.executable, "-m", "featpipe.cli", "extract", "raw", "--data", str(small_npz), "--out",
         str(tmp_path / "store"), "--jobs", "2", "--chunk-size", "10", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    time.sleep(1.0)  # the spawned worker is still importing
    os.killpg(job.pid, signal.SIGINT)
    _, stderr = job.communicate(timeout=120)
    assert "Traceback" not in stderr and stderr.count("\n") <= 1, stderr
    assert job.returncode in (0, 130, -signal.SIGINT), stderr
    if job.returncode != 0:
        assert stderr.startswith("featpipe: interrupted; finished shards are kept")


def test_extract_refuses_chunks_that_do_not_fit_and_says_what_to_lower(tmp_path):
    folder = _folder(tmp_path / "images")
    result = invoke("extract", "raw", "--data", folder, "--out", tmp_path / "store", "--jobs", 1,
                    "--image-size", 1000, "--chunk-size", 100, "--memory-budget", "64M")
    _one_line_error(result, "extraction (1 process(es) x 30 images a chunk)", "images of 1000x1000",
                    "22 images of that size", "lower --chunk-size or --jobs")
    assert not (tmp_path / "store").exists()


def test_extract_refuses_an_in_memory_data_set_that_does_not_fit(tmp_path, small_npz):
    result = invoke("extract", "raw", "--data", small_npz, "--out", tmp_path / "store", "--jobs", 1,
                    "--image-size", 512, "--memory-budget", "64M")
    _one_line_error(result, "240 images of 512x512", "extract from a folder of image files")
