"""Where a training step goes, measured inside the training process (`swiftkit run --profile-steps N`).

sitecustomize.py loads this in the process that trains when SWIFTKIT_PROFILE_STEPS=N[:WARMUP] is set; nothing
of ms-swift changes. At the start of training it
- labels the parts of a step the trainer calls, with torch.profiler.record_function ("swiftkit.NAME"):
  data (fetching the batch), compute_loss (forward, loss and ms-swift's token accuracy), token_acc, loss (the
  cross-entropy over the vocabulary), lm_head, layer (each decoder layer's forward; one inside `backward` is
  gradient checkpointing's recompute, labelled recompute), backward, clip_grad, optimizer, zero_grad,
  callbacks and log_save (the trainer's logging, saving and ms-swift's per-step metrics);
- after WARMUP optimizer steps (default 3) records N steps with torch.profiler (CPU, and CUDA where there is
  one), exports the trace and writes OUTPUT_DIR/step-profile.json (trace_summary.summarize, a pure function of
  the trace), then watches N more steps with cProfile for the Python functions that cost the most, takes the
  labels off, and adds those to the file, for the parent to print (results/step_profile.py). (torch.profiler's
  own Python tracer, started for a second window in one process, ended it with a heap error.)

Time that no label holds is the trainer's own loop (labelled "loop": the loss's NaN check, the token count,
bookkeeping).
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
import sys
import time

try:
    import trace_summary  # beside this file, on the training process's path
except ImportError:  # imported as part of swiftkit
    from swiftkit.child import trace_summary

PREFIX = trace_summary.PREFIX


def steps_spec(text: str) -> tuple[int, int]:
    """SWIFTKIT_PROFILE_STEPS: "N" or "N:WARMUP" -> (N, WARMUP)."""
    count, _, warmup = text.partition(":")
    return max(1, int(count)), max(0, int(warmup or 3))


# ---- inside the training process ----------------------------------------------------------------------------

class _Labels:
    """Wraps the trainer's parts in record_function ranges; `backward` is set while the backward pass runs, so
    that a decoder layer's forward inside it is named as gradient checkpointing's recompute."""

    def __init__(self, torch):
        self.torch = torch
        self.backward = False
        self.open: list = []
        self.undo: list = []  # what to put back once the profile is made

    def wrap(self, owner, attr: str, name: str) -> None:
        original = getattr(owner, attr, None)
        if original is None or getattr(original, "_swiftkit_label", None):
            return
        record = self.torch.profiler.record_function
        labels = self

        def labelled(*args, **kwargs):
            if name == "backward":
                labels.backward = True
            try:
                with record(PREFIX + name):
                    return original(*args, **kwargs)
            finally:
                if name == "backward":
                    labels.backward = False

        labelled._swiftkit_label = name
        own = attr in getattr(owner, "__dict__", {})
        setattr(owner, attr, labelled)
        self.undo.append(lambda: setattr(owner, attr, original) if own else delattr(owner, attr))

    def hook(self, module, name: str) -> None:
        """A module's forward in a range: pre-hook opens it, hook closes it (recompute included)."""
        record = self.torch.profiler.record_function

        def pre(_module, _args):
            label = "recompute" if name == "layer" and self.backward else name
            ctx = record(PREFIX + label)
            ctx.__enter__()
            self.open.append(ctx)

        def post(_module, _args, _out):
            if self.open:
                self.open.pop().__exit__(None, None, None)

        self.undo.append(module.register_forward_pre_hook(pre).remove)
        self.undo.append(module.register_forward_hook(post).remove)

    def remove(self) -> None:
        while self.undo:
            self.undo.pop()()


def _label_model(labels: _Labels, model) -> None:
    for module in model.modules():
        if type(module).__name__.endswith("DecoderLayer"):
            labels.hook(module, "layer")
    for name, module in model.named_modules():
        if name.endswith("lm_head"):
            labels.hook(module, "lm_head")
            break


def _label_loss(labels: _Labels) -> None:
    try:
        from transformers.loss import loss_utils
    except ImportError:
        return
    mapping = loss_utils.LOSS_MAPPING  # the model looks its loss up here at every call
    for key in list(mapping):
        if key.endswith("CausalLM"):
            original = mapping[key]
            holder = _Holder(original)
            labels.wrap(holder, "fn", "loss")
            mapping[key] = holder.fn
            labels.undo.append(lambda key=key, original=original: mapping.__setitem__(key, original))


class _Holder:
    def __init__(self, fn):
        self.fn = fn


def install(trainer, count: int, warmup: int) -> None:
    """Label the trainer's parts and profile `count` optimizer steps after `warmup` of them."""
    import torch
    from transformers import TrainerCallback

    labels = _Labels(torch)
    for attr, name in (("get_batch_samples", "data"), ("compute_loss", "compute_loss"),
                       ("_compute_acc", "token_acc"), ("_clip_grad_norm", "clip_grad"),
                       ("_maybe_log_save_evaluate", "log_save")):
        labels.wrap(trainer, attr, name)
    labels.wrap(trainer.accelerator, "backward", "backward")
    for attr in ("on_step_begin", "on_step_end"):
        labels.wrap(trainer.callback_handler, attr, "callbacks")
    _label_loss(labels)

    class Profile(TrainerCallback):
        """Two windows of `count` steps one after the other: torch.profiler first (CPU, CUDA; its times are the
        step's own), then cProfile (the Python functions of the training thread that cost the most time of their
        own; it slows the steps it watches)."""

        def __init__(self):
            self.prof = self.python = None
            self.first = 0
            self.anatomy: dict | None = None

        def on_train_begin(self, args, state, control, model=None, optimizer=None, **kw):
            _label_model(labels, model if model is not None else trainer.model)
            labels.wrap(trainer.model, "zero_grad", "zero_grad")
            labels.wrap(optimizer or trainer.optimizer, "step", "optimizer")

        def on_step_end(self, args, state, control, **kw):
            done = state.global_step - self.first
            if self.prof is not None:
                self.step.__exit__(None, None, None)
                if done >= count:
                    self._anatomy(args, done)
                    self._python_start(state)
                    return
                self._step()
            elif self.python is not None and done >= count:
                self._python_finish(args, done)
            elif self.anatomy is None and state.global_step >= warmup:
                self._start(state)

        def on_train_end(self, args, state, control, **kw):
            done = state.global_step - self.first
            if self.prof is not None:  # training ended inside a window
                self.step.__exit__(None, None, None)
                self._anatomy(args, done)
            elif self.python is not None:
                self._python_finish(args, done)
            labels.remove()

        def _step(self):
            self.step = torch.profiler.record_function(PREFIX + "step")
            self.step.__enter__()

        def _start(self, state):
            activities = [torch.profiler.ProfilerActivity.CPU]
            if torch.cuda.is_available():
                activities.append(torch.profiler.ProfilerActivity.CUDA)
                torch.cuda.synchronize()
            self.prof = torch.profiler.profile(activities=activities)
            self.prof.__enter__()
            self.first = state.global_step
            self.window = torch.profiler.record_function(PREFIX + "steps")
            self.window.__enter__()
            self._step()

        def _anatomy(self, args, steps):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.window.__exit__(None, None, None)
            self.prof.__exit__(None, None, None)
            prof, self.prof = self.prof, None
            self.anatomy = _summary(prof, args.output_dir, steps) if steps else {}
            if self.anatomy:
                _write(args.output_dir, self.anatomy)

        def _python_start(self, state):
            import cProfile

            labels.remove()  # the labels' own cost stays out of this window and the rest of training
            self.first = state.global_step
            self.python, self.python_started = cProfile.Profile(), time.perf_counter()
            self.python.enable()

        def _python_finish(self, args, steps):
            self.python.disable()
            seconds = time.perf_counter() - self.python_started
            stats, self.python = self.python, None
            if self.anatomy and steps:
                self.anatomy["python"] = trace_summary.python_top(stats, steps, seconds)
                _write(args.output_dir, self.anatomy)

    trainer.add_callback(Profile())


def _summary(prof, output_dir: str, steps: int, name: str = "step-profile.json") -> dict:
    started = time.time()
    trace_path = os.path.join(output_dir, name.replace(".json", ".trace.json"))
    try:
        prof.export_chrome_trace(trace_path)
        with open(trace_path, encoding="utf-8") as f:
            summary = trace_summary.summarize(json.load(f), steps)
        with open(trace_path, "rb") as src, gzip.open(trace_path + ".gz", "wb", compresslevel=1) as dst:
            shutil.copyfileobj(src, dst)
        os.remove(trace_path)
        summary["trace"] = os.path.basename(trace_path) + ".gz"
        summary["summary_seconds"] = round(time.time() - started, 3)
        return summary
    except Exception as e:  # noqa: BLE001 - a profile must never break training
        print(f"[swiftkit] step profile not made: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return {}


def _write(output_dir: str, summary: dict) -> None:
    tmp = os.path.join(output_dir, "step-profile.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    os.replace(tmp, os.path.join(output_dir, "step-profile.json"))
    print(f"[swiftkit] step profile of {summary['steps']} steps written: step-profile.json", file=sys.stderr,
          flush=True)


def profile_call(model, fn, path: str):
    """fn() under torch.profiler, its model's decoder layers, lm_head and forward calls labelled (one forward a
    generated token): verification's first engine call (answer_worker.py, SWIFTKIT_PROFILE_ANSWERS=1). Writes the
    summary of that one call to `path` and returns what fn returns."""
    import torch

    labels = _Labels(torch)
    _label_model(labels, model)
    causal_lm = next((m for m in model.modules() if "lm_head" in getattr(m, "_modules", {})), model)
    labels.hook(causal_lm, "forward")
    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(torch.profiler.ProfilerActivity.CUDA)
        torch.cuda.synchronize()
    try:
        with torch.profiler.profile(activities=activities) as prof:
            with torch.profiler.record_function(PREFIX + "steps"):
                result = fn()
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
    finally:
        labels.remove()
    summary = _summary(prof, os.path.dirname(path) or ".", 1, name=os.path.basename(path))
    if summary:
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)
        os.replace(tmp, path)
    return result
