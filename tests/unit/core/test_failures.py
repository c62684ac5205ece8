"""Every failure has a reason; known causes get a hint."""

from __future__ import annotations

import pytest

from reprise.core.failures import CAUSES, Failure, explain, last_error

READ_ONLY = """\
epoch 1/10 loss=0.6931
epoch 2/10 loss=0.5210
Traceback (most recent call last):
  File "/workspace/code/train.py", line 88, in <module>
    main()
  File "/workspace/code/train.py", line 81, in main
    torch.save(model.state_dict(), "/workspace/code/model.pt")
  File "/opt/venv/lib/python3.11/site-packages/torch/serialization.py", line 618, in save
    with _open_zipfile_writer(f) as opened_zipfile:
         ^^^^^^^^^^^^^^^^^^^^^^^
  File "/opt/venv/lib/python3.11/site-packages/torch/serialization.py", line 492, in __init__
    super().__init__(torch._C.PyTorchFileWriter(name, _compute_crc32))
                     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
OSError: [Errno 30] Read-only file system: '/workspace/code/model.pt'
"""

NO_NETWORK = """\
Traceback (most recent call last):
  File "/opt/venv/lib/python3.11/site-packages/urllib3/connection.py", line 198, in _new_conn
    sock = connection.create_connection(
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/usr/lib/python3.11/socket.py", line 962, in getaddrinfo
    for res in _socket.getaddrinfo(host, port, family, type, proto, flags):
               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
socket.gaierror: [Errno -3] Temporary failure in name resolution

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/workspace/code/train.py", line 12, in <module>
    data = requests.get("https://example.org/spiral.csv", timeout=10)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/opt/venv/lib/python3.11/site-packages/requests/adapters.py", line 700, in send
    raise ConnectionError(e, request=request)
requests.exceptions.ConnectionError: HTTPSConnectionPool(host='example.org', port=443): Max retries exceeded with url: /spiral.csv (Caused by NameResolutionError("<urllib3.connection.HTTPSConnection object at 0x7f2b>: Failed to resolve 'example.org' ([Errno -3] Temporary failure in name resolution)"))
"""

URLLIB_NO_NETWORK = """\
Downloading https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz
Traceback (most recent call last):
  File "/usr/lib/python3.11/urllib/request.py", line 1348, in do_open
    h.request(req.get_method(), req.selector, req.data, headers,
OSError: [Errno 101] Network is unreachable

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/workspace/code/train.py", line 9, in <module>
    datasets.MNIST("data", download=True)
  File "/usr/lib/python3.11/urllib/request.py", line 1351, in do_open
    raise URLError(err)
urllib.error.URLError: <urlopen error [Errno 101] Network is unreachable>
"""

MISSING_MODULE = """\
Traceback (most recent call last):
  File "/workspace/code/train.py", line 3, in <module>
    from sklearn.model_selection import train_test_split
ModuleNotFoundError: No module named 'sklearn'
"""

MISSING_EXECUTABLE = """\
OCI runtime create failed: runc create failed: unable to start container process: exec: "spiral-train": executable file not found in $PATH: unknown
"""

SHELL_NOT_FOUND = "/bin/sh: 1: spiral-train: not found\n"

MISSING_SCRIPT = (
    "/opt/venv/bin/python: can't open file '/workspace/code/trian.py': "
    "[Errno 2] No such file or directory\n"
)

TORCHRUN = """\
[rank0]: Traceback (most recent call last):
[rank1]: Traceback (most recent call last):
[rank0]:   File "/workspace/code/train.py", line 40, in <module>
[rank0]:     loss = model(batch).sum()
[rank1]:   File "/workspace/code/train.py", line 40, in <module>
[rank0]: RuntimeError: Expected all tensors to be on the same device
[rank1]: RuntimeError: Expected all tensors to be on the same device, rank 1
"""


def test_read_only_code_directory() -> None:
    failure = explain(READ_ONLY, 1, None)
    assert failure.last_error == (
        "OSError: [Errno 30] Read-only file system: '/workspace/code/model.pt'"
    )
    assert failure.reason == f"the job exited with code 1: {failure.last_error}"
    assert failure.hint is not None
    assert failure.hint.startswith(
        "the job wrote to /workspace/code/model.pt, but the code directory is read-only"
    )
    assert "$REPRISE_OUTPUTS" in failure.hint and "work/" in failure.hint


def test_erofs_without_a_path() -> None:
    hint = explain("write failed: EROFS\n", 1, None).hint
    assert hint is not None and hint.startswith("the code directory is read-only")


@pytest.mark.parametrize("log", [NO_NETWORK, URLLIB_NO_NETWORK])
def test_no_network(log: str) -> None:
    failure = explain(log, 1, None)
    assert failure.hint is not None and failure.hint.startswith("runs have no network")
    assert '[tool.reprise.prepare] command = "python download.py"' in failure.hint


def test_no_network_names_the_host_and_the_last_exception() -> None:
    failure = explain(NO_NETWORK, 1, None)
    assert failure.last_error is not None
    assert failure.last_error.startswith(
        "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='example.org'"
    )
    assert failure.hint is not None and "(it tried to reach example.org)" in failure.hint


@pytest.mark.parametrize(
    "line",
    [
        "socket.gaierror: [Errno -2] Name or service not known",
        "socket.gaierror: [Errno 11001] getaddrinfo failed",
        "httpx.ConnectError: [Errno -3] Temporary failure in name resolution",
        "OSError: We couldn't connect to 'https://huggingface.co' to load this file",
    ],
)
def test_no_network_other_spellings(line: str) -> None:
    hint = explain(f"Traceback (most recent call last):\n  File 'x'\n{line}\n", 1, None).hint
    assert hint is not None and hint.startswith("runs have no network")


def test_missing_module_names_it_and_its_package() -> None:
    failure = explain(MISSING_MODULE, 1, None)
    assert failure.last_error == "ModuleNotFoundError: No module named 'sklearn'"
    assert failure.hint is not None
    assert failure.hint.startswith("the image has no module 'sklearn'")
    assert "`uv add scikit-learn`" in failure.hint and "`uv lock`" in failure.hint
    assert "[tool.reprise] groups" in failure.hint


def test_missing_submodule_is_named_whole_and_its_top_package_added() -> None:
    hint = explain("ModuleNotFoundError: No module named 'einops.layers'\n", 1, None).hint
    assert hint is not None and "no module 'einops.layers'" in hint and "uv add einops" in hint


@pytest.mark.parametrize("log", [MISSING_EXECUTABLE, SHELL_NOT_FOUND])
def test_missing_executable_names_it(log: str) -> None:
    failure = explain(log, 127, None)
    assert failure.hint is not None
    assert failure.hint.startswith("`spiral-train` is not in the image")
    assert "[project.scripts]" in failure.hint and "python -m" in failure.hint


def test_exit_127_alone_is_a_missing_executable() -> None:
    failure = explain("", 127, None)
    assert failure.reason == "the job exited with code 127"
    assert failure.hint is not None and failure.hint.startswith("the command is not in the image")


def test_missing_script() -> None:
    failure = explain(MISSING_SCRIPT, 2, None)
    assert failure.hint is not None
    assert failure.hint.startswith("/workspace/code/trian.py is not in the code reprise ran")


def test_a_data_file_not_found_is_no_missing_executable() -> None:
    log = (
        "Traceback (most recent call last):\n"
        '  File "/workspace/code/train.py", line 5, in <module>\n'
        "    open('data/train.csv')\n"
        "FileNotFoundError: [Errno 2] No such file or directory: 'data/train.csv'\n"
    )
    failure = explain(log, 1, None)
    assert failure.hint is None
    assert failure.last_error == (
        "FileNotFoundError: [Errno 2] No such file or directory: 'data/train.csv'"
    )


def test_the_cause_that_comes_last_in_the_log_wins() -> None:
    log = "warning: Temporary failure in name resolution, using the cached copy\n" + MISSING_MODULE
    hint = explain(log, 1, None).hint
    assert hint is not None and hint.startswith("the image has no module 'sklearn'")


def test_every_cause_has_a_name_and_a_pattern() -> None:
    names = [c.name for c in CAUSES]
    assert len(names) == len(set(names))
    assert {"read-only", "no-network", "missing-module", "missing-executable"} <= set(names)


def test_a_given_reason_is_kept() -> None:
    failure = explain(MISSING_MODULE, 1, "  the engine stopped the job  ")
    assert failure.reason == "the engine stopped the job"
    assert failure.last_error == "ModuleNotFoundError: No module named 'sklearn'"
    assert failure.hint is not None


@pytest.mark.parametrize("reason", [None, "", "   \n"])
def test_reason_is_never_empty(reason: str | None) -> None:
    assert explain("", None, reason) == Failure("no reason was given", None, None)
    assert explain("", 3, reason).reason == "the job exited with code 3"
    assert explain("boom\n", None, reason).reason == "no reason was given"


def test_no_traceback_gives_the_last_non_empty_line() -> None:
    log = "step 1\nstep 2\nCUDA driver version is insufficient for CUDA runtime version\n\n  \n"
    failure = explain(log, 1, None)
    assert failure.last_error == "CUDA driver version is insufficient for CUDA runtime version"
    assert failure.reason == (
        "the job exited with code 1: CUDA driver version is insufficient for CUDA runtime version"
    )
    assert failure.hint is None


def test_log_without_an_error_line() -> None:
    failure = explain("\n\n   \n", 1, None)
    assert failure == Failure("the job exited with code 1", None, None)


def test_a_traceback_followed_by_shutdown_chatter_still_gives_its_exception() -> None:
    log = MISSING_MODULE + "wandb: Waiting for W&B process to finish... (failed 1).\n"
    assert last_error(log) == "ModuleNotFoundError: No module named 'sklearn'"


def test_a_traceback_cut_off_at_the_top_still_gives_its_exception() -> None:
    log = "    x = f()\n  File \"a.py\", line 2\nKeyError: 'lr'\nexiting\n"
    assert last_error(log) == "KeyError: 'lr'"


def test_per_rank_prefixes_and_progress_bars() -> None:
    # The last traceback is rank 1's: its lines are read past rank 0's, interleaved.
    assert last_error(TORCHRUN) == (
        "RuntimeError: Expected all tensors to be on the same device, rank 1"
    )
    bar = (
        "epoch 1:  10%|#  | 1/10\r epoch 1: 100%|###| 10/10\n\x1b[31mValueError: nan loss\x1b[0m\n"
    )
    assert last_error(bar) == "ValueError: nan loss"


def test_a_very_long_error_line_is_clipped() -> None:
    error = last_error("ValueError: " + "x" * 5000)
    assert error is not None and len(error) == 500 and error.endswith("…")


def test_an_operation_without_a_deterministic_implementation_says_how_to_run_it() -> None:
    log = (
        "Traceback (most recent call last):\n"
        '  File "/workspace/work/train.py", line 3, in <module>\n'
        "RuntimeError: put_ does not have a deterministic implementation, but you set "
        "'torch.use_deterministic_algorithms(True)'. You can turn off determinism just for "
        "this operation\n"
    )
    failure = explain(log, 1, None)
    assert failure.reason.startswith("the job exited with code 1: RuntimeError: put_ does not")
    assert failure.hint is not None
    assert failure.hint.startswith("put_ has no deterministic implementation")
    assert 'determinism = "warn"' in failure.hint
