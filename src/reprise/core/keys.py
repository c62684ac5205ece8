"""Names that leave reprise: image labels, container env variables, record file names.

One place, so that the writer and every reader agree.
"""

from __future__ import annotations

# Image labels.
LABEL_PREFIX = "org.reprise"
LABEL_VERSION = f"{LABEL_PREFIX}.version"
LABEL_SPEC_HASH = f"{LABEL_PREFIX}.spec-hash"
LABEL_BASE_IMAGE = f"{LABEL_PREFIX}.base-image"
LABEL_BASE_DIGEST = f"{LABEL_PREFIX}.base-digest"
LABEL_LOCK_HASH = f"{LABEL_PREFIX}.lock-hash"
LABEL_DEPS_HASH = f"{LABEL_PREFIX}.dependencies-hash"
LABEL_DOCKERFILE_HASH = f"{LABEL_PREFIX}.dockerfile-hash"
LABEL_RUNTIME_HASH = f"{LABEL_PREFIX}.runtime-hash"
LABEL_PROJECT = f"{LABEL_PREFIX}.project"
# Containers started by reprise carry these, so that stray ones can be found.
LABEL_RUN_ID = f"{LABEL_PREFIX}.run-id"
LABEL_RUN_DIR = f"{LABEL_PREFIX}.run-dir"

# Local image repository: <IMAGE_REPO_PREFIX>/<project>:<spec hash>
IMAGE_REPO_PREFIX = "reprise"

# Paths inside the container.
CONTAINER_CODE = "/workspace/code"
CONTAINER_RUN = "/workspace/run"
CONTAINER_OUTPUTS = f"{CONTAINER_RUN}/outputs"
CONTAINER_CONFIG = f"{CONTAINER_RUN}/config.yaml"
CONTAINER_RUNTIME_RECORD = f"{CONTAINER_RUN}/runtime/runtime.json"
CONTAINER_DATA = "/workspace/data"
# The working directory: the code at the commit, with the job's writes going to the run's work/.
CONTAINER_WORK = "/workspace/work"
CONTAINER_VENV = "/opt/venv"
CONTAINER_RUNTIME_LIB = "/opt/reprise/lib"
CONTAINER_UID = 1000
CONTAINER_GID = 1000

# Environment variables the container sees.
ENV_SEED = "REPRISE_SEED"
ENV_CONFIG = "REPRISE_CONFIG"
ENV_OUTPUTS = "REPRISE_OUTPUTS"
ENV_RUN_DIR = "REPRISE_RUN_DIR"
ENV_RUN_ID = "REPRISE_RUN_ID"
ENV_THREADS = "REPRISE_NUM_THREADS"
ENV_RUNTIME_RECORD = "REPRISE_RUNTIME_RECORD"
ENV_DETERMINISM = "REPRISE_DETERMINISM"
ENV_FINGERPRINT_EVERY = "REPRISE_FINGERPRINT_EVERY"
ENV_RESUME = "REPRISE_RESUME"
ENV_STOP_AFTER_STEP = "REPRISE_STOP_AFTER_STEP"  # a bisect pass ends after this optimizer step
THREAD_ENV_VARS = (
    "MKL_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

# Files of a run directory.
RUN_JSON = "run.json"
RUN_CONFIG = "config.yaml"
RUN_DOCKERFILE = "Dockerfile"
RUN_LOCK = "uv.lock"
RUN_PATCH = "code.patch"
RUN_MANIFEST = "manifest.json"
RUN_FAILED = "FAILED"
RUN_LOG = "logs/run.log"
RUN_FINGERPRINTS = "logs/fingerprints.jsonl"  # written by the runtime
RUN_LAST_CHECKPOINT = "checkpoints/last.pt"  # what a resumed run loads
RUN_METRICS = "logs/metrics.jsonl"
RUN_RUNTIME_DIR = "runtime"
RUN_CARD = "model_card.md"
RUN_PLOT = "training_curves.png"
# Folders the job writes, each bind-mounted on its own at /workspace/run/<name>.
RUN_WRITABLE_DIRS = ("outputs", "checkpoints", "logs", RUN_RUNTIME_DIR)
# What the job wrote relative to its working directory (the upper layer over the code).
RUN_WORK_DIR = "work"
# Every folder of a run directory that the job writes.
RUN_JOB_DIRS = (*RUN_WRITABLE_DIRS, RUN_WORK_DIR)
# The overlay's own scratch folder: the kernel's, never the job's; removed once the run ends.
RUN_OVERLAY_DIR = ".overlay"
# Files reprise writes itself; everything else under a run directory was produced by the job.
RUN_RECORD_FILES = frozenset(
    {
        RUN_JSON,
        RUN_CONFIG,
        RUN_DOCKERFILE,
        RUN_LOCK,
        RUN_PATCH,
        RUN_MANIFEST,
        RUN_FAILED,
        RUN_LOG,
        RUN_CARD,
        RUN_PLOT,
    }
)

RUN_SCHEMA_VERSION = 1
