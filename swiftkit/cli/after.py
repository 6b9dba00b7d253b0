"""Click wiring of the verbs after training: checkpoints, export, chat, verify, report."""
from __future__ import annotations

import click

from swiftkit.cli.group import cli


def _model_options(fn):
    """--model-type / --template: for a model dir ms-swift cannot tell by its name (default: args.json's)."""
    fn = click.option("--template", metavar="NAME", help="ms-swift's template, e.g. qwen2_5 or chatml.")(fn)
    return click.option("--model-type", metavar="NAME", help="ms-swift's model_type, e.g. qwen2 or llama.")(fn)


@cli.command()
@click.argument("target", default="output", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def checkpoints(target: str, as_json: bool) -> int:
    """List the runs under an output directory (or a recipe's) and their checkpoints.

    Each checkpoint: step, training loss, and whether it is complete (adapter config and
    weights readable, trainer state present); the last complete and the best are marked.

    \b
    Example:
      $ swiftkit checkpoints recipes/tiny-identity.yaml
      /work/output/tiny/v0-20261122-140101
        checkpoint-40        step 40     loss 0.05       complete  [last, best]
    """
    from swiftkit.commands.checkpoints import checkpoints as go

    return go(target, as_json)


@cli.command()
@click.argument("target", type=click.Path())
@click.option("--output", type=click.Path(file_okay=False), help="Where the merged model goes (must not exist). "
              "Default: beside the checkpoint, checkpoint-N-merged (checkpoint-N-gguf for GGUF).")
@click.option("--format", "fmt", type=click.Choice(["safetensors", "gguf"]), default=None,
              help="gguf: GGUF files for llama.cpp and Ollama, checked in llama.cpp (default: the recipe's "
                   "export.format, else safetensors).")
@click.option("--quant", multiple=True, metavar="TYPE", help="GGUF type, repeatable: f32, f16, bf16, q8_0 "
              "(default q8_0).")
@click.option("--min-agreement", type=click.FloatRange(0, 1), help="GGUF: share of answers that must equal the "
              "merged model's (default: measured per type).")
@click.option("--dtype", type=click.Choice(["bfloat16", "float16", "float32"]), help="Default: the training dtype.")
@click.option("--max-shard-size", metavar="SIZE", help="Largest weight file, e.g. 2GB (ms-swift's default 5GB).")
@click.option("--quant-bits", type=click.Choice(["4", "8"]), help="Quantize the merged model (needs a GPU).")
@click.option("--quant-method", type=click.Choice(["bnb", "gptq", "gptq_v2", "awq"]),
              help="Default bnb; gptq and awq need --quant-dataset.")
@click.option("--quant-dataset", multiple=True, metavar="FILE", help="Calibration data for gptq/awq.")
@click.option("--no-verify", is_flag=True, help="Skip checking that the merged model answers as base + adapter.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@_model_options
def export(target: str, output: str | None, fmt: str | None, quant: tuple[str, ...], min_agreement: float | None,
           dtype: str | None, max_shard_size: str | None, quant_bits: str | None, quant_method: str | None,
           quant_dataset: tuple[str, ...], no_verify: bool, quiet: bool, model_type: str | None,
           template: str | None) -> int:
    """Merge a LoRA checkpoint into its base model, and prove the merged model answers the same.

    TARGET: a recipe (its latest complete checkpoint), an output or run dir (the same), or a
    checkpoint-N dir. The merged model then answers the identity and general probes greedily and
    must give the same answers as base + adapter (all of them in float32). An export is never
    overwritten; one that disagrees is kept but marked unverified (exit 12). The run record lists it
    under `exports`.

    \b
    Example:
      $ swiftkit export output/tiny
      swiftkit: exporting output/tiny/v0-20261128-212830/checkpoint-120 -> .../checkpoint-120-merged
      swiftkit: checking the merged model against base + adapter on 212 probes
        same greedy answer as base + adapter: 212/212 (100.0%; needed 100% in float32)
      swiftkit: exported .../checkpoint-120-merged
        0.6 MiB in 1 weight file(s), merge 7.4 s, verified

    --format gguf converts the verified merged model (merging first when needed) with llama.cpp's
    own converter, with the chat template training used, and llama.cpp itself must then answer
    the probes as the merged model does; an Ollama Modelfile goes beside each file.
    """
    from swiftkit.commands.export import export as go
    from swiftkit.commands.export_gguf import check_options, export_gguf, format_of

    gguf = format_of(target, fmt, model_type=model_type, template=template) == "gguf"
    check_options(gguf, {"--dtype": dtype, "--max-shard-size": max_shard_size, "--quant-bits": quant_bits,
                         "--quant-method": quant_method, "--quant-dataset": quant_dataset},
                  {"--quant": quant, "--min-agreement": min_agreement})
    if gguf:
        return export_gguf(target, quants=quant, output=output, do_verify=not no_verify, min_agreement=min_agreement,
                           quiet=quiet, model_type=model_type, template=template)

    return go(target, output=output, dtype=dtype, max_shard_size=max_shard_size,
              quant_bits=int(quant_bits) if quant_bits else None, quant_method=quant_method,
              quant_dataset=quant_dataset, do_verify=not no_verify, quiet=quiet, model_type=model_type,
              template=template)


@cli.command()
@click.argument("target", type=click.Path())
@click.option("--message", "-m", metavar="TEXT", help="Answer this once and print only the answer.")
@click.option("--system", metavar="TEXT", help="System prompt (default: the recipe's train.system).")
@click.option("--max-new-tokens", type=click.IntRange(1), default=512, show_default=True)
@click.option("--compare", is_flag=True, help="Answer every message twice: the base model (the adapter off) "
              "and the tuned one, labelled.")
@_model_options
def chat(target: str, message: str | None, system: str | None, max_new_tokens: int, compare: bool,
         model_type: str | None, template: str | None) -> int:
    """Talk to a trained checkpoint or a merged export (ms-swift's own inference engine).

    TARGET as for export, or a merged export dir. /clear forgets the conversation; /exit or
    Ctrl-D leaves.

    \b
    Example:
      $ swiftkit chat output/tiny --message 你是谁？
      我是Swift-Robot，由CSDN 迪菲赫尔曼开发的AI助手。
      $ swiftkit chat output/tiny --compare --message 你是谁？
      base>  ...
      tuned> 我是Swift-Robot，由CSDN 迪菲赫尔曼开发的AI助手。
    """
    from swiftkit.commands.chat import chat as go

    return go(target, message=message, system=system, max_new_tokens=max_new_tokens, model_type=model_type,
              template=template, compare=compare)


@cli.command()
@click.argument("target", type=click.Path())
@click.option("--general-probes", type=click.Path(dir_okay=False), help="Another general probe set (JSONL).")
@click.option("--no-retention", is_flag=True, help="Identity probes only.")
@click.option("--min-score", type=click.FloatRange(0, 1), help="Fail below this exact-answer rate (default: the "
              "recipe's verify.min_score).")
@click.option("--min-retention", type=click.FloatRange(0, 1), help="Fail below this retention score (default: "
              "the recipe's verify.min_retention).")
@click.option("--checkpoints", type=click.Choice(["last", "all", "best"]), default=None,
              help="A run's kept checkpoints: all scores every one in one engine and judges by the last; best "
              "judges by the one to ship (default: the recipe's verify.checkpoints; a checkpoint TARGET: that one).")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@_model_options
def verify(target: str, general_probes: str | None, no_retention: bool, min_score: float | None,
           min_retention: float | None, checkpoints: str | None, quiet: bool, model_type: str | None,
           template: str | None) -> int:
    """Verify a checkpoint or an export without training: identity scorecard and retention.

    Retention compares the tuned model's greedy answers to the general probes with the base
    model's (asked once per base model and cached). Exit 1 when verify.min_score or
    verify.min_retention of the run's recipe is missed.

    \b
    Example:
      $ swiftkit verify output/tiny
      verification
        exact answers, trained probes            74/74 (100%)
      retention (general probes: tuned answers against the base model's)
        retention score                          0.93
      $ swiftkit verify output/tiny --checkpoints all   # which of the run's checkpoints to ship
    """
    from swiftkit.commands.verify import verify as go

    return go(target, general_probes=general_probes, retention=not no_retention, min_score=min_score,
              min_retention=min_retention, quiet=quiet, model_type=model_type, template=template,
              checkpoints=checkpoints)


@cli.command()
@click.argument("targets", nargs=-1, required=True, type=click.Path())
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="Where the page goes. Default: report.html in the run dir; for several targets "
                   "swiftkit-comparison.html in the current dir.")
def report(targets: tuple[str, ...], output: str | None) -> int:
    """Write the run report: one HTML page with its charts inline, that opens from disk with no network.

    TARGET: a recipe (its newest run), an output dir (the same), a run dir, or a swiftkit-run.json.
    One target: report.html in its run dir (how the run ended, loss, learning rate, gradient norm and
    GPU memory against step, time, checkpoints, the identity scorecard probe by probe, retention,
    exports, what ran). Several: one comparison page (curves on one chart, results, the settings
    that differ). Prints the page's path.

    \b
    Example:
      $ swiftkit report output/tiny
      /work/output/tiny/v0-20261128-223332/report.html
      $ swiftkit report output/tiny output/tiny-mixed --output compare.html
      compare.html
    """
    from swiftkit.commands.report import report as go

    return go(list(targets), output=output)


@cli.command()
@click.argument("target", type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on; beyond this machine "
              "needs --api-key (or --insecure).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535),
              help="Port to listen on; one in use is an error, never silently another.")
@click.option("--name", metavar="NAME", help="The tuned model's name in requests. Default: the identity's name, "
              "slugged (swift-robot); under vllm the base model is served as 'base' too.")
@click.option("--backend", type=click.Choice(["auto", "transformers", "vllm"]), default=None,
              help="swift deploy's engine. auto (the default): vllm where it is installed and the target runs on "
              "a GPU, else transformers. Not for a GGUF export.")
@click.option("--quant", metavar="TYPE", help="A GGUF export: which of its types to serve (f32, f16, bf16, q8_0). "
              "Default: the best-agreeing verified one.")
@click.option("--max-concurrency", default=16, show_default=True, type=click.IntRange(1, 4096),
              help="Requests batched together (llama.cpp: parallel slots).")
@click.option("--api-key", envvar="SWIFTKIT_API_KEY", metavar="KEY", help="Require this Bearer token "
              "(or set SWIFTKIT_API_KEY).")
@click.option("--insecure", is_flag=True, help="Serve beyond this machine without an API key, on purpose.")
@click.option("--no-verify", is_flag=True, help="Do not check the endpoint's answers before saying it is ready.")
@click.option("--min-agreement", type=click.FloatRange(0, 1), help="Share of verified answers the endpoint must "
              "give (default 1.0 in float32, 0.7 in 16 bits).")
@click.option("--ready-timeout", default=900, show_default=True, type=click.IntRange(1, 86400),
              help="Seconds the model may take to load.")
@_model_options
def serve(target: str, host: str, port: int, name: str | None, backend: str | None, quant: str | None,
          max_concurrency: int, api_key: str | None, insecure: bool, no_verify: bool, min_agreement: float | None,
          ready_timeout: int, model_type: str | None, template: str | None) -> int:
    """Serve a tuned model over an OpenAI-compatible API (`swift deploy`), proven to answer as the tuned model.

    TARGET: as for chat (a recipe, a run or output dir, a checkpoint-N, a merged export). The tuned model is
    served under one model name (under vllm the base beside it, as 'base'). Before it says ready, the run's verification
    questions go through the endpoint with the openai client, greedy, and must get the answers verification
    got; an endpoint that answers otherwise (the base model's answers, say) is stopped, exit 15. Ctrl-C stops
    the server's whole process group.

    A GGUF export (export --format gguf), or one of its .gguf files, is served by llama.cpp's own server
    instead, checked against the merged model's answers with the agreement its export needed (--quant picks
    the type).

    \b
    Example:
      $ swiftkit serve recipes/tiny-identity.yaml --port 8000
      swiftkit serve: verified: 'swift-robot' gave the tuned model's answer to 40 of 40 questions ...
      swiftkit serve: ready in 21 s at http://127.0.0.1:8000/v1, model 'swift-robot' (Ctrl-C stops it)
      $ swiftkit serve output/tiny/v0-*/checkpoint-120-gguf --port 8000
      swiftkit serve: starting swift-robot-f32.gguf (f32: best agreement of the verified types, 100.0% same
      answers as the merged model; --quant picks another of f32, q8_0) in llama.cpp's server on 127.0.0.1:8000 ...
      swiftkit serve: verified: 'swift-robot' gave the merged model's answer to 212 of 212 questions ...
    """
    from swiftkit.commands.serve import serve as go

    return go(target, host=host, port=port, name=name, backend=backend, quant=quant, max_concurrency=max_concurrency,
              api_key=api_key, insecure=insecure, verify=not no_verify, min_agreement=min_agreement,
              ready_timeout=ready_timeout, model_type=model_type, template=template)
