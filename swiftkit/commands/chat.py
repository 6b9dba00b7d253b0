"""`swiftkit chat TARGET`: talk to a trained checkpoint or an export, through ms-swift's own engine.

The engine runs in a child (child/chat_worker.py); this module is the conversation: the recipe's
system prompt, the history, /clear and /exit, Ctrl-D. `--message TEXT` answers once and prints
only the answer, for scripts. `--compare` answers every message twice, base model (the adapter
switched off) and tuned, labelled, each keeping its own side of the conversation.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from swiftkit.checks.collect import TOKENIZER_FILES
from swiftkit.errors import EXIT_FAILURE, EXIT_OK, UserError
from swiftkit.logparse import diagnose
from swiftkit.process import Worker
from swiftkit.render import CHILD_DIR, ModelRef
from swiftkit.results import targets

HELP = "/clear forgets the conversation, /exit (or Ctrl-D) leaves"


def chat(target: str, *, message: str | None = None, system: str | None = None, max_new_tokens: int = 512,
         model_type: str | None = None, template: str | None = None, compare: bool = False) -> int:
    t = targets.resolve(target, model_type=model_type, template=template)
    ref = t.ref()
    _check_tokenizer(ref)
    if compare and ref.adapter is None:
        raise UserError.one(f"--compare needs an adapter to switch off, and {t.path} is a whole model "
                            f"({t.kind}): its base is not inside it",
                            fix="compare a checkpoint (the recipe, its run dir or checkpoint-N), or chat with the "
                                "base model and the export one after the other")
    system = system if system is not None else ref.system
    say = (lambda text: None) if message is not None else (lambda text: click.echo(text, err=True))
    say(f"swiftkit chat: loading {ref.label}")
    worker = _start(t, ref, max_new_tokens)
    try:
        ready = next(worker.replies(), None)
        if not ready or not ready.get("ready"):
            return _died(worker)
        if message is not None:
            if compare:
                for label, base in SIDES:
                    answer = _answer(worker, _messages(system, [], message), echo=False, base=base)
                    if answer is None:
                        return _died(worker)
                    click.echo(f"{label} {answer}")
                return EXIT_OK
            answer = _answer(worker, _messages(system, [], message), echo=False)
            if answer is None:
                return _died(worker)
            click.echo(answer)
            return EXIT_OK
        say(f"loaded {t.path} on {ready.get('device')}" + (f"; system prompt: {system!r}" if system else ""))
        if compare:
            say("each message is answered twice: by the base model (the adapter off), then by the tuned one")
        say(HELP)
        return _loop(worker, system, compare)
    except KeyboardInterrupt:
        click.echo("", err=True)
        return 130
    finally:
        worker.close()


def _check_tokenizer(ref: ModelRef) -> None:
    """A local model dir must bring its tokenizer: found here in a second, not after the model loads."""
    model = Path(ref.model)
    if model.is_dir() and not any((model / name).is_file() for name in TOKENIZER_FILES):
        raise UserError.one(f"{model} has no tokenizer ({', '.join(TOKENIZER_FILES)})",
                            fix="copy the base model's tokenizer files into it (swift export does so itself)")


def _start(t: targets.Target, ref: ModelRef, max_new_tokens: int) -> Worker:
    import json

    spec = {"model": ref.model, "adapters": [str(ref.adapter)] if ref.adapter else [], "model_type": ref.model_type,
            "template": ref.template, "dtype": ref.dtype, "max_new_tokens": max_new_tokens}
    beside = t.kind in ("export", "model")  # never write into a model dir
    log = (t.path.parent / f"{t.path.name}.chat" if beside else t.path.parent / "chat") / "chat.log"
    return Worker([sys.executable, str(CHILD_DIR / "chat_worker.py"), json.dumps(spec)], ref.env, log)


def _messages(system: str | None, history: list[dict], text: str) -> list[dict]:
    return ([{"role": "system", "content": system}] if system else []) + history + [{"role": "user", "content": text}]


SIDES = (("base> ", True), ("tuned>", False))


def _answer(worker: Worker, messages: list[dict], *, echo: bool, base: bool = False) -> str | None:
    """The model's whole answer (streamed to the terminal when `echo`), None when the engine died. `base`: the
    base model's, the adapter switched off for it."""
    worker.send({"messages": messages, "base": True} if base else {"messages": messages})
    parts = []
    for reply in worker.replies():
        if reply.get("end"):
            if echo:
                click.echo()
            return "".join(parts)
        parts.append(reply.get("delta", ""))
        if echo:
            click.echo(reply.get("delta", ""), nl=False)
    return None


def _loop(worker: Worker, system: str | None, compare: bool = False) -> int:
    try:
        import readline  # noqa: F401  (line editing and arrow-key history for input())
    except ImportError:
        pass
    history: list[dict] = []
    histories = {True: [], False: []}  # with --compare each model keeps its own side of the conversation
    while True:
        try:
            text = input("you> ")
        except EOFError:
            click.echo("", err=True)
            return EXIT_OK
        command = text.strip().lower()
        if command in ("/exit", "/quit", "exit", "quit"):
            return EXIT_OK
        if command == "/clear":
            history, histories = [], {True: [], False: []}
            click.echo("(conversation cleared)", err=True)
            continue
        if not command:
            continue
        if compare:
            for label, base in SIDES:
                click.echo(f"{label} ", nl=False)
                answer = _answer(worker, _messages(system, histories[base], text), echo=True, base=base)
                if answer is None:
                    return _died(worker)
                histories[base] += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]
            continue
        click.echo("model> ", nl=False)
        answer = _answer(worker, _messages(system, history, text), echo=True)
        if answer is None:
            return _died(worker)
        history += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]


def _died(worker: Worker) -> int:
    code = worker.close()
    tail = worker.tail()
    diagnosis = diagnose(tail, code or 1)
    hint = diagnosis.hint
    if diagnosis.kind == "model_type":  # ms-swift's flags are not this command's: say the options it takes
        hint = ("pass --model-type and --template (for Qwen2.5: --model-type qwen2 --template qwen2_5), or chat "
                "with the recipe whose model.model_type and model.template name them")
    click.echo(f"swiftkit chat: the model could not answer: {diagnosis.message}\n  evidence: "
               f"{diagnosis.evidence.strip()[:300]}\n  try: {hint}\n  full log: {worker.log_path}", err=True)
    return diagnosis.exit_code or EXIT_FAILURE
