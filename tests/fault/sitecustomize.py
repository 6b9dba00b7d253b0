"""Test-only fault injection inside the real ms-swift child (tests put this dir on PYTHONPATH).

SWIFTKIT_TEST_OOM_ABOVE_MICRO_BATCH=N: in the training process, every training step raises
torch.OutOfMemoryError with the message a real CUDA OOM prints (shared H100 log) while the
per-device micro-batch is above N, as a GPU that is too small would.
SWIFTKIT_TEST_OOM_AFTER_STEP=K: ... but only once K steps are done (so checkpoints exist to resume).
SWIFTKIT_TEST_STEP_SLEEP=S: every training step sleeps S seconds (time to kill or interrupt a run).
SWIFTKIT_TEST_HANG_AT_STEP=K: once K steps are done the training step never returns and prints nothing,
as a dataloader deadlock or a collective waiting for a dead rank does.
SWIFTKIT_TEST_GENERATE_SLEEP=S: in the answer worker (verification, replay), every engine call sleeps S seconds
first (time to interrupt a generation between its parts).
SWIFTKIT_TEST_ABORT_AT_EXIT=1: the training process aborts while shutting down, after everything is saved,
printing what a C++ std::terminate prints (as in cpu-tiny-ddp2-teardown-abort.log).
"""
import importlib.abc
import importlib.util
import os
import sys

MESSAGE = ("CUDA out of memory. Tried to allocate 354.00 MiB. GPU 0 has a total capacity of 79.18 GiB of which "
           "55.65 GiB is free. Including non-PyTorch memory, this process has 23.52 GiB memory in use. 23.00 GiB "
           "allowed; Of the allocated memory 22.44 GiB is allocated by PyTorch, and 350.42 MiB is reserved by "
           "PyTorch but unallocated.")
LIMIT = os.environ.get("SWIFTKIT_TEST_OOM_ABOVE_MICRO_BATCH")
AFTER = int(os.environ.get("SWIFTKIT_TEST_OOM_AFTER_STEP", "0"))
SLEEP = float(os.environ.get("SWIFTKIT_TEST_STEP_SLEEP", "0"))
HANG = os.environ.get("SWIFTKIT_TEST_HANG_AT_STEP")
ABORT = os.environ.get("SWIFTKIT_TEST_ABORT_AT_EXIT")
GENERATE_SLEEP = float(os.environ.get("SWIFTKIT_TEST_GENERATE_SLEEP", "0"))


def _patch(module) -> None:
    import time

    import torch

    original = module.Trainer.training_step

    def training_step(self, *args, **kwargs):
        if LIMIT and self.args.per_device_train_batch_size > int(LIMIT) and self.state.global_step >= AFTER:
            raise torch.OutOfMemoryError(MESSAGE)
        if SLEEP:
            time.sleep(SLEEP)
        if HANG and self.state.global_step >= int(HANG):
            while True:
                time.sleep(3600)
        return original(self, *args, **kwargs)

    module.Trainer.training_step = training_step


def _slow_engine(module) -> None:
    import time

    original = module.TransformersEngine.infer

    def infer(self, *args, **kwargs):
        time.sleep(GENERATE_SLEEP)
        return original(self, *args, **kwargs)

    module.TransformersEngine.infer = infer


class _AfterImport(importlib.abc.MetaPathFinder):
    """Patch a module right after it is imported, whoever imports it."""

    def __init__(self, target: str = "transformers.trainer", patch=None):
        self.target, self.patch = target, patch or _patch

    def find_spec(self, name, path, target=None):
        if name != self.target:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            self.patch(module)

        loader.exec_module = exec_and_patch
        return spec


if (LIMIT or SLEEP or HANG) and sys.argv[:1] and sys.argv[0].replace("\\", "/").endswith("swift/cli/sft.py"):
    sys.meta_path.insert(0, _AfterImport())


def _abort_at_exit() -> None:
    import atexit

    def abort() -> None:
        sys.stderr.write("terminate called without an active exception\n")
        sys.stderr.flush()
        os.abort()

    atexit.register(abort)


if ABORT and sys.argv[:1] and sys.argv[0].replace("\\", "/").endswith("swift/cli/sft.py"):
    _abort_at_exit()


if GENERATE_SLEEP and sys.argv[:1] and sys.argv[0].endswith("answer_worker.py"):
    sys.meta_path.insert(0, _AfterImport("swift.infer_engine.transformers_engine", _slow_engine))
