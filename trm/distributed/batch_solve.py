"""Batch inference at scale with Ray Data (`trm solve --ray`): HRM-layout CSV files of Sudoku or Maze puzzles
(local paths or ``s3://`` URLs, millions of rows) answered by a pool of model actors, the answers written as
Parquet (a local folder or an ``s3://`` prefix).

The answers are the local path's (``trm.solver.runner.solve``): each actor encodes its batch with the dataset
readers' own functions (``trm.data.sudoku``, ``trm.data.maze``), runs ``solve_tokens`` and ``answers_from``, so a
puzzle gets the same answer, steps, confidence and forward passes whichever path or worker solves it (every
strategy is batch-independent; the trajectories' noise is shared by all puzzles by design).

How it runs:

* The driver opens the model once (a store reference is pinned to its version, so every actor loads the same
  one even if an alias moves meanwhile), checks the strategy, and reads the first block of every file through the
  same encoder: a wrong reference, a missing file or a file of other puzzles fails before any actor starts.
* A streaming read (one file per read task, ~1 MB blocks) adds each row's ``source_file`` and 1-based ``row``
  in its CSV (the local path's "file.csv:row N"), so results join back to their inputs.
* ``map_batches`` runs ``workers`` actors (``threads_per_worker`` CPUs and torch threads, ``gpus_per_worker``
  GPUs each; CUDA when the actor has a GPU). Each opens the model itself: a store download with every sha256
  verified on its own node (S3 settings travel with the job, not through the workers' environment), or a local
  export folder read directly (which must then be visible on every node).
* The output appears whole or not at all. A local folder is written beside its target (``.NAME.tmp-XXXXXXXX``)
  and renamed into place after ``_SUCCESS``; an S3 prefix (no atomic rename there) gets its parts and then
  ``_SUCCESS`` last, which is what marks it complete. ``_SUCCESS`` is a JSON manifest: counts, accuracy, the
  pinned model, strategy and the part files. On failure everything written is removed.

Columns: ``source_file`` (absolute path or s3:// URL), ``row`` (int64), ``question`` (as given), ``answer`` (the
local CSV output's compact answer: Sudoku digits / maze characters row-major), ``steps``, ``confidence``
(sigmoid of q_halt), ``forward_passes``, ``correct`` (null where the CSV gives no answer). Part files are named in
input order; ``sort_by(["source_file", "row"])`` gives the input order within each file.

Differences from the local reader: an empty ``answer`` is allowed (the row is solved, ``correct`` is null), the
``rating`` column is not read, and only Sudoku and Maze models are accepted (ARC tasks are JSON, not rows).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import ray
import ray.data
import torch
from ray.data.datasource import FileBasedDatasource

from trm.config import InferenceConfig
from trm.data.errors import DataError
from trm.data.maze import _tokens as maze_tokens
from trm.data.maze import validate_mazes
from trm.data.sudoku import CSV_COLUMNS, _digits, _fixed_width, sudoku_tokens, validate_sudoku
from trm.distributed.cluster import ray_session
from trm.distributed.errors import _chain
from trm.errors import PreflightError, UsageError
from trm.evaluate.strategies import CALIBRATE_NEEDS_VAL, check_strategy
from trm.s3 import S3ConfigError, S3Settings, parse_s3_url, pyarrow_filesystem, redact
from trm.solver.answers import answers_from, compact
from trm.solver.inputs import ModelKind, PuzzleInputError, Puzzles, one_row_per_group, task_of_model
from trm.solver.runner import Solver, as_strategy, is_export_folder, open_solver, solve_tokens
from trm.store import ModelStore, default_store_url, load_model, parse_model_uri

ROWS_PER_FILE = 100_000  # a hint to Ray Data: Parquet parts of ~100k rows (~10 MB), not one per ~1 MB block
SUCCESS_FILE = "_SUCCESS"  # JSON manifest written last: its presence marks the output complete
BLOCK_BYTES = 1 << 20  # CSV bytes per read block (~5,000 9x9 Sudoku rows)
READ_COLUMNS = ("question", "answer")
OUTPUT_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("row", pa.int64()),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("steps", pa.int32()),
        ("confidence", pa.float64()),
        ("forward_passes", pa.int32()),
        ("correct", pa.bool_()),
    ]
)
IO_TASK_CPUS = 0  # reading CSV and writing Parquet are light: every CPU goes to the model actors (a fraction would
# leave the reads unschedulable once the actors hold all CPUs)


@dataclass
class BatchSolveSummary:
    """What a batch solve did: puzzles answered, wall time of the Ray Data job (read, solve, write; actor start-up
    included), and accuracy over the rows whose CSV gave an answer."""

    puzzles: int
    seconds: float
    workers: int
    judged: int
    right: int
    output: str
    model: str
    strategy: str
    part_files: list[str] = field(default_factory=list)

    @property
    def puzzles_per_s(self) -> float:
        return self.puzzles / self.seconds if self.seconds > 0 else 0.0

    @property
    def accuracy(self) -> float | None:
        return self.right / self.judged if self.judged else None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "puzzles_per_s": self.puzzles_per_s, "accuracy": self.accuracy}

    def __str__(self) -> str:
        line = (
            f"{self.puzzles} puzzle(s) solved in {self.seconds:.1f} s ({self.puzzles_per_s:.1f} puzzles/s, "
            f"{self.workers} worker(s))"
        )
        if self.judged:
            line += (
                f"; {self.right}/{self.judged} right ({100 * self.right / self.judged:.1f}%) where a solution was given"
            )
        return f"{line}; answers in {self.output}"


# ---------------------------------------------------------------------------------------------------- locations
@dataclass(frozen=True)
class Place:
    """A file or folder on the local disk or in S3: ``uri`` is what people see (absolute path or s3:// URL),
    ``path`` the name inside ``filesystem`` (no scheme)."""

    uri: str
    path: str
    filesystem: pafs.FileSystem
    remote: bool


def place_of(location: str | Path, settings: S3Settings | None = None) -> Place:
    text = str(location)
    if text.startswith("s3://"):
        try:
            url = parse_s3_url(text)
            return Place(url.uri, url.path, pyarrow_filesystem(settings), True)
        except S3ConfigError as error:
            raise UsageError(str(error)) from error
    if "://" in text:
        raise UsageError(f"{redact(text)!r}: only local paths and s3:// URLs are supported")
    path = str(Path(text).expanduser().resolve())
    return Place(path, path, pafs.LocalFileSystem(), False)


def input_files(inputs: Sequence[str | Path], settings: S3Settings | None = None) -> list[Place]:
    """The CSV files to read, in the order given (a folder stands for its ``*.csv`` files, sorted); all local or
    all in S3 (one filesystem per job)."""
    if not inputs:
        raise UsageError("no input files: give one or more CSV files (local paths or s3:// URLs)")
    files: list[Place] = []
    for given in inputs:
        place = place_of(given, settings)
        info = _info(place)
        if info.type == pafs.FileType.Directory:
            selector = pafs.FileSelector(place.path, recursive=False)
            found = sorted(i.path for i in place.filesystem.get_file_info(selector) if i.path.endswith(".csv"))
            if not found:
                raise PuzzleInputError(place.uri, None, "folder holds no *.csv file")
            files += [Place(_uri(place, p), p, place.filesystem, place.remote) for p in found]
        elif info.type == pafs.FileType.File:
            files.append(place)
        else:
            raise PuzzleInputError(place.uri, None, "file not found")
    if len({f.remote for f in files}) > 1:
        raise UsageError("inputs mix local files and s3:// URLs: put them in one place (all local or all in S3)")
    if len({f.uri for f in files}) < len(files):
        raise UsageError("an input file is given twice")
    return files


def _uri(place: Place, path: str) -> str:
    return f"s3://{path}" if place.remote else path


def _info(place: Place) -> pafs.FileInfo:
    try:
        return place.filesystem.get_file_info(place.path)
    except OSError as error:
        raise PreflightError(f"{place.uri}: cannot be reached ({error})") from error


# ---------------------------------------------------------------------------------------------------- reading
def csv_options(block_bytes: int = BLOCK_BYTES) -> tuple[pacsv.ReadOptions, pacsv.ConvertOptions]:
    """How every block is parsed: the local reader's options (every column a string, empty is not null)."""
    read = pacsv.ReadOptions(block_size=block_bytes, use_threads=False)
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in CSV_COLUMNS},
        strings_can_be_null=False,
        include_columns=list(READ_COLUMNS),
        include_missing_columns=True,  # no answer column: no answers (a missing question is caught up front)
    )
    return read, convert


def numbered_blocks(stream: Any, source_file: str, block_bytes: int = BLOCK_BYTES) -> Iterator[pa.Table]:
    """The CSV's blocks as (source_file, row, question, answer) tables; ``row`` is the 1-based data row."""
    read, convert = csv_options(block_bytes)
    done = 0
    try:
        reader = pacsv.open_csv(stream, read_options=read, convert_options=convert)
        for batch in reader:
            n = batch.num_rows
            answers = pc.fill_null(batch.column("answer").cast(pa.string()), "")
            yield pa.table(
                {
                    "source_file": pa.array([source_file] * n, pa.string()),
                    "row": pa.array(np.arange(done + 1, done + n + 1, dtype=np.int64)),
                    "question": batch.column("question").cast(pa.string()),
                    "answer": answers,
                }
            )
            done += n
    except (pa.ArrowInvalid, UnicodeDecodeError) as error:
        after = f" (after row {done})" if done else ""
        raise PuzzleInputError(source_file, None, f"unreadable CSV{after}: {error}") from None


class HrmCsvDatasource(FileBasedDatasource):
    """Ray Data source of HRM-layout CSV files, each read whole by one task, in blocks with row numbers."""

    _FILE_EXTENSIONS: ClassVar[list[str]] = ["csv"]

    def __init__(self, files: list[Place], block_bytes: int = BLOCK_BYTES) -> None:
        super().__init__([f.path for f in files], filesystem=files[0].filesystem)
        self.uris = {f.path: f.uri for f in files}
        self.block_bytes = block_bytes

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
        yield from numbered_blocks(f, self.uris.get(path, path), self.block_bytes)


def first_block(file: Place, block_bytes: int = BLOCK_BYTES) -> pa.Table:
    """The first block of ``file`` after checking its header; a file without data rows is an error."""
    try:
        with file.filesystem.open_input_stream(file.path) as stream:
            header = pacsv.open_csv(stream, read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES)).schema.names
    except (pa.ArrowInvalid, UnicodeDecodeError) as error:
        raise PuzzleInputError(file.uri, None, f"unreadable CSV: {error}") from None
    except OSError as error:
        raise PuzzleInputError(file.uri, None, f"unreadable: {error}") from None
    if "question" not in header:
        raise PuzzleInputError(file.uri, None, f"no question column; expected header {','.join(CSV_COLUMNS)}")
    with file.filesystem.open_input_stream(file.path) as stream:
        block = next(numbered_blocks(stream, file.uri, block_bytes), None)
    if block is None or block.num_rows == 0:
        raise PuzzleInputError(file.uri, None, "no puzzles in file")
    return block


# ---------------------------------------------------------------------------------------------------- encoding
@contextmanager
def rows_of(table: pa.Table, positions: np.ndarray | None = None, note: str | None = None) -> Iterator[None]:
    """Re-raise a reader's ``DataError`` about row r (1-based, of the arrays it was given: ``positions`` of the
    table's rows, else all of them) as a ``PuzzleInputError`` naming the file and its row in that file."""
    try:
        yield
    except DataError as error:
        message = f"{error.message}; {note}" if note and "characters, expected" in error.message else error.message
        if not isinstance(error.row, int):
            raise PuzzleInputError(error.file, error.row, message) from None
        index = int(positions[error.row - 1]) if positions is not None else error.row - 1
        source = table.column("source_file")[index].as_py()
        raise PuzzleInputError(source, int(table.column("row")[index].as_py()), message) from None


def encode(table: pa.Table, kind: ModelKind) -> Puzzles:
    """A block of (source_file, row, question, answer) rows as the model's tokens, checked like the local reader
    checks a CSV (``read_sudoku_csv`` / ``read_maze_csv``); rows with an empty answer have no label."""
    rows, cols = kind.grid_shape
    cells = rows * cols
    what = "Sudoku" if kind.task == "sudoku" else "mazes"
    note = f"the model solves {rows}x{cols} {what} ({cells} cells)"
    answers = table.column("answer")
    given = pc.binary_length(answers).to_numpy(zero_copy_only=False) > 0
    labelled = np.flatnonzero(given)
    where = Path(str(table.column("source_file")[0].as_py())) if table.num_rows else Path("<input>")
    with rows_of(table, note=note):
        chars = _fixed_width(where, table.column("question"), cells, "question")
    with rows_of(table, labelled, note):
        label_chars = _fixed_width(where, answers.take(pa.array(labelled)), cells, "answer")
    if kind.task == "sudoku":
        inputs, labels = _sudoku(table, where, chars, label_chars, labelled, rows)
    elif kind.task == "maze":
        inputs, labels = _mazes(table, where, chars, label_chars, given, (rows, cols))
    else:
        raise UsageError(f"--ray solves Sudoku and Maze CSV files; this model solves {kind.task}")
    full = np.zeros_like(inputs)
    full[labelled] = labels
    files = table.column("source_file").to_pylist()
    names = [f"{Path(f).name}:row {r}" for f, r in zip(files, table.column("row").to_pylist(), strict=True)]
    return one_row_per_group(kind.task, kind.grid_shape, names, inputs, full, given)


def _sudoku(
    table: pa.Table, where: Path, chars: np.ndarray, label_chars: np.ndarray, labelled: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    with rows_of(table):
        questions = _digits(where, chars, b".0", size, "question")
    with rows_of(table, labelled):
        answers = _digits(where, label_chars, b"", size, "answer")
        validate_sudoku(where, questions[labelled], answers, size, np.arange(1, len(labelled) + 1))
    return sudoku_tokens(questions), sudoku_tokens(answers)


def _mazes(
    table: pa.Table, where: Path, chars: np.ndarray, label_chars: np.ndarray, given: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    labelled, unlabelled = np.flatnonzero(given), np.flatnonzero(~given)
    with rows_of(table):
        inputs = maze_tokens(where, chars, "# SG", "question")
    with rows_of(table, labelled):
        labels = maze_tokens(where, label_chars, "# SGo", "answer")
        validate_mazes(where, inputs[labelled], labels, *shape, check_paths=True)
    with rows_of(table, unlabelled):
        validate_mazes(where, inputs[unlabelled], inputs[unlabelled], *shape, check_paths=False)
    return inputs, labels


def answer_table(table: pa.Table, kind: ModelKind, answers: list) -> pa.Table:
    """The output rows of a block: where each puzzle came from, its question, and the answer with its facts."""
    return pa.table(
        {
            "source_file": table.column("source_file").cast(pa.string()),
            "row": table.column("row").cast(pa.int64()),
            "question": table.column("question").cast(pa.string()),
            "answer": pa.array([compact(a.answer, kind.task) for a in answers], pa.string()),
            "steps": pa.array([a.steps for a in answers], pa.int32()),
            "confidence": pa.array([a.confidence for a in answers], pa.float64()),
            "forward_passes": pa.array([a.forward_passes for a in answers], pa.int32()),
            "correct": pa.array([a.correct for a in answers], pa.bool_()),
        },
        schema=OUTPUT_SCHEMA,
    )


# ---------------------------------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class ModelSource:
    """What every actor opens: an export folder, or a store reference pinned to a version (with the driver's S3
    settings as store options, since Ray workers do not inherit the driver's environment)."""

    reference: str
    options: dict[str, Any] = field(default_factory=dict, repr=False)

    def open(self, device: str = "cpu") -> Solver:
        if is_export_folder(self.reference):
            return open_solver(self.reference, device=device)
        model, config = load_model(self.reference, options=self.options, device=device)
        kind = task_of_model(config.model.seq_len, config.model.vocab_size, hint=config.data.name)
        return Solver(model=model.eval(), config=config, kind=kind, source=self.reference, device=device)


def pin_model(reference: str, settings: S3Settings | None = None) -> ModelSource:
    """An export folder as an absolute path; a store reference as ``STORE#NAME:VERSION`` (aliases and "newest"
    resolved once, here) with the S3 options every actor needs to download it."""
    if is_export_folder(reference):
        return ModelSource(str(Path(reference).expanduser().resolve()))
    store_url, ref = parse_model_uri(reference)
    url = store_url or default_store_url()
    options: dict[str, Any] = {}
    if url.startswith(("s3://", "s3a://")):
        resolved = (settings or S3Settings()).resolved()
        credentials = resolved.credentials()
        options = {"endpoint_url": resolved.endpoint_url, "region": resolved.region}
        if credentials is not None:
            options.update(key=credentials[0], secret=credentials[1], token=credentials[2])
        options = {k: v for k, v in options.items() if v is not None}
    else:
        url = str(Path(url.removeprefix("file://")).expanduser().resolve())
    version = ModelStore.open(url, dict(options)).resolve(ref)
    return ModelSource(f"{url}#{ref.name}:{version}", options)


class SolveBatch:
    """The Ray Data actor: opens the model once (CUDA when the actor was given a GPU), then answers blocks."""

    def __init__(self, model: ModelSource, strategy: InferenceConfig, batch_size: int, threads: int) -> None:
        torch.set_num_threads(max(1, threads))
        self.solver = model.open("cuda" if torch.cuda.is_available() else "cpu")
        self.strategy = strategy
        self.batch_size = batch_size

    def __call__(self, table: pa.Table) -> pa.Table:
        return solve_block(self.solver, table, self.strategy, self.batch_size)


def solve_block(solver: Solver, table: pa.Table, strategy: InferenceConfig, batch_size: int) -> pa.Table:
    """Encode, solve and answer one block of CSV rows."""
    puzzles = encode(table, solver.kind)
    solved = solve_tokens(solver, puzzles.inputs, puzzles.puzzle_identifiers, strategy, batch_size)
    answers = answers_from(puzzles, solved.predictions, solved.q_halt, solved.steps, solved.forward_passes)
    return answer_table(table, solver.kind, answers)


# ---------------------------------------------------------------------------------------------------- output
class Output:
    """Where the Parquet parts go and how they are made visible (see the module doc)."""

    def __init__(self, place: Place) -> None:
        self.place = place
        fs = place.filesystem
        if place.remote:
            bucket, _, prefix = place.path.partition("/")
            if not prefix:
                raise UsageError(f"--out {place.uri}: name a prefix inside the bucket (s3://{bucket}/answers)")
            if _info(Place(f"s3://{bucket}", bucket, fs, True)).type != pafs.FileType.Directory:
                raise PreflightError(f"--out {place.uri}: bucket {bucket!r} does not exist (create it first)")
            self.staging = place.path
        else:
            target = Path(place.path)
            if target.exists() and not target.is_dir():
                raise UsageError(f"--out {place.uri} is a file: name a folder for the Parquet parts")
            self.staging = str(target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
        if self.listing(place.path):
            raise UsageError(f"--out {place.uri} already holds files: choose a new folder or prefix")

    def listing(self, path: str) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(path, allow_not_found=True, recursive=True)
        try:
            return [i for i in self.place.filesystem.get_file_info(selector) if i.type == pafs.FileType.File]
        except NotADirectoryError:
            return []

    def parts(self) -> list[str]:
        """The Parquet part files written so far (paths inside the filesystem), sorted by name."""
        return sorted(i.path for i in self.listing(self.staging) if i.path.endswith(".parquet"))

    def publish(self, manifest: dict[str, Any]) -> None:
        fs = self.place.filesystem
        if not self.place.remote:
            fs.create_dir(self.staging)  # already there unless no part was written
        with fs.open_output_stream(f"{self.staging}/{SUCCESS_FILE}") as stream:
            stream.write((json.dumps(manifest, indent=1, default=str) + "\n").encode())
        if not self.place.remote:
            target = Path(self.place.path)
            if target.is_dir():  # an empty folder the caller made: replaced (os.rename refuses a non-empty one)
                target.rmdir()
            os.rename(self.staging, target)

    def discard(self) -> None:
        """Remove everything this job wrote (the S3 prefix was empty when the job started)."""
        if self.place.remote:
            try:
                self.place.filesystem.delete_dir(self.staging)
            except OSError:
                for info in self.listing(self.staging):
                    self.place.filesystem.delete_file(info.path)
        else:
            shutil.rmtree(self.staging, ignore_errors=True)


def counts(output: Output, parts: list[str]) -> tuple[int, int, int, list[dict[str, Any]]]:
    """(puzzles, judged, right, per-part rows) read back from the written parts (the ``correct`` column only)."""
    puzzles = judged = right = 0
    files = []
    for part in parts:
        column = pq.read_table(part, columns=["correct"], filesystem=output.place.filesystem).column("correct")
        files.append({"file": part.rsplit("/", 1)[-1], "rows": len(column)})
        puzzles += len(column)
        judged += len(column) - column.null_count
        right += int(pc.sum(column.fill_null(False).cast(pa.int64())).as_py() or 0)
    return puzzles, judged, right, files


# ---------------------------------------------------------------------------------------------------- the job
def check_capacity(session: Any, workers: int, threads: int, gpus: float, local: bool) -> None:
    """Fail fast instead of waiting forever for actors a local Ray cannot host (a cluster may autoscale)."""
    need_cpu, need_gpu = workers * threads, workers * gpus
    if local and (session.cpus < need_cpu or session.gpus < need_gpu):
        raise PreflightError(
            f"{workers} worker(s) x ({threads} CPU, {gpus:g} GPU) need {need_cpu} CPUs and {need_gpu:g} GPUs; the "
            f"local Ray has {session.cpus:g} CPUs and {session.gpus:g} GPUs: lower --workers or the threads per worker"
        )


def _check_arguments(workers: int, batch_size: int, threads: int, gpus: float) -> None:
    if workers < 1 or batch_size < 1 or threads < 1 or gpus < 0:
        raise UsageError(
            f"workers ({workers}), batch_size ({batch_size}) and threads_per_worker ({threads}) must be >= 1, "
            f"gpus_per_worker ({gpus:g}) >= 0"
        )


def _input_error(error: BaseException) -> DataError | None:
    """The bad-input error an actor or read task raised, as a plain error (without Ray's wrapping)."""
    for link in _chain(error):
        cause = getattr(link, "cause", None)
        for candidate in (cause, link):
            if isinstance(candidate, DataError):
                return PuzzleInputError(candidate.file, candidate.row, candidate.message)
    return None


@contextmanager
def job_data_context() -> Iterator[None]:
    """Ray Data keeps block order (parts are then written in input order) and hands an actor's own exception
    (a bad row's ``PuzzleInputError``) to the driver unwrapped; the caller's settings are restored."""
    context = ray.data.DataContext.get_current()
    before = context.execution_options.preserve_order, context.raise_original_map_exception
    context.execution_options.preserve_order = True
    context.raise_original_map_exception = True
    try:
        yield
    finally:
        context.execution_options.preserve_order, context.raise_original_map_exception = before


def run_pipeline(
    files: list[Place], output: Output, model: ModelSource, strategy: InferenceConfig, options: dict[str, Any]
) -> float:
    """Read, solve and write; returns the wall time of the Ray Data job."""
    with job_data_context():
        source = HrmCsvDatasource(files, options["block_bytes"])
        dataset = ray.data.read_datasource(source, num_cpus=IO_TASK_CPUS)
        dataset = dataset.map_batches(
            SolveBatch,
            fn_constructor_kwargs={
                "model": model,
                "strategy": strategy,
                "batch_size": options["batch_size"],
                "threads": options["threads"],
            },
            batch_size=options["batch_size"],
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=options["workers"]),
            num_cpus=options["threads"],
            num_gpus=options["gpus"] or None,
        )
        start = time.perf_counter()
        dataset.write_parquet(
            output.staging,
            filesystem=output.place.filesystem,
            try_create_dir=not output.place.remote,
            min_rows_per_file=ROWS_PER_FILE,
            ray_remote_args={"num_cpus": IO_TASK_CPUS},
        )
        return time.perf_counter() - start


def solve_files(
    model_ref: str,
    inputs: Sequence[str | Path],
    output: str | Path,
    strategy: InferenceConfig | str,
    *,
    workers: int = 2,
    batch_size: int = 1024,
    address: str | None = None,
    gpus_per_worker: float = 0,
    threads_per_worker: int = 1,
    s3: S3Settings | None = None,
    read_block_bytes: int = BLOCK_BYTES,
) -> BatchSolveSummary:
    """Answer every puzzle of the HRM-layout CSV ``inputs`` (local paths or s3:// URLs; a folder stands for its
    *.csv files) with ``model_ref`` (a store reference or an export folder) and ``strategy``, on a Ray cluster
    (``address``; default ``$RAY_ADDRESS``, else a private local Ray), with ``workers`` model actors, writing
    Parquet parts and a ``_SUCCESS`` manifest under ``output`` (a local folder or an s3:// prefix that must be new
    or empty). ``batch_size``: rows per actor call (and per model call). ``s3``: endpoint and credentials (default
    the AWS variables). ``read_block_bytes``: CSV bytes per read block (the driver checks each file's first one).
    Bad input (a row, a file, the model) raises a ``UsageError`` and leaves nothing in ``output``."""
    _check_arguments(workers, batch_size, threads_per_worker, gpus_per_worker)
    chosen = as_strategy(strategy)
    files, source = preflight(model_ref, inputs, chosen, s3, read_block_bytes)
    target = Output(place_of(output, s3))
    options = {
        "batch_size": batch_size,
        "workers": workers,
        "threads": threads_per_worker,
        "gpus": gpus_per_worker,
        "block_bytes": read_block_bytes,
    }
    local = address is None and (ray.is_initialized() or not os.environ.get("RAY_ADDRESS"))
    with ray_session(address) as session:
        check_capacity(session, workers, threads_per_worker, gpus_per_worker, local)
        try:
            seconds = run_pipeline(files, target, source, chosen, options)
            summary = _finish(target, files, source, chosen, seconds, workers)
        except BaseException as error:
            target.discard()
            bad_input = _input_error(error)
            if bad_input is not None:
                raise bad_input from None
            raise
    return summary


def preflight(
    model_ref: str, inputs: Sequence[str | Path], strategy: InferenceConfig, s3: S3Settings | None, block_bytes: int
) -> tuple[list[Place], ModelSource]:
    """Before any actor starts: the input files exist, the model opens (pinned to its version), the strategy suits
    it, and every file's first block reads as the model's puzzles."""
    files = input_files(inputs, s3)
    source = pin_model(model_ref, s3)
    solver = source.open("cpu")
    if solver.task not in ("sudoku", "maze"):
        raise UsageError(f"--ray solves Sudoku and Maze CSV files; {model_ref} solves {solver.task}")
    try:
        if strategy.calibrate:
            raise ValueError(CALIBRATE_NEEDS_VAL)
        check_strategy(strategy, solver.task, solver.grid_shape, solver.config.model.seq_len)
    except ValueError as error:
        raise UsageError(f"--strategy: {error}") from error
    for file in files:
        encode(first_block(file, block_bytes), solver.kind)
    return files, source


def _finish(
    target: Output, files: list[Place], source: ModelSource, strategy: InferenceConfig, seconds: float, workers: int
) -> BatchSolveSummary:
    """Count what was written, then write the manifest and make the output visible."""
    parts = target.parts()
    puzzles, judged, right, part_rows = counts(target, parts)
    summary = BatchSolveSummary(
        puzzles=puzzles,
        seconds=seconds,
        workers=workers,
        judged=judged,
        right=right,
        output=target.place.uri,
        model=source.reference,
        strategy=strategy.model_dump_json(),
        part_files=[p["file"] for p in part_rows],
    )
    manifest = {
        **summary.to_json(),
        "inputs": [f.uri for f in files],
        "parts": part_rows,
        "columns": OUTPUT_SCHEMA.names,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    manifest.pop("part_files")
    target.publish(manifest)
    return summary
