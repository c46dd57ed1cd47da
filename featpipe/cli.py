"""The ``featpipe`` command: run, compare, extract, predict, serve, pipelines, datasets, cache.

Bad input of any kind (an unknown name, a missing or empty folder, a corrupt
image, an unwritable cache: a :class:`featpipe.errors.FeatpipeError`, or an
operating-system error about the user's files) ends with one ``featpipe:
error: ...`` line on stderr and exit status 2; an interrupted run ends with
status 130. Neither leaves a half-written run folder behind. Anything else is
a bug: one ``featpipe: internal error: ...`` line and status 1, with the
traceback above it when the environment sets ``FEATPIPE_DEBUG=1``. When the
reader of the output goes away (``featpipe pipelines | head -1``) the command
ends silently with status 1.
"""

import errno
import io
import json
import os
import sys
import traceback
import warnings
from pathlib import Path

import click

from featpipe.datasets.options import DEFAULT_MAX_PIXELS
from featpipe.errors import FeatpipeError

STATUS_BAD_INPUT = 2
STATUS_INTERNAL_ERROR = 1
STATUS_INTERRUPTED = 130

_FILE_ERRNOS = frozenset({
    errno.ENOENT, errno.EACCES, errno.EPERM, errno.EEXIST, errno.EISDIR, errno.ENOTDIR, errno.ENOSPC,
    errno.EDQUOT, errno.EROFS, errno.ENAMETOOLONG, errno.ELOOP, errno.EMFILE,
})
"""errno values that describe the user's files or disk rather than a fault of featpipe."""


_INTERRUPTED = {
    "run": "no run folder was written",
    "compare": "the report may be missing or partial; the same command again reuses every cached stage",
    "extract": "finished shards are kept; run the same command again to resume",
    "predict": "shards already scored are kept; run the same command again to resume",
}
"""What an interrupted command leaves behind, said after "interrupted;"."""


class _OneLineErrors(click.Group):
    """A command group that turns bad input into one line and a status code."""

    def main(self, args=None, prog_name=None, standalone_mode=True, **extra):
        """Run the command; usage errors too end in one ``featpipe: error:`` line."""
        try:
            status = super().main(args, prog_name, standalone_mode=False, **extra)
        except click.exceptions.ClickException as error:
            click.echo(f"featpipe: error: {' '.join(error.format_message().split())}", err=True)
            sys.exit(error.exit_code)
        except click.exceptions.Abort:
            click.echo("featpipe: interrupted", err=True)
            sys.exit(STATUS_INTERRUPTED)
        sys.exit(status if isinstance(status, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo(f"featpipe: interrupted; {_INTERRUPTED.get(ctx.invoked_subcommand, 'nothing was written')}",
                       err=True)
            ctx.exit(STATUS_INTERRUPTED)
        except BrokenPipeError:
            _silence_stdout()
            ctx.exit(STATUS_INTERNAL_ERROR)
        except Exception as error:
            if not _is_bad_input(error):
                _report_internal_error(error)
                ctx.exit(STATUS_INTERNAL_ERROR)
            click.echo(f"featpipe: error: {' '.join(str(error).split())}", err=True)
            ctx.exit(STATUS_BAD_INPUT)


def _silence_stdout():
    """Point stdout at /dev/null after its reader went away (``featpipe ... | head``).

    Nothing is reported: the output was not wanted any more. Without this, flushing stdout
    at exit would raise again (the recipe of Python's ``signal`` documentation).
    """
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


def _is_bad_input(error):
    """Whether ``error`` is the user's (exit 2) rather than a bug in featpipe (exit 1).

    A :class:`FeatpipeError` is bad input by definition. An ``OSError`` is when it
    names a file or carries an errno about files and disks (missing, not allowed,
    disk full, ...): a folder that cannot be read or written is the user's to fix.
    """
    if isinstance(error, FeatpipeError):
        return True
    return isinstance(error, OSError) and (error.filename is not None or error.errno in _FILE_ERRNOS)


def _report_internal_error(error):
    """One ``featpipe: internal error:`` line; the traceback above it when FEATPIPE_DEBUG=1."""
    debug = os.environ.get("FEATPIPE_DEBUG", "") not in ("", "0")
    if debug:
        traceback.print_exception(error, file=sys.stderr)
    hint = "" if debug else " (set FEATPIPE_DEBUG=1 for the traceback)"
    click.echo(f"featpipe: internal error: {type(error).__name__}: {' '.join(str(error).split())}{hint}",
               err=True)


class _MemorySize(click.ParamType):
    """A size written like 256M or 4G, in bytes."""

    name = "SIZE"

    def convert(self, value, param, ctx):
        from featpipe.memory_budget import MemoryBudgetError, parse_size

        try:
            return value if isinstance(value, int) else parse_size(value)
        except MemoryBudgetError as error:
            self.fail(str(error), param, ctx)


def _max_pixels_option():
    return click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS, show_default=True,
                        help="Skip image files whose header announces more pixels, before decoding.")


def _check_jobs(jobs):
    """Refuse 0 or fewer than -1 processes in our words, before joblib says it in its own."""
    if jobs is not None and (jobs == 0 or jobs < -1):
        raise click.BadParameter(f"{jobs} is not a number of processes: give -1 (every core) or 1 or more",
                                 param_hint="'--jobs'")


def _run_options(command):
    """Options shared by ``run`` and ``compare``."""
    options = [
        click.option("--data", default=None,
                     help="builtin (default), cifar10, an image folder, a .npz file or a feature store."),
        click.option("--image-size", type=click.IntRange(min=1), default=None,
                     help="Side in pixels every image is resized to (default 32)."),
        click.option("--cache-dir", type=click.Path(), default=None,
                     help="Cache root (default: the user cache directory)."),
        click.option("--no-cache", is_flag=True, help="Recompute every stage; cache nothing."),
        click.option("--jobs", "n_jobs", type=int, default=-1, show_default=True,
                     help="Extraction worker processes (-1: all cores)."),
        click.option("--chunk-size", type=click.IntRange(min=1), default=None,
                     help="Images per extraction task."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seed of the validation split and of every estimator."),
        click.option("--val-size", type=click.IntRange(min=0), default=None,
                     help="Validation images held out from train (default 1,000, or 10% when smaller)."),
        click.option("--strict", is_flag=True, help="Stop at the first unreadable image."),
        _max_pixels_option(),
        click.option("--memory-budget", type=_MemorySize(), default=None, metavar="SIZE",
                     help="Memory the images and training features may take, e.g. 256M or 4G (default: half "
                          "the machine's memory); features over it are read from a feature store shard by "
                          "shard (images are extracted into one under the cache first)."),
        click.option("--search", is_flag=True,
                     help="Search learning rate x regularization on the validation split first."),
        click.option("--quiet", is_flag=True, help="No progress bars or stage summary."),
        click.option("--backend", type=click.Choice(["local", "dask"]), default="local", show_default=True,
                     help="dask starts a dask.distributed LocalCluster of --jobs workers: extraction runs "
                          "on it, and on a feature store the heads' losses are summed on its workers."),
        click.option("--scheduler", default=None, help="Address of a Dask scheduler, e.g. tcp://HOST:8786."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _run_options_from(params):
    """The RunOptions of a ``run`` or ``compare`` command's parameters."""
    from featpipe.pipeline.options import RunOptions, options_from

    _check_jobs(params["n_jobs"])
    return options_from(RunOptions, params, use_cache=not params["no_cache"])


def _run_one(spec, data, options, out):
    from featpipe.pipeline.run import run_pipeline

    result = run_pipeline(spec, data, options=options, out=out)
    metrics = result.metrics
    if not options.quiet:
        stage_text = ", ".join(
            f"{stage} {seconds:.2f}s{' (cached)' if metrics['cache_hits'][stage] else ''}"
            for stage, seconds in metrics["seconds"].items()
        )
        click.echo(f"{metrics['spec']}: {stage_text}", err=True)
        if metrics["dataset"]["skipped"]:
            click.echo(f"skipped {metrics['dataset']['skipped']} unreadable image(s)", err=True)
        click.echo(f"run folder: {result.run_dir}", err=True)
    return result


def _print_accuracies(metrics):
    counts = {split: metrics["dataset"][f"n_{split}"] for split in metrics["accuracy"]}
    for split, accuracy in metrics["accuracy"].items():
        if accuracy is not None:
            click.echo(f"{metrics['spec']} {split:<5} accuracy {accuracy:.4f} ({counts[split]} images)")


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="featpipe")
def cli():
    """Image features and linear classifiers, fast: which features win?"""
    warnings.formatwarning = _one_line_warning


def _one_line_warning(message, category, filename, lineno, line=None):
    return f"featpipe: warning: {message}\n"


@cli.command()
@click.argument("name")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run folder (default runs/<timestamp>-<name>).")
@_run_options
def run(name, out, data, **params):
    """Run pipeline NAME: a file in pipelines/ or a spec like hog+color+svm."""
    from featpipe.pipeline.spec import resolve

    spec = resolve(name)
    result = _run_one(spec, data, _run_options_from(params), out)
    _print_accuracies(result.metrics)


@cli.command()
@click.argument("names", nargs=-1)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Report folder.")
@click.option("--from", "from_runs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Finished run folder to include without retraining (repeatable).")
@_run_options
def compare(names, out, from_runs, data, **params):
    """Run several pipelines and write report.html, report.md and results.json to --out."""
    from featpipe.pipeline.spec import resolve

    if not names and not from_runs:
        raise click.UsageError("name at least one pipeline, or finished runs with --from")
    specs = [resolve(name) for name in names]  # every spec is checked before any is run
    if Path(out).exists():
        raise click.BadParameter(f"{out} exists; a report never replaces another: choose a new folder",
                                 param_hint="'--out'")
    from featpipe.report import write_report

    options = _run_options_from(params)
    run_dirs = [Path(path) for path in from_runs]
    for name, spec in zip(names, specs):
        result = _run_one(spec, data, options, Path(out) / "runs" / name.replace("/", "_"))
        _print_accuracies(result.metrics)
        run_dirs.append(result.run_dir)
    written = write_report(run_dirs, Path(out))
    for path in written.values():
        click.echo(f"wrote {path}", err=True)


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("images", nargs=-1, type=click.Path())
@click.option("--data", default=None,
              help="A whole collection instead of IMAGE...: an image folder (class folders, or the images "
                   "directly in it), a .npz file or a feature store made with the run's extractors; needs --out.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="CSV written for --data: path,label,probability per image (resumable).")
@click.option("--jobs", "n_jobs", type=int, default=-1, show_default=True,
              help="With --data: processes extracting at once (-1: all cores).")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None, help="With --data: images per shard.")
@click.option("--backend", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="With --data: dask extracts and scores on a dask.distributed LocalCluster.")
@click.option("--scheduler", default=None, help="With --data: address of a Dask scheduler, tcp://HOST:8786.")
@click.option("--cache-dir", type=click.Path(), default=None,
              help="With --data of images: cache root where their features are stored.")
@click.option("--strict", is_flag=True, help="With --data: stop at the first unreadable image.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@_max_pixels_option()
def predict(run_dir, images, data, out, **params):
    """Print the predicted class (and probability, when the head has one) of each IMAGE, or write a CSV of
    every image of --data, chunk by chunk in bounded memory."""
    from featpipe.datasets import read_images
    from featpipe.model_io import load_model

    metrics_path = Path(run_dir) / "metrics.json"
    if not metrics_path.is_file():
        raise click.BadParameter(f"{run_dir} is not a run folder (no metrics.json)", param_hint="RUN_DIR")
    if data is not None or out is not None:
        _predict_collection(run_dir, images, (data, out), params)
        return
    if not images:
        raise click.UsageError("give the images to predict, or a whole collection with --data and --out")
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    model = load_model(Path(run_dir) / "model.skops")
    batch = read_images(list(images), image_size=metrics["dataset"]["image_size"], strict=True,
                        max_pixels=params["max_pixels"]).images
    classes = metrics["dataset"]["classes"]
    labels = model.predict(batch)
    probabilities = model.predict_proba(batch).max(axis=1) if hasattr(model, "predict_proba") else None
    for index, (path, label) in enumerate(zip(images, labels)):
        line = f"{path}\t{classes[int(label)]}"
        if probabilities is not None:
            line += f"\t{probabilities[index]:.4f}"
        click.echo(line)


def _predict_collection(run_dir, images, data_and_out, params):
    """``featpipe predict RUN_DIR --data ... --out ...``: the CSV of a whole collection."""
    from featpipe.pipeline.options import ExtractOptions, options_from
    from featpipe.pipeline.predict_job import run_predict_job

    data, out = data_and_out
    if images:
        raise click.UsageError("give either IMAGE... or --data, not both")
    if data is None or out is None:
        raise click.UsageError("--data and --out go together: the collection and the CSV written for it")
    options = options_from(ExtractOptions, params, progress=not params["quiet"],
                           backend=None if params["backend"] == "local" else params["backend"])
    n_rows = run_predict_job(run_dir, data, out, options=options)
    if not params["quiet"]:
        click.echo(f"wrote {out}: {n_rows} predictions", err=True)


@cli.command()
@click.argument("run_dirs", nargs=-1)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs --api-key-file or --insecure.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--max-batch", type=click.IntRange(min=1), default=64, show_default=True,
              help="Most images in one model call.")
@click.option("--max-wait-ms", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Longest a batch waits for more requests after its first.")
@click.option("--api-key-file", type=click.Path(dir_okay=False), default=None,
              help="File of API keys, one per line; clients send Authorization: Bearer KEY.")
@click.option("--insecure", is_flag=True, help="Allow a non-loopback --host without API keys.")
@click.option("--max-image-bytes", type=_MemorySize(), default="10M", show_default=True,
              help="Largest encoded image, e.g. 512K or 10M.")
@_max_pixels_option()
@click.option("--max-images-per-request", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--queue-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Requests admitted at once; one more is answered 503 with Retry-After.")
@click.option("--request-timeout-ms", type=click.IntRange(min=1), default=30_000, show_default=True,
              help="Deadline of a request from its arrival (slow bodies: 408; waiting past it: 503).")
@click.option("--max-connections", type=click.IntRange(min=0), default=None,
              help="Open connections (or requests in flight) at which uvicorn answers a plain-text 503 "
                   "before reading the request [default: no limit; the queue's JSON 503 comes first].")
@click.option("--backlog", type=click.IntRange(min=1), default=None,
              help="Connections waiting to be accepted [default: 4 x --queue-size].")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
@click.option("--data-root", type=click.Path(file_okay=False), default=None,
              help="Jobs read images only under this folder (enables /v1/jobs; see docs/jobs.md).")
@click.option("--store-root", type=click.Path(file_okay=False), default=None,
              help="Extract jobs write feature stores only under this folder.")
@click.option("--runs-root", type=click.Path(file_okay=False), default=None,
              help="Run jobs write run folders only under this folder.")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="The job database, job logs and the run jobs' cache.")
@click.option("--max-running-jobs", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--scheduler", default=None, help="Dask scheduler extract jobs run on, e.g. tcp://HOST:8786.")
def serve(run_dirs, **params):
    """Serve trained runs over HTTP: RUN_DIR (named by its spec) or NAME=RUN_DIR. See docs/serve.md.

    With --data-root, --store-root, --runs-root and --state-dir it also runs
    extraction and training jobs (docs/jobs.md), and can start with no RUN_DIR.
    """
    from featpipe.serve.server import run_server, serve_options_from

    return run_server(serve_options_from(run_dirs, params))


@cli.command()
@click.argument("features")
@click.option("--data", default=None, help="Images to extract: builtin, cifar10, a folder or a .npz file.")
@click.option("--out", "store", type=click.Path(file_okay=False), required=True, help="Feature store folder.")
@click.option("--jobs", "n_jobs", type=int, default=-1, show_default=True,
              help="Processes extracting at once, this one included (-1: all cores).")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None, help="Images per shard.")
@click.option("--scheduler", default=None, help="Address of a Dask scheduler, e.g. tcp://HOST:8786.")
@click.option("--backend", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="dask starts a dask.distributed LocalCluster on this machine.")
@click.option("--from", "from_run", type=click.Path(exists=True, file_okay=False), default=None,
              help="Take fitted extractors from this finished run.")
@click.option("--image-size", type=click.IntRange(min=1), default=None,
              help="Side in pixels images are resized to (default: the --from run's, else 32).")
@click.option("--cache-dir", type=click.Path(), default=None)
@click.option("--strict", is_flag=True, help="Stop at the first unreadable image.")
@_max_pixels_option()
@click.option("--memory-budget", type=_MemorySize(), default=None, metavar="SIZE",
              help="Decoded images this machine may hold at once (chunks in flight, fit sample), "
                   "e.g. 4G (default: half the machine's memory).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def extract(features, data, store, **params):
    """Extract FEATURES (e.g. hog+color) for a whole image collection into a resumable store."""
    from featpipe.pipeline.extract_job import run_extract_job
    from featpipe.pipeline.options import ExtractOptions, options_from

    _check_jobs(params["n_jobs"])
    options = options_from(ExtractOptions, params, progress=not params["quiet"],
                           backend=None if params["backend"] == "local" else params["backend"])
    click.echo(run_extract_job(features, data, store, options=options))


@cli.command()
def pipelines():
    """List the named pipelines and the feature and head names a spec can use."""
    from featpipe.pipeline.registry import FEATURES, HEADS
    from featpipe.pipeline.spec import default_pipelines_dir, list_pipelines

    named = list_pipelines()
    width = max((len(spec.name) for spec in named), default=0)
    click.echo(f"named pipelines ({default_pipelines_dir()}):")
    for spec in named:
        click.echo(f"  {spec.name:<{width}}  {spec.description}")
    click.echo(f"features: {', '.join(sorted(FEATURES))}")
    click.echo(f"heads:    {', '.join(sorted(HEADS))}")
    click.echo("a spec is FEATURE[+FEATURE...]+HEAD, e.g. hog+color+svm")


@cli.command()
@click.argument("data", required=False)
@click.option("--image-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--cache-dir", type=click.Path(), default=None)
@click.option("--strict", is_flag=True, help="Stop at the first unreadable image.")
def datasets(data, **params):
    """Describe data set DATA (default: the built-in one): classes and split sizes."""
    from featpipe.datasets import SPLITS, LoadOptions, load_dataset
    from featpipe.pipeline.options import options_from

    options = options_from(LoadOptions, params)
    dataset = load_dataset(data, options)
    click.echo(f"{dataset.name}: {len(dataset.classes)} classes, images {options.image_size}x{options.image_size}")
    for split in SPLITS:
        labels = getattr(dataset, f"y_{split}")
        click.echo(f"  {split:<5} {len(labels):>7} images")
    click.echo(f"  classes: {', '.join(dataset.classes)}")
    click.echo(f"  skipped: {len(dataset.skipped)} unreadable file(s)")
    click.echo(f"  fingerprint: {dataset.fingerprint}")


@cli.group()
def cache():
    """Show or empty the cache."""


@cache.command("info")
@click.option("--cache-dir", type=click.Path(), default=None)
def cache_info_command(cache_dir):
    """Where the cache is and how much it holds."""
    from featpipe.cache import cache_info

    info = cache_info(cache_dir)
    click.echo(f"cache: {info['path']}")
    click.echo(f"  {info['n_entries']} cached stage outputs, {info['n_files']} files, "
               f"{info['n_bytes'] / 1e6:.1f} MB")
    if info["exists"]:
        click.echo("  private to you (created 0700): it holds pickles, and whoever can write it can run code as you")


@cache.command("clear")
@click.option("--cache-dir", type=click.Path(), default=None)
def cache_clear_command(cache_dir):
    """Delete what featpipe cached (only in a featpipe cache folder; anything else is refused)."""
    from featpipe.cache import clear_cache

    freed = clear_cache(cache_dir)
    click.echo(f"cache cleared: {freed / 1e6:.1f} MB freed")


def main():
    """Console-script entry point."""
    cli.main(prog_name="featpipe")


if __name__ == "__main__":
    sys.exit(main())
